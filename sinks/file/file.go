package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the file sink.
type Config struct {
	// Dir is the directory the files are written to; it is created if missing.
	Dir string `yaml:"dir" json:"dir"`
}

// Validate reports every problem.
func (c Config) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required")
	}
	return nil
}

// Factory returns the file sink's factory.
func Factory() sinks.Factory {
	return sinks.Factory{
		Spec: func() any { return Config{} },
		New: component.Decoded(func(c Config, d sinks.Deps) (sinks.Sink, error) {
			if err := c.Validate(); err != nil {
				return nil, err
			}
			return New(c, d), nil
		}),
	}
}

// Sink is the file sink.
type Sink struct {
	cfg      Config
	log      *slog.Logger
	files    map[schema.TableID]*tableFile
	pipeline string
	altered  *prometheus.CounterVec
	warned   map[string]bool
}

type tableFile struct {
	f       *os.File
	w       *bufio.Writer
	last    offsets.Position // position of the last line in the file
	version schema.Version   // last schema version recorded
}

// New returns a file sink.
func New(c Config, d sinks.Deps) *Sink {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{cfg: c, log: log.With("component", "sink.file"), pipeline: d.Pipeline, altered: sinks.AlteredValues(d.Metrics), warned: map[string]bool{}}
}

// Open creates the directory.
func (s *Sink) Open(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	s.files = map[schema.TableID]*tableFile{}
	return nil
}

// maxFileName is the longest file name Linux file systems hold (NAME_MAX).
const maxFileName = 255

// FileName returns the base name of a table's data file. Every character outside
// [A-Za-z0-9_-] is escaped, so names cannot leave the directory or collide.
func FileName(id schema.TableID) string {
	return escape(id.Namespace) + "." + escape(id.Name) + ".jsonl"
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func (s *Sink) table(id schema.TableID) (*tableFile, error) {
	if tf, ok := s.files[id]; ok {
		return tf, nil
	}
	if n := len(FileName(id)) + len(".schema"); n > maxFileName {
		return nil, component.Permanent(fmt.Errorf("table %s: its files' names would be %d bytes, and a file name holds %d: give the table a shorter name with the route transform", id, n, maxFileName))
	}
	path := filepath.Join(s.cfg.Dir, FileName(id))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	last, size, err := recoverTail(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	tf := &tableFile{f: f, w: bufio.NewWriterSize(f, 256<<10), last: last}
	tf.version, err = lastSchemaVersion(filepath.Join(s.cfg.Dir, strings.TrimSuffix(FileName(id), ".jsonl")+".schema.jsonl"))
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(s.cfg.Dir); err != nil {
		f.Close()
		return nil, err
	}
	s.files[id] = tf
	return tf, nil
}

// recoverTail finds the position in the last complete line of f and cuts off a torn
// partial line after it. It returns that position and the file's new size.
func recoverTail(f *os.File) (offsets.Position, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if size == 0 {
		return nil, 0, nil
	}
	// Read backwards in blocks until we hold the last complete line.
	const block = 64 << 10
	var tail []byte
	off := size
	for {
		n := int64(block)
		if off < n {
			n = off
		}
		off -= n
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return nil, 0, err
		}
		tail = append(buf, tail...)
		end := bytes.LastIndexByte(tail, '\n')
		if end >= 0 {
			start := bytes.LastIndexByte(tail[:end], '\n')
			if start >= 0 || off == 0 {
				line := tail[start+1 : end]
				complete := off + int64(end) + 1
				if complete < size {
					if err := f.Truncate(complete); err != nil {
						return nil, 0, err
					}
					if err := f.Sync(); err != nil {
						return nil, 0, err
					}
				}
				var rec struct {
					Pos string `json:"pos"`
				}
				if err := json.Unmarshal(line, &rec); err != nil {
					return nil, 0, fmt.Errorf("last line is not a change record: %w", err)
				}
				p, err := hex.DecodeString(rec.Pos)
				if err != nil {
					return nil, 0, fmt.Errorf("last line has a bad position: %w", err)
				}
				return p, complete, nil
			}
		}
		if off == 0 {
			// no newline at all: the only line is torn
			if err := f.Truncate(0); err != nil {
				return nil, 0, err
			}
			return nil, 0, f.Sync()
		}
	}
}

func lastSchemaVersion(path string) (schema.Version, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v schema.Version
	for _, line := range bytes.Split(b, []byte("\n")) {
		var d schema.Delta
		if json.Unmarshal(line, &d) == nil && d.Table.Version > v {
			v = d.Table.Version
		}
	}
	return v, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Apply records each delta newer than the table's last recorded version in the
// table's schema file.
func (s *Sink) Apply(ctx context.Context, deltas []schema.Delta) error {
	for _, d := range deltas {
		tf, err := s.table(d.Table.ID)
		if err != nil {
			return err
		}
		if d.Table.Version <= tf.version {
			continue
		}
		path := filepath.Join(s.cfg.Dir, strings.TrimSuffix(FileName(d.Table.ID), ".jsonl")+".schema.jsonl")
		line, err := json.Marshal(d)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open schema file: %w", err)
		}
		_, err = f.Write(append(line, '\n'))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write schema of %s: %w", d.Table.ID, err)
		}
		tf.version = d.Table.Version
	}
	return nil
}

// Write appends the batch's new changes to their tables' files and fsyncs them.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	touched := map[*tableFile]schema.TableID{}
	var buf []byte
	for i := range b.Changes {
		c := &b.Changes[i]
		tf, err := s.table(c.Table)
		if err != nil {
			return err
		}
		if c.Pos.Compare(tf.last) <= 0 {
			continue // written before a crash or by an earlier attempt
		}
		for _, f := range c.After {
			if sinks.JSONNull(f.Value) { // inline JSON: its null reads as NULL
				s.altered.WithLabelValues(s.pipeline, c.Table.String(), f.Name).Inc()
				if k := c.Table.String() + "\x00" + f.Name; !s.warned[k] {
					s.warned[k] = true
					s.log.Warn("a JSON null is written as JSON's null, which reads as NULL; further ones are only counted", "table", c.Table.String(), "column", f.Name)
				}
			}
		}
		buf = appendLine(buf[:0], c)
		if _, err := tf.w.Write(buf); err != nil {
			return sinks.ForTable(c.Table, fmt.Errorf("write %s: %w", c.Table, err))
		}
		tf.last = c.Pos.Clone()
		touched[tf] = c.Table
	}
	for tf, id := range touched {
		if err := tf.w.Flush(); err != nil {
			return fmt.Errorf("flush %s: %w", id, err)
		}
		if err := tf.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", id, err)
		}
	}
	return ctx.Err()
}

func appendLine(dst []byte, c *schema.Change) []byte {
	dst = append(dst, `{"pos":"`...)
	dst = hex.AppendEncode(dst, c.Pos)
	dst = append(dst, `","op":"`...)
	dst = append(dst, c.Op.String()...)
	dst = append(dst, `","table":`...)
	tb, _ := json.Marshal(c.Table.String())
	dst = append(dst, tb...)
	dst = fmt.Appendf(dst, `,"version":%d`, c.Version)
	if c.TxID != "" {
		dst = append(dst, `,"tx":`...)
		tx, _ := json.Marshal(c.TxID)
		dst = append(dst, tx...)
	}
	if !c.CommitTS.IsZero() {
		dst = append(dst, `,"ts":"`...)
		dst = c.CommitTS.UTC().AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"key":`...)
	dst = c.Key.AppendJSON(dst)
	if c.Before != nil {
		dst = append(dst, `,"before":`...)
		dst = c.Before.AppendJSON(dst)
	}
	if c.After != nil {
		dst = append(dst, `,"after":`...)
		dst = c.After.AppendJSON(dst)
	}
	if c.Op == schema.OpSweep {
		dst = append(dst, `,"since":"`...)
		dst = hex.AppendEncode(dst, c.Since)
		dst = append(dst, '"')
	}
	return append(dst, "}\n"...)
}

// Close flushes and closes every file.
func (s *Sink) Close(ctx context.Context) error {
	var errs []error
	for id, tf := range s.files {
		if err := tf.w.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", id, err))
		}
		if err := tf.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", id, err))
		}
	}
	s.files = nil
	return errors.Join(errs...)
}

var _ sinks.Namer = (*Sink)(nil)

// DestinationName implements sinks.Namer: the table's file.
func (s *Sink) DestinationName(t schema.Table) (string, error) {
	if n := len(FileName(t.ID)) + len(".schema"); n > maxFileName {
		return "", component.Permanent(fmt.Errorf("table %s: its files' names would be %d bytes, and a file name holds %d: give the table a shorter name with the route transform", t.ID, n, maxFileName))
	}
	return filepath.Join(s.cfg.Dir, FileName(t.ID)), nil
}

package file

import (
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
	"golang.org/x/sync/errgroup"
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
	open     int    // files with an open descriptor
	tick     uint64 // counts uses, for closing the least recently used file
	free     [][]byte
	pipeline string
	altered  *prometheus.CounterVec
	warned   map[string]bool
}

// tableFile is a table's data file: what the sink knows of it stays for the
// sink's life, its descriptor only while it is among the maxOpen most
// recently used (a pipeline of thousands of tables keeps neither thousands
// of descriptors nor a buffer each).
type tableFile struct {
	path    string
	f       *os.File         // nil: closed (everything written is synced)
	used    uint64           // the sink's tick at its last use
	last    offsets.Position // position of the last line in the file
	version schema.Version   // last schema version recorded
}

// maxOpen bounds the data files the sink keeps open.
const maxOpen = 128

// syncParallelism is how many files of a batch are written and synced at
// once: file systems commit concurrent fsyncs together.
const syncParallelism = 16

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
	s.tick++
	if tf, ok := s.files[id]; ok {
		tf.used = s.tick
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
	tf := &tableFile{path: path, f: f, used: s.tick, last: last}
	s.open++
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
	return tf, s.closeIdle(tf)
}

// descriptor returns tf's open file, opening it again (appending: its tail
// was recovered when the sink first opened it) if it was closed.
func (s *Sink) descriptor(tf *tableFile) (*os.File, error) {
	s.tick++
	tf.used = s.tick
	if tf.f != nil {
		return tf.f, nil
	}
	f, err := os.OpenFile(tf.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", tf.path, err)
	}
	tf.f = f
	s.open++
	return f, s.closeIdle(tf)
}

// closeIdle closes the least recently used files beyond maxOpen, but keep.
func (s *Sink) closeIdle(keep *tableFile) error {
	for s.open > maxOpen {
		var lru *tableFile
		for _, tf := range s.files {
			if tf.f != nil && tf != keep && (lru == nil || tf.used < lru.used) {
				lru = tf
			}
		}
		if lru == nil {
			return nil
		}
		err := lru.f.Close()
		lru.f = nil
		s.open--
		if err != nil {
			return fmt.Errorf("close %s: %w", lru.path, err)
		}
	}
	return nil
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

// Write appends the batch's new changes to their tables' files and fsyncs
// them. The lines of each table are gathered in a buffer of the batch's (reused
// from batch to batch), then each file gets one write and one fsync, up to
// syncParallelism files at once.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	type pending struct {
		tf  *tableFile
		id  schema.TableID
		buf []byte
	}
	byTable := map[*tableFile]*pending{}
	var order []*pending
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
		p := byTable[tf]
		if p == nil {
			p = &pending{tf: tf, id: c.Table}
			if n := len(s.free); n > 0 {
				p.buf, s.free = s.free[n-1][:0], s.free[:n-1]
			}
			byTable[tf] = p
			order = append(order, p)
		}
		p.buf = appendLine(p.buf, c)
		tf.last = c.Pos.Clone()
	}
	// in groups of at most maxOpen files: opening one closes the least
	// recently used, never one of its own group
	var err error
	for start := 0; start < len(order) && err == nil; start += maxOpen {
		var g errgroup.Group
		g.SetLimit(syncParallelism)
		for _, p := range order[start:min(start+maxOpen, len(order))] {
			f, oerr := s.descriptor(p.tf)
			if oerr != nil {
				g.Go(func() error { return sinks.ForTable(p.id, oerr) })
				break
			}
			g.Go(func() error {
				if _, err := f.Write(p.buf); err != nil {
					return sinks.ForTable(p.id, fmt.Errorf("write %s: %w", p.id, err))
				}
				if err := f.Sync(); err != nil {
					return sinks.ForTable(p.id, fmt.Errorf("fsync %s: %w", p.id, err))
				}
				return nil
			})
		}
		err = g.Wait()
	}
	kept := 0
	for _, b := range s.free {
		kept += cap(b)
	}
	for _, p := range order {
		if kept+cap(p.buf) <= maxReused {
			s.free = append(s.free, p.buf)
			kept += cap(p.buf)
		}
	}
	if err != nil {
		// a file may hold part of its lines: recover the tails again, as
		// after a crash, before the batch is written again
		s.forget()
		return err
	}
	return ctx.Err()
}

// maxReused bounds the bytes of the buffers kept for the next batch.
const maxReused = 32 << 20

// forget closes every file and forgets what the sink knew of them: the next
// use recovers each file's tail (a torn last line is cut off) and last
// position from the file itself.
func (s *Sink) forget() {
	for _, tf := range s.files {
		if tf.f != nil {
			tf.f.Close()
		}
	}
	s.files, s.open = map[schema.TableID]*tableFile{}, 0
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

// Close closes every file (what was written is synced already).
func (s *Sink) Close(ctx context.Context) error {
	var errs []error
	for id, tf := range s.files {
		if tf.f == nil {
			continue
		}
		if err := tf.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", id, err))
		}
	}
	s.files, s.open = nil, 0
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

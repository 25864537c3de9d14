package datagen

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
)

// Config configures the generator.
type Config struct {
	// Tables is how many tables (gen.t0, gen.t1, …) to generate.
	Tables int `yaml:"tables" json:"tables"`
	// SnapshotRows is how many rows each table holds at the start.
	SnapshotRows int `yaml:"snapshot_rows" json:"snapshot_rows"`
	// Keys is the key space per table for streamed changes (≥ SnapshotRows).
	Keys int `yaml:"keys" json:"keys"`
	// Changes is how many streamed changes to generate; 0 generates forever.
	Changes int64 `yaml:"changes" json:"changes"`
	// TxnSize is the number of changes per streamed transaction.
	TxnSize int `yaml:"txn_size" json:"txn_size"`
	// Rate limits streamed changes per second; 0 is as fast as possible.
	Rate float64 `yaml:"rate" json:"rate"`
	// Seed selects the sequence.
	Seed uint64 `yaml:"seed" json:"seed"`
	// PayloadBytes is the size of each row's text payload.
	PayloadBytes int `yaml:"payload_bytes" json:"payload_bytes"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Tables == 0 {
		c.Tables = 2
	}
	if c.SnapshotRows == 0 {
		c.SnapshotRows = 100
	}
	if c.Keys == 0 {
		c.Keys = max(1000, c.SnapshotRows)
	}
	if c.TxnSize == 0 {
		c.TxnSize = 5
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.PayloadBytes == 0 {
		c.PayloadBytes = 32
	}
	return c
}

// Validate reports every problem, one per line.
func (c Config) Validate() error {
	var errs []error
	if c.Tables < 1 || c.Tables > 1000 {
		errs = append(errs, errors.New("tables: must be between 1 and 1000"))
	}
	if c.SnapshotRows < 0 {
		errs = append(errs, errors.New("snapshot_rows: must not be negative"))
	}
	if c.Keys < c.SnapshotRows || c.Keys < 1 {
		errs = append(errs, errors.New("keys: must be at least snapshot_rows and 1"))
	}
	if c.Changes < 0 {
		errs = append(errs, errors.New("changes: must not be negative"))
	}
	if c.TxnSize < 1 || c.TxnSize > 1_000_000 {
		errs = append(errs, errors.New("txn_size: must be between 1 and 1000000"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("rate: must not be negative"))
	}
	if c.PayloadBytes < 0 || c.PayloadBytes > 1<<20 {
		errs = append(errs, errors.New("payload_bytes: must be between 0 and 1MiB"))
	}
	return errors.Join(errs...)
}

// Factory returns the datagen factory.
func Factory() sources.Factory {
	return component.Configured(func(c Config, d sources.Deps) sources.Source { return New(c, d) })
}

const (
	phaseSnapshot = 0
	phaseStream   = 1
)

// Source is the generator.
type Source struct {
	cfg  Config
	deps sources.Deps
	log  *slog.Logger

	phase     uint64
	txn       uint64 // next transaction of the phase
	announced map[schema.TableID]schema.Version
	paced     time.Time

	mu       sync.Mutex
	acked    offsets.Position
	progress []sources.SnapshotProgress
	lastTS   time.Time
}

// New returns a generator.
func New(c Config, d sources.Deps) *Source {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.MaxChanges == 0 {
		d.MaxChanges = 1000
	}
	return &Source{cfg: c, deps: d, log: d.Logger.With("component", "source.datagen")}
}

// TableID returns the id of table i.
func TableID(i int) schema.TableID {
	return schema.TableID{Namespace: "gen", Name: "t" + strconv.Itoa(i)}
}

// Shape returns the shape of every generated table.
func Shape(i int) schema.Table {
	return schema.Table{ID: TableID(i), PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}},
		{Name: "name", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true},
		{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true},
		{Name: "active", Type: schema.Type{Kind: schema.KindBool, Name: "bool"}, Nullable: true},
		{Name: "updated_at", Type: schema.Type{Kind: schema.KindTimestamp, Name: "timestamptz"}, Nullable: true},
		{Name: "doc", Type: schema.Type{Kind: schema.KindJSON, Name: "jsonb"}, Nullable: true},
	}}
}

func checkpoint(phase, txn uint64) offsets.Position {
	p := offsets.AppendUint(nil, phase)
	p = offsets.AppendUint(p, txn)
	return offsets.AppendUint(p, math.MaxUint64)
}

func changePos(phase, txn, idx uint64) offsets.Position {
	p := offsets.AppendUint(nil, phase)
	p = offsets.AppendUint(p, txn)
	return offsets.AppendUint(p, idx)
}

// Open positions the generator just after from.
func (s *Source) Open(ctx context.Context, from offsets.Position) error {
	s.announced = map[schema.TableID]schema.Version{}
	s.phase, s.txn = phaseSnapshot, 0
	if from != nil {
		d := offsets.NewDecoder(from)
		phase, txn, idx := d.Uint(), d.Uint(), d.Uint()
		if err := d.Done(); err != nil || phase > phaseStream || idx != math.MaxUint64 {
			return component.Permanent(fmt.Errorf("position %s is not a datagen checkpoint", from))
		}
		s.phase, s.txn = phase, txn+1
	}
	if s.phase == phaseSnapshot && s.txn >= s.snapshotChunks() {
		s.phase, s.txn = phaseStream, 0
	}
	s.mu.Lock()
	s.progress = make([]sources.SnapshotProgress, s.cfg.Tables)
	for i := range s.progress {
		s.progress[i] = sources.SnapshotProgress{Table: TableID(i), RowsEstimated: int64(s.cfg.SnapshotRows)}
	}
	s.mu.Unlock()
	s.updateProgress()
	return ctx.Err()
}

func (s *Source) chunkRows() int { return max(1, s.deps.MaxChanges) }

// snapshotChunks is the number of snapshot transactions: tables × chunks per table.
func (s *Source) snapshotChunks() uint64 {
	per := (s.cfg.SnapshotRows + s.chunkRows() - 1) / s.chunkRows()
	return uint64(per * s.cfg.Tables)
}

func (s *Source) updateProgress() {
	s.mu.Lock()
	defer s.mu.Unlock()
	per := uint64((s.cfg.SnapshotRows + s.chunkRows() - 1) / s.chunkRows())
	for i := range s.progress {
		done := s.phase == phaseStream || per == 0 || s.txn >= uint64(i+1)*per
		rows := int64(s.cfg.SnapshotRows)
		if !done {
			chunksDone := int64(0)
			if s.txn > uint64(i)*per {
				chunksDone = int64(s.txn - uint64(i)*per)
			}
			rows = min(rows, chunksDone*int64(s.chunkRows()))
		}
		s.progress[i].RowsDone, s.progress[i].Done = rows, done
	}
}

func mix(vals ...uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, v := range vals {
		for i := range b {
			b[i] = byte(v >> (8 * i))
		}
		h.Write(b[:])
	}
	return h.Sum64()
}

// row builds the row of key in table t at a version derived from gen.
func (s *Source) row(key int64, gen uint64) schema.Row {
	h := mix(s.cfg.Seed, uint64(key), gen)
	payload := make([]byte, s.cfg.PayloadBytes)
	for i := range payload {
		payload[i] = 'a' + byte((h>>(i%56))%26)
	}
	cents := int64(h % 10_000_000)
	return schema.Row{
		{Name: "id", Value: schema.Int(key)},
		{Name: "name", Value: schema.String(string(payload))},
		{Name: "amount", Value: schema.MustDecimal(fmt.Sprintf("%d.%02d", cents/100, cents%100))},
		{Name: "active", Value: schema.Bool(h%3 != 0)},
		{Name: "updated_at", Value: schema.Timestamp(time.Unix(1_700_000_000+int64(gen%1_000_000), int64(h%1000)*1000))},
		{Name: "doc", Value: schema.JSON(fmt.Sprintf(`{"gen":%d,"tag":"t%d"}`, gen, h%7))},
	}
}

// announce puts the table's shape into the batch the first time it appears after
// Open, registered in the schema registry when there is one.
func (s *Source) announce(ctx context.Context, b *schema.Batch, t int, pos offsets.Position) (schema.Version, error) {
	if v, ok := s.announced[TableID(t)]; ok {
		return v, nil
	}
	shape := Shape(t)
	shape.Version = 1
	d := schema.Delta{Table: shape, Changes: []schema.ColumnChange{{Op: schema.CreateTable}}}
	if s.deps.Schema != nil {
		v, delta, err := s.deps.Schema.Observe(ctx, shape, pos)
		if err != nil {
			return 0, err
		}
		shape = v
		if delta != nil {
			d = *delta
		} else {
			d = schema.Delta{Table: v, From: v.Version}
		}
	}
	b.Deltas = append(b.Deltas, d)
	s.announced[shape.ID] = shape.Version
	return shape.Version, nil
}

// Read returns the next transaction (a snapshot chunk or a streamed transaction).
func (s *Source) Read(ctx context.Context) (schema.Batch, error) {
	if err := ctx.Err(); err != nil {
		return schema.Batch{}, err
	}
	if s.phase == phaseSnapshot {
		return s.readSnapshot(ctx)
	}
	if s.cfg.Changes > 0 && int64(s.txn)*int64(s.cfg.TxnSize) >= s.cfg.Changes {
		<-ctx.Done() // everything generated: idle like a quiet database
		return schema.Batch{}, ctx.Err()
	}
	if err := s.pace(ctx); err != nil {
		return schema.Batch{}, err
	}
	var b schema.Batch
	n := s.cfg.TxnSize
	if s.cfg.Changes > 0 {
		n = int(min(int64(n), s.cfg.Changes-int64(s.txn)*int64(s.cfg.TxnSize)))
	}
	ts := time.Now().UTC()
	for i := range n {
		h := mix(s.cfg.Seed, s.txn, uint64(i), 0x5eed)
		t := int(h % uint64(s.cfg.Tables))
		key := int64((h >> 16) % uint64(s.cfg.Keys))
		pos := changePos(phaseStream, s.txn, uint64(i))
		v, err := s.announce(ctx, &b, t, pos)
		if err != nil {
			return schema.Batch{}, err
		}
		gen := s.txn*uint64(s.cfg.TxnSize) + uint64(i) + 1
		c := schema.Change{Table: TableID(t), Version: v, Pos: pos, CommitTS: ts,
			TxID: strconv.FormatUint(s.txn, 10), Key: schema.Row{{Name: "id", Value: schema.Int(key)}}}
		switch h >> 60 % 4 {
		case 0:
			c.Op = schema.OpDelete
			c.Before = s.row(key, gen-1)
		case 1:
			c.Op = schema.OpInsert
			c.After = s.row(key, gen)
		default:
			c.Op = schema.OpUpdate
			c.After = s.row(key, gen)
		}
		b.Changes = append(b.Changes, c)
	}
	b.Checkpoint = checkpoint(phaseStream, s.txn)
	s.txn++
	s.mu.Lock()
	s.lastTS = ts
	s.mu.Unlock()
	return b, nil
}

func (s *Source) pace(ctx context.Context) error {
	if s.cfg.Rate <= 0 {
		return nil
	}
	interval := time.Duration(float64(time.Second) * float64(s.cfg.TxnSize) / s.cfg.Rate)
	now := time.Now()
	if s.paced.IsZero() || now.Sub(s.paced) > time.Second {
		s.paced = now
	}
	s.paced = s.paced.Add(interval)
	if wait := s.paced.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (s *Source) readSnapshot(ctx context.Context) (schema.Batch, error) {
	per := uint64((s.cfg.SnapshotRows + s.chunkRows() - 1) / s.chunkRows())
	t := int(s.txn / per)
	chunk := s.txn % per
	var b schema.Batch
	v, err := s.announce(ctx, &b, t, changePos(phaseSnapshot, s.txn, 0))
	if err != nil {
		return schema.Batch{}, err
	}
	first := int64(chunk) * int64(s.chunkRows())
	last := min(first+int64(s.chunkRows()), int64(s.cfg.SnapshotRows))
	for key := first; key < last; key++ {
		b.Changes = append(b.Changes, schema.Change{Op: schema.OpSnapshot, Table: TableID(t), Version: v,
			Pos: changePos(phaseSnapshot, s.txn, uint64(key-first)), Key: schema.Row{{Name: "id", Value: schema.Int(key)}},
			After: s.row(key, 0)})
	}
	b.Checkpoint = checkpoint(phaseSnapshot, s.txn)
	s.txn++
	if s.txn >= s.snapshotChunks() {
		s.phase, s.txn = phaseStream, 0
		s.log.Info("snapshot finished", "tables", s.cfg.Tables, "rows_per_table", s.cfg.SnapshotRows)
	}
	s.updateProgress()
	return b, nil
}

// Ack records the durable position.
func (s *Source) Ack(_ context.Context, upTo offsets.Position) error {
	s.mu.Lock()
	s.acked = upTo.Clone()
	s.mu.Unlock()
	return nil
}

// SourceStatus implements sources.StatusReporter.
func (s *Source) SourceStatus() sources.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := false
	for _, p := range s.progress {
		snap = snap || !p.Done
	}
	return sources.Status{Snapshotting: snap, Tables: append([]sources.SnapshotProgress(nil), s.progress...), LastCommit: s.lastTS}
}

// Close is a no-op.
func (s *Source) Close(context.Context) error { return nil }

// Final returns the expected final content of every table after all Changes (with
// Changes > 0): key → row, deleted keys absent. Tests compare sinks against it.
func Final(c Config, maxChanges int) map[schema.TableID]map[int64]schema.Row {
	c = c.WithDefaults()
	s := New(c, sources.Deps{MaxChanges: maxChanges})
	out := map[schema.TableID]map[int64]schema.Row{}
	for t := range c.Tables {
		out[TableID(t)] = map[int64]schema.Row{}
		for k := range int64(c.SnapshotRows) {
			out[TableID(t)][k] = s.row(k, 0)
		}
	}
	for txn := uint64(0); int64(txn)*int64(c.TxnSize) < c.Changes; txn++ {
		n := int(min(int64(c.TxnSize), c.Changes-int64(txn)*int64(c.TxnSize)))
		for i := range n {
			h := mix(c.Seed, txn, uint64(i), 0x5eed)
			t := int(h % uint64(c.Tables))
			key := int64((h >> 16) % uint64(c.Keys))
			gen := txn*uint64(c.TxnSize) + uint64(i) + 1
			if h>>60%4 == 0 {
				delete(out[TableID(t)], key)
			} else {
				out[TableID(t)][key] = s.row(key, gen)
			}
		}
	}
	return out
}

package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/jackc/pgx/v5/pgconn"
)

// Config configures the Postgres source.
type Config struct {
	// DSN is a libpq URL or key=value string. The role needs REPLICATION (or
	// superuser), SELECT on the tables, and CREATE on the database for the
	// publication unless it already exists.
	DSN string `yaml:"dsn" json:"dsn"`
	// Tables are the tables to replicate, as schema.table.
	Tables []string `yaml:"tables" json:"tables"`
	// Slot and Publication default to cdcd_<pipeline>.
	Slot        string `yaml:"slot" json:"slot"`
	Publication string `yaml:"publication" json:"publication"`
	// Snapshot is "initial" (default: copy every table, then stream) or "never".
	Snapshot string `yaml:"snapshot" json:"snapshot"`
	// SnapshotWorkers bounds the connections reading snapshot chunks in parallel.
	SnapshotWorkers int `yaml:"snapshot_workers" json:"snapshot_workers"`
	// SnapshotChunkRows is the target size of one snapshot chunk.
	SnapshotChunkRows int `yaml:"snapshot_chunk_rows" json:"snapshot_chunk_rows"`
	// SnapshotChunking is "ctid" (default: CTID block ranges read in parallel) or
	// "primary_key" (each table read in key order, page by page: for tables whose
	// CTID ranges do not suit, such as heavily bloated ones).
	SnapshotChunking string `yaml:"snapshot_chunking" json:"snapshot_chunking"`
	// HeartbeatInterval is how often pg_logical_emit_message is called so that an
	// idle database does not pin WAL; "0s" disables it.
	HeartbeatInterval string `yaml:"heartbeat_interval" json:"heartbeat_interval"`
	// StatusInterval is how often standby status is sent (well under wal_sender_timeout).
	StatusInterval string `yaml:"status_interval" json:"status_interval"`
	// SlotPollInterval is how often slot health is read from pg_replication_slots.
	SlotPollInterval string `yaml:"slot_poll_interval" json:"slot_poll_interval"`
	// Truncate is the TRUNCATE policy: propagate (default), ignore or halt;
	// TruncateTables overrides it per table.
	Truncate       string            `yaml:"truncate" json:"truncate"`
	TruncateTables map[string]string `yaml:"truncate_tables" json:"truncate_tables"`
	// StreamInProgress streams large in-progress transactions (pgoutput protocol
	// version 2), spooling them to local disk until they commit. Off by default.
	StreamInProgress bool `yaml:"stream_in_progress" json:"stream_in_progress"`
	// SpoolDir is where in-progress transactions are spooled (default: a temp dir).
	SpoolDir string `yaml:"spool_dir" json:"spool_dir"`
	// KeepSlotOnDelete keeps the slot and publication when the pipeline is deleted.
	KeepSlotOnDelete bool `yaml:"keep_slot_on_delete" json:"keep_slot_on_delete"`

	heartbeat, status, slotPoll time.Duration
	tables                      []schema.TableID
}

// Defaults.
const (
	DefaultSnapshotWorkers   = 4
	DefaultSnapshotChunkRows = 100_000
	DefaultHeartbeat         = 30 * time.Second
	DefaultStatus            = 10 * time.Second
	DefaultSlotPoll          = 30 * time.Second
)

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// WithDefaults fills unset fields; pipeline names the slot and publication.
func (c Config) WithDefaults(pipeline string) Config {
	if c.Slot == "" {
		c.Slot = "cdcd_" + pipeline
	}
	if c.Publication == "" {
		c.Publication = "cdcd_" + pipeline
	}
	if c.Snapshot == "" {
		c.Snapshot = "initial"
	}
	if c.SnapshotWorkers == 0 {
		c.SnapshotWorkers = DefaultSnapshotWorkers
	}
	if c.SnapshotChunkRows == 0 {
		c.SnapshotChunkRows = DefaultSnapshotChunkRows
	}
	if c.SnapshotChunking == "" {
		c.SnapshotChunking = "ctid"
	}
	if c.HeartbeatInterval == "" {
		c.HeartbeatInterval = DefaultHeartbeat.String()
	}
	if c.StatusInterval == "" {
		c.StatusInterval = DefaultStatus.String()
	}
	if c.SlotPollInterval == "" {
		c.SlotPollInterval = DefaultSlotPoll.String()
	}
	if c.Truncate == "" {
		c.Truncate = "propagate"
	}
	return c
}

// Validate reports every problem, one per joined error, and parses durations.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DSN == "" {
		bad("dsn: required (e.g. postgres://cdcd@db:5432/app)")
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		bad("dsn: %v", redact.Text(err.Error()))
	}
	if len(c.Tables) == 0 {
		bad("tables: list at least one table as schema.table")
	}
	seen := map[schema.TableID]bool{}
	c.tables = nil
	for i, t := range c.Tables {
		id := schema.ParseTableID(t)
		if id.Namespace == "" {
			id.Namespace = "public"
		}
		if id.Name == "" || strings.ContainsAny(t, "\"") {
			bad("tables[%d]: %q is not a schema.table name", i, t)
			continue
		}
		if seen[id] {
			bad("tables[%d]: %s is listed twice", i, id)
		}
		seen[id] = true
		c.tables = append(c.tables, id)
	}
	if !identRE.MatchString(c.Slot) {
		bad("slot: %q must match %s (a replication slot name)", c.Slot, identRE)
	}
	if len(c.Publication) > 63 || c.Publication == "" {
		bad("publication: must be 1 to 63 bytes")
	}
	if c.Snapshot != "initial" && c.Snapshot != "never" {
		bad("snapshot: must be initial or never, got %q", c.Snapshot)
	}
	if c.SnapshotChunking != "ctid" && c.SnapshotChunking != "primary_key" {
		bad("snapshot_chunking: must be ctid or primary_key, got %q", c.SnapshotChunking)
	}
	if c.SnapshotWorkers < 1 || c.SnapshotWorkers > 64 {
		bad("snapshot_workers: must be between 1 and 64")
	}
	if c.SnapshotChunkRows < 100 {
		bad("snapshot_chunk_rows: must be at least 100")
	}
	dur := func(name, s string, min time.Duration, zeroOK bool) time.Duration {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			bad("%s: bad duration %q", name, s)
		case d == 0 && zeroOK:
		case d < min:
			bad("%s: must be at least %s", name, min)
		}
		return d
	}
	c.heartbeat = dur("heartbeat_interval", c.HeartbeatInterval, time.Second, true)
	c.status = dur("status_interval", c.StatusInterval, 100*time.Millisecond, false)
	c.slotPoll = dur("slot_poll_interval", c.SlotPollInterval, time.Second, false)
	policies := map[string]bool{"propagate": true, "ignore": true, "halt": true}
	if !policies[c.Truncate] {
		bad("truncate: must be propagate, ignore or halt, got %q", c.Truncate)
	}
	for t, p := range c.TruncateTables {
		if !policies[p] {
			bad("truncate_tables[%s]: must be propagate, ignore or halt, got %q", t, p)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) truncatePolicy(id schema.TableID) string {
	if p, ok := c.TruncateTables[id.String()]; ok {
		return p
	}
	return c.Truncate
}

// Factory returns the Postgres source factory.
func Factory() sources.Factory {
	return sources.Factory{
		Spec: func() any { return Config{}.WithDefaults("<pipeline>") },
		New: component.Decoded(func(c Config, d sources.Deps) (sources.Source, error) {
			c = c.WithDefaults(d.Pipeline)
			if err := c.Validate(); err != nil {
				return nil, err
			}
			return New(c, d), nil
		}),
	}
}

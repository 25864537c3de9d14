package mysql

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
)

// Config configures the MySQL/MariaDB source.
type Config struct {
	// Addr is host:port.
	Addr     string `yaml:"addr" json:"addr"`
	User     string `yaml:"user" json:"user"`
	Password string `yaml:"password" json:"password"`
	// Tables are the tables to replicate, as database.table.
	Tables []string `yaml:"tables" json:"tables"`
	// ServerID is the replica id cdcd registers with; it must be unique among the
	// server's replicas and pipelines (default: derived from the pipeline name).
	ServerID uint32 `yaml:"server_id" json:"server_id"`
	// Snapshot is "initial" (default: copy every table, then stream) or "never".
	Snapshot string `yaml:"snapshot" json:"snapshot"`
	// SnapshotChunkRows is the number of rows per snapshot chunk.
	SnapshotChunkRows int `yaml:"snapshot_chunk_rows" json:"snapshot_chunk_rows"`
	// SnapshotWorkers bounds the tables read at once (one connection each).
	SnapshotWorkers int `yaml:"snapshot_workers" json:"snapshot_workers"`
	// HeartbeatInterval is the binlog heartbeat period the server is asked for; a
	// connection silent for three periods is treated as dead.
	HeartbeatInterval string `yaml:"heartbeat_interval" json:"heartbeat_interval"`
	// ZeroDates is what happens to zero dates (0000-00-00): "null" (default) or "error".
	ZeroDates string `yaml:"zero_dates" json:"zero_dates"`
	// Truncate is the TRUNCATE policy: propagate (default), ignore or halt.
	Truncate string `yaml:"truncate" json:"truncate"`

	heartbeat time.Duration
	tables    []schema.TableID
}

// Defaults.
const (
	DefaultSnapshotChunkRows = 10_000
	DefaultHeartbeat         = 10 * time.Second
)

// WithDefaults fills unset fields; pipeline derives the server id.
func (c Config) WithDefaults(pipeline string) Config {
	if c.ServerID == 0 {
		// FNV-1a of the pipeline name, kept clear of small ids people configure by hand
		h := uint32(2166136261)
		for i := 0; i < len(pipeline); i++ {
			h = (h ^ uint32(pipeline[i])) * 16777619
		}
		c.ServerID = 1_000_000 + h%1_000_000_000
	}
	if c.Snapshot == "" {
		c.Snapshot = "initial"
	}
	if c.SnapshotChunkRows == 0 {
		c.SnapshotChunkRows = DefaultSnapshotChunkRows
	}
	if c.SnapshotWorkers == 0 {
		c.SnapshotWorkers = 4
	}
	if c.HeartbeatInterval == "" {
		c.HeartbeatInterval = DefaultHeartbeat.String()
	}
	if c.ZeroDates == "" {
		c.ZeroDates = "null"
	}
	if c.Truncate == "" {
		c.Truncate = "propagate"
	}
	return c
}

// Validate reports every problem, one per joined error.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" {
		bad("addr: %q is not host:port (e.g. db:3306)", c.Addr)
	} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		bad("addr: port %q is not a port number", port)
	}
	if c.User == "" {
		bad("user: required (a user with REPLICATION SLAVE, REPLICATION CLIENT and SELECT)")
	}
	if len(c.Tables) == 0 {
		bad("tables: list at least one table as database.table")
	}
	seen := map[schema.TableID]bool{}
	c.tables = nil
	for i, t := range c.Tables {
		id := schema.ParseTableID(t)
		if id.Namespace == "" || id.Name == "" || strings.ContainsAny(t, "`") {
			bad("tables[%d]: %q is not a database.table name", i, t)
			continue
		}
		if seen[id] {
			bad("tables[%d]: %s is listed twice", i, id)
		}
		seen[id] = true
		c.tables = append(c.tables, id)
	}
	if c.ServerID == 0 {
		bad("server_id: must not be 0")
	}
	if c.Snapshot != "initial" && c.Snapshot != "never" {
		bad("snapshot: must be initial or never, got %q", c.Snapshot)
	}
	if c.SnapshotChunkRows < 10 {
		bad("snapshot_chunk_rows: must be at least 10")
	}
	if c.SnapshotWorkers < 1 || c.SnapshotWorkers > 64 {
		bad("snapshot_workers: must be between 1 and 64")
	}
	d, err := time.ParseDuration(c.HeartbeatInterval)
	switch {
	case err != nil:
		bad("heartbeat_interval: bad duration %q", c.HeartbeatInterval)
	case d < time.Second:
		bad("heartbeat_interval: must be at least 1s")
	}
	c.heartbeat = d
	if c.ZeroDates != "null" && c.ZeroDates != "error" {
		bad("zero_dates: must be null or error, got %q", c.ZeroDates)
	}
	if c.Truncate != "propagate" && c.Truncate != "ignore" && c.Truncate != "halt" {
		bad("truncate: must be propagate, ignore or halt, got %q", c.Truncate)
	}
	return errors.Join(errs...)
}

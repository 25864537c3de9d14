package clickhouse

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cdcd-dev/cdcd/sinks"
)

// Config configures the ClickHouse sink.
type Config struct {
	// Addr lists native-protocol endpoints (host:9000, or :9440 with secure).
	Addr []string `yaml:"addr" json:"addr"`
	// Database holds the destination tables (created if missing). Default "default".
	Database string `yaml:"database" json:"database"`
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"password"`
	// Secure uses TLS.
	Secure bool `yaml:"secure" json:"secure"`
	// The settings every table sink shares: table_name, delete_mode,
	// metadata_prefix, include_op, include_source_ts, on_unrepresentable. Here
	// delete_mode hard makes the engine's is_deleted column hide tombstones from
	// FINAL (ClickHouse 23.2 or later), and on_unrepresentable null applies to
	// Nullable columns only.
	sinks.Common `yaml:",inline"`
	// JSON is how JSON columns are stored: "string" (default) or "json" (the JSON
	// type, ClickHouse 25.3 or later).
	JSON string `yaml:"json" json:"json"`
	// WideDecimal is what happens to decimal columns wider than the server's
	// Decimal (76 digits; 38 before 20.8; 18 before 20.1) or without a declared precision:
	// "string" (default: exact text) or "error".
	WideDecimal string `yaml:"wide_decimal" json:"wide_decimal"`
	// CreateViews creates <table>_current, a view of the current rows (FINAL,
	// without tombstones), next to each table.
	CreateViews bool `yaml:"create_views" json:"create_views"`
	// Tables overrides the table layout per source table (namespace.table).
	Tables map[string]TableOptions `yaml:"tables" json:"tables"`
}

// TableOptions shape one destination table.
type TableOptions struct {
	// OrderBy orders the primary key's columns in the sorting key (default: the
	// key's order). It may name only key columns: the sorting key decides which
	// rows replace each other, and a delete carries only the key.
	OrderBy []string `yaml:"order_by" json:"order_by"`
	// PartitionBy is a PARTITION BY expression over key columns, e.g.
	// intDiv(id, 1000000) (FINAL does not merge across partitions).
	PartitionBy string `yaml:"partition_by" json:"partition_by"`
	// Engine replaces the engine, e.g. ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', _cdc_version, _cdc_deleted).
	Engine string `yaml:"engine" json:"engine"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Database == "" {
		c.Database = "default"
	}
	if c.Username == "" {
		c.Username = "default"
	}
	c.Common = c.Common.WithDefaults()
	if c.JSON == "" {
		c.JSON = "string"
	}
	if c.WideDecimal == "" {
		c.WideDecimal = "string"
	}
	return c
}

var (
	addrRE = regexp.MustCompile(`^[^\s/:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$`)
)

// Validate reports every problem, one per joined error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Addr) == 0 {
		bad("addr: list at least one host:port of the native protocol (e.g. clickhouse:9000)")
	}
	for i, a := range c.Addr {
		if !addrRE.MatchString(a) {
			bad("addr[%d]: %q is not host:port", i, a)
		}
	}
	if c.Database == "" || strings.ContainsAny(c.Database, "`\x00") {
		bad("database: %q is not a database name", c.Database)
	}
	errs = append(errs, c.Common.Problems()...)
	if c.JSON != "string" && c.JSON != "json" {
		bad("json: must be string or json, got %q", c.JSON)
	}
	if c.WideDecimal != "string" && c.WideDecimal != "error" {
		bad("wide_decimal: must be string or error, got %q", c.WideDecimal)
	}
	for name, t := range c.Tables {
		if !strings.Contains(name, ".") {
			bad("tables[%s]: name the source table as namespace.table", name)
		}
		if strings.ContainsAny(t.PartitionBy, ";") || strings.ContainsAny(t.Engine, ";") {
			bad("tables[%s]: partition_by and engine must be single expressions", name)
		}
	}
	return errors.Join(errs...)
}

package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/jackc/pgx/v5/pgconn"
)

// Config configures the Postgres sink.
type Config struct {
	// DSN is a libpq URL or key=value string. The role needs CREATE on the
	// destination schema (tables are created on first sight) and on the schema of
	// the offsets table.
	DSN string `yaml:"dsn" json:"dsn"`
	// Schema is the destination schema (created if missing). Default "public".
	Schema string `yaml:"schema" json:"schema"`
	// The settings every table sink shares: table_name, delete_mode,
	// metadata_prefix, include_op, include_source_ts, on_unrepresentable.
	sinks.Common `yaml:",inline"`
	// WriteMode is "auto" (default: MERGE on Postgres 15 and later, else upsert),
	// "merge" or "upsert" (UPDATE + DELETE + INSERT … ON CONFLICT DO NOTHING).
	WriteMode string `yaml:"write_mode" json:"write_mode"`
	// OffsetsTable is where the pipeline's offset is stored, in Schema unless
	// qualified. Default "_cdc_offsets".
	OffsetsTable string `yaml:"offsets_table" json:"offsets_table"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Schema == "" {
		c.Schema = "public"
	}
	c.Common = c.Common.WithDefaults()
	if c.WriteMode == "" {
		c.WriteMode = "auto"
	}
	if c.OffsetsTable == "" {
		c.OffsetsTable = "_cdc_offsets"
	}
	return c
}

// Validate reports every problem, one per joined error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DSN == "" {
		bad("dsn: required (e.g. postgres://cdcd@warehouse:5432/analytics)")
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		bad("dsn: %v", redact.Text(err.Error()))
	}
	if c.Schema == "" || len(c.Schema) > 63 {
		bad("schema: must be 1 to 63 bytes")
	}
	errs = append(errs, c.Common.Problems()...)
	switch c.WriteMode {
	case "auto", "merge", "upsert":
	default:
		bad("write_mode: must be auto, merge or upsert, got %q", c.WriteMode)
	}
	if c.OffsetsTable == "" || strings.Count(c.OffsetsTable, ".") > 1 || strings.ContainsAny(c.OffsetsTable, `"`) {
		bad("offsets_table: %q is not a table or schema.table name", c.OffsetsTable)
	}
	return errors.Join(errs...)
}

package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/cdcd-dev/cdcd/internal/component"
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
	// TableName names each destination table from its source table; "{namespace}"
	// and "{table}" are replaced. Default "{table}".
	TableName string `yaml:"table_name" json:"table_name"`
	// DeleteMode is "soft" (default: the row stays with _cdc_deleted = true) or
	// "hard" (the row is deleted).
	DeleteMode string `yaml:"delete_mode" json:"delete_mode"`
	// MetadataPrefix prefixes the metadata columns. Default "_cdc_".
	MetadataPrefix string `yaml:"metadata_prefix" json:"metadata_prefix"`
	// IncludeOp adds a <prefix>op column (c, u, d, r, t) with each row's last operation.
	IncludeOp bool `yaml:"include_op" json:"include_op"`
	// IncludeSourceTS adds a <prefix>source_ts column with each row's commit time at the source.
	IncludeSourceTS bool `yaml:"include_source_ts" json:"include_source_ts"`
	// OnUnrepresentable is what happens to a value the destination column cannot
	// hold exactly (a number beyond numeric(p,s), text with a NUL byte, a string
	// longer than varchar(n)): "error" (default: the pipeline stops with a named
	// error) or "null" (the value is stored as NULL, counted in
	// cdcd_sink_values_nulled_total and logged without the value).
	OnUnrepresentable string `yaml:"on_unrepresentable" json:"on_unrepresentable"`
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
	if c.TableName == "" {
		c.TableName = "{table}"
	}
	if c.DeleteMode == "" {
		c.DeleteMode = "soft"
	}
	if c.MetadataPrefix == "" {
		c.MetadataPrefix = "_cdc_"
	}
	if c.OnUnrepresentable == "" {
		c.OnUnrepresentable = "error"
	}
	if c.WriteMode == "" {
		c.WriteMode = "auto"
	}
	if c.OffsetsTable == "" {
		c.OffsetsTable = "_cdc_offsets"
	}
	return c
}

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,30}$`)

// Validate reports every problem, one per joined error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DSN == "" {
		bad("dsn: required (e.g. postgres://cdcd@warehouse:5432/analytics)")
	} else if _, err := pgconn.ParseConfig(c.DSN); err != nil {
		bad("dsn: %v", component.RedactDSN(err.Error()))
	}
	if c.Schema == "" || len(c.Schema) > 63 {
		bad("schema: must be 1 to 63 bytes")
	}
	if !strings.Contains(c.TableName, "{table}") {
		bad("table_name: %q must contain {table}, or every source table would land in one destination table", c.TableName)
	}
	if c.DeleteMode != "soft" && c.DeleteMode != "hard" {
		bad("delete_mode: must be soft or hard, got %q", c.DeleteMode)
	}
	if !prefixRE.MatchString(c.MetadataPrefix) {
		bad("metadata_prefix: %q must match %s", c.MetadataPrefix, prefixRE)
	}
	if c.OnUnrepresentable != "error" && c.OnUnrepresentable != "null" {
		bad("on_unrepresentable: must be error or null, got %q", c.OnUnrepresentable)
	}
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

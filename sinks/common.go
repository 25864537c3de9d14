package sinks

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// Common are the settings every sink that keeps tables current shares
// (DESIGN.md §6). A sink's Config embeds it inline.
type Common struct {
	// TableName names each destination table from its source table; "{namespace}"
	// and "{table}" are replaced. Default "{table}".
	TableName string `yaml:"table_name" json:"table_name"`
	// DeleteMode is "soft" (default: the row stays, marked deleted) or "hard".
	DeleteMode string `yaml:"delete_mode" json:"delete_mode"`
	// MetadataPrefix prefixes the metadata columns. Default "_cdc_".
	MetadataPrefix string `yaml:"metadata_prefix" json:"metadata_prefix"`
	// IncludeOp adds a <prefix>op column with each row's last operation.
	IncludeOp bool `yaml:"include_op" json:"include_op"`
	// IncludeSourceTS adds a <prefix>source_ts column with each row's commit time
	// at the source.
	IncludeSourceTS bool `yaml:"include_source_ts" json:"include_source_ts"`
	// OnUnrepresentable is what happens to a value its destination column cannot
	// hold exactly: "error" (default: the pipeline stops with an error naming
	// table, column, position and reason, never the value) or "null" (the value
	// is stored as NULL and counted in cdcd_sink_values_nulled_total).
	OnUnrepresentable string `yaml:"on_unrepresentable" json:"on_unrepresentable"`
}

// WithDefaults fills unset fields.
func (c Common) WithDefaults() Common {
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
	return c
}

var prefixRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,30}$`)

// Problems lists what is wrong with c, each naming its setting.
func (c Common) Problems() []error {
	var errs []error
	if !strings.Contains(c.TableName, "{table}") {
		errs = append(errs, fmt.Errorf("table_name: %q must contain {table}, or every source table would land in one destination table", c.TableName))
	}
	if c.DeleteMode != "soft" && c.DeleteMode != "hard" {
		errs = append(errs, fmt.Errorf("delete_mode: must be soft or hard, got %q", c.DeleteMode))
	}
	if !prefixRE.MatchString(c.MetadataPrefix) {
		errs = append(errs, fmt.Errorf("metadata_prefix: %q must match %s", c.MetadataPrefix, prefixRE))
	}
	if c.OnUnrepresentable != "error" && c.OnUnrepresentable != "null" {
		errs = append(errs, fmt.Errorf("on_unrepresentable: must be error or null, got %q", c.OnUnrepresentable))
	}
	return errs
}

// DestName is the unquoted destination table name of a source table.
func (c Common) DestName(id schema.TableID) string {
	return strings.NewReplacer("{namespace}", id.Namespace, "{table}", id.Name).Replace(c.TableName)
}

// MetaColumns are the names of the metadata columns under a prefix.
type MetaColumns struct {
	Version, Deleted, SyncedAt, Op, SourceTS string
	// Unchanged is the staging column listing a row's unchanged-TOAST columns.
	Unchanged string
}

// Names are the metadata columns a destination table may have (Unchanged is a
// staging column, not among them).
func (m MetaColumns) Names() []string {
	return []string{m.Version, m.Deleted, m.SyncedAt, m.Op, m.SourceTS}
}

// Meta returns the metadata column names.
func (c Common) Meta() MetaColumns {
	p := c.MetadataPrefix
	return MetaColumns{Version: p + "version", Deleted: p + "deleted", SyncedAt: p + "synced_at", Op: p + "op", SourceTS: p + "source_ts", Unchanged: p + "unchanged"}
}

package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is a config file: connections and the pipelines that use them.
type File struct {
	Connections []Connection `yaml:"connections,omitempty" json:"connections,omitempty"`
	Pipelines   []Pipeline   `yaml:"pipelines,omitempty" json:"pipelines,omitempty"`
	// Alerts, when set, replaces the alert rules (docs/observability.md).
	Alerts *Alerts `yaml:"alerts,omitempty" json:"alerts,omitempty"`
}

// Connection is a named source or destination: its type and the settings shared by
// every pipeline that uses it (host, credentials).
type Connection struct {
	Name   string    `yaml:"name" json:"name"`
	Type   string    `yaml:"type" json:"type"`
	Config yaml.Node `yaml:"config,omitempty" json:"config,omitempty"`
}

// Endpoint is a pipeline's source or sink: a named connection plus per-pipeline
// settings, or an inline type and config. The connection's keys and the pipeline's
// keys are merged; a key set in both is an error.
type Endpoint struct {
	Connection string    `yaml:"connection,omitempty" json:"connection,omitempty"`
	Type       string    `yaml:"type,omitempty" json:"type,omitempty"`
	Config     yaml.Node `yaml:"config,omitempty" json:"config,omitempty"`
}

// Transform is one step of a pipeline's transform chain.
type Transform struct {
	Name   string    `yaml:"name,omitempty" json:"name,omitempty"`
	Type   string    `yaml:"type" json:"type"`
	Tables []string  `yaml:"tables,omitempty" json:"tables,omitempty"`
	Config yaml.Node `yaml:"config,omitempty" json:"config,omitempty"`
}

// nameAt is the name of the transform at index i of its chain: its own, or
// "<i>_<type>".
func (t Transform) nameAt(i int) string {
	if t.Name != "" {
		return t.Name
	}
	return fmt.Sprintf("%d_%s", i, t.Type)
}

// Batch bounds write batches.
type Batch struct {
	MaxChanges int      `yaml:"max_changes,omitempty" json:"max_changes,omitempty"`
	MaxBytes   ByteSize `yaml:"max_bytes,omitempty" json:"max_bytes,omitempty"`
	MaxWait    Duration `yaml:"max_wait,omitempty" json:"max_wait,omitempty"`
	// MinWait: a batch that is not full is written no sooner than this after
	// its first change, even when the source has nothing more and the sink is
	// idle (0: at once; the warehouse sinks default to their max_wait).
	MinWait Duration `yaml:"min_wait,omitempty" json:"min_wait,omitempty"`
}

// Pipeline is one pipeline.
type Pipeline struct {
	Name         string      `yaml:"name" json:"name"`
	Source       Endpoint    `yaml:"source" json:"source"`
	Transforms   []Transform `yaml:"transforms,omitempty" json:"transforms,omitempty"`
	Sink         Endpoint    `yaml:"sink" json:"sink"`
	Batch        Batch       `yaml:"batch,omitempty" json:"batch,omitempty"`
	DrainTimeout Duration    `yaml:"drain_timeout,omitempty" json:"drain_timeout,omitempty"`
	// Retry is how attempts that fail with a retryable error are retried.
	Retry Retry `yaml:"retry,omitempty" json:"retry,omitzero"`
	// SchemaChanges is the schema-change policy (DESIGN.md §7 when empty).
	SchemaChanges SchemaChanges `yaml:"schema_changes,omitempty" json:"schema_changes,omitzero"`
	// OnTransformError is what a row that a transform fails on does: stop (the
	// pipeline fails, naming the transform and position) or skip (the row is
	// dropped, counted and recorded in the pipeline's errors).
	OnTransformError string `yaml:"on_transform_error,omitempty" json:"on_transform_error,omitempty"`
	// Paused creates the pipeline without starting it.
	Paused bool `yaml:"paused,omitempty" json:"paused,omitempty"`
	// Verify schedules verifies of the replica (cdcd pipelines verify).
	Verify VerifySchedule `yaml:"verify,omitempty" json:"verify,omitzero"`
}

// VerifySchedule runs a verify of a running pipeline every Every (0: never),
// recording the report (API, metrics, events) as a verify by hand does;
// Repair also resyncs the tables it finds different.
type VerifySchedule struct {
	Every  Duration `yaml:"every,omitempty" json:"every,omitempty"`
	Repair bool     `yaml:"repair,omitempty" json:"repair,omitempty"`
}

// Retry is a pipeline's retry policy: a jittered exponential backoff from
// Backoff, capped at MaxBackoff; MaxAttempts, when set, fails the pipeline
// after that many consecutive failed attempts (0: retry for as long as it
// takes).
type Retry struct {
	Backoff     Duration `yaml:"backoff,omitempty" json:"backoff,omitempty"`
	MaxBackoff  Duration `yaml:"max_backoff,omitempty" json:"max_backoff,omitempty"`
	MaxAttempts int      `yaml:"max_attempts,omitempty" json:"max_attempts,omitempty"`
}

// SchemaPolicy sets, per kind of source schema change, what the pipeline does:
// apply, keep (drops), hold (the table waits for a decision), fail, new_column
// (renames). Empty fields take the default.
type SchemaPolicy struct {
	AddColumn    string `yaml:"add_column,omitempty" json:"add_column,omitempty"`
	Widen        string `yaml:"widen,omitempty" json:"widen,omitempty"`
	DropColumn   string `yaml:"drop_column,omitempty" json:"drop_column,omitempty"`
	RenameColumn string `yaml:"rename_column,omitempty" json:"rename_column,omitempty"`
	Narrow       string `yaml:"narrow,omitempty" json:"narrow,omitempty"`
	KeyChange    string `yaml:"key_change,omitempty" json:"key_change,omitempty"`
}

// SchemaChanges is a pipeline's policy and its per-table overrides.
type SchemaChanges struct {
	SchemaPolicy `yaml:",inline"`
	Tables       []TableSchemaPolicy `yaml:"tables,omitempty" json:"tables,omitempty"`
}

// TableSchemaPolicy overrides the policy for destination tables matching Match
// ("namespace.name", with * and ? wildcards). The first match wins.
type TableSchemaPolicy struct {
	Match        string `yaml:"match" json:"match"`
	SchemaPolicy `yaml:",inline"`
}

// Defaults.
const (
	DefaultMaxChanges   = 10_000
	DefaultMaxBytes     = ByteSize(4 << 20)
	DefaultMaxWait      = Duration(time.Second)
	DefaultDrainTimeout = Duration(30 * time.Second)
	DefaultBackoff      = Duration(time.Second)
	DefaultMaxBackoff   = Duration(5 * time.Minute)
)

// warehouseBatch are the batch defaults of the warehouse sinks: each batch is
// an upload and a MERGE per table, and warehouses bill compute by the second
// with a minimum per resume, so they take fewer, larger batches.
var warehouseBatch = map[string]Batch{
	"snowflake": {MaxChanges: 250_000, MaxBytes: ByteSize(64 << 20), MaxWait: Duration(30 * time.Second), MinWait: Duration(30 * time.Second)},
	"bigquery":  {MaxChanges: 250_000, MaxBytes: ByteSize(64 << 20), MaxWait: Duration(30 * time.Second), MinWait: Duration(30 * time.Second)},
}

// WithDefaults returns p with every unset setting at its default.
func (p Pipeline) WithDefaults() Pipeline {
	if w, ok := warehouseBatch[p.Sink.Type]; ok {
		if p.Batch.MaxChanges == 0 {
			p.Batch.MaxChanges = w.MaxChanges
		}
		if p.Batch.MaxBytes == 0 {
			p.Batch.MaxBytes = w.MaxBytes
		}
		if p.Batch.MaxWait == 0 {
			p.Batch.MaxWait = w.MaxWait
		}
		if p.Batch.MinWait == 0 {
			p.Batch.MinWait = min(w.MinWait, p.Batch.MaxWait)
		}
	}
	if p.Batch.MaxChanges == 0 {
		p.Batch.MaxChanges = DefaultMaxChanges
	}
	if p.Batch.MaxBytes == 0 {
		p.Batch.MaxBytes = DefaultMaxBytes
	}
	if p.Batch.MaxWait == 0 {
		p.Batch.MaxWait = DefaultMaxWait
	}
	if p.DrainTimeout == 0 {
		p.DrainTimeout = DefaultDrainTimeout
	}
	if p.Retry.Backoff == 0 {
		p.Retry.Backoff = DefaultBackoff
	}
	if p.Retry.MaxBackoff == 0 {
		p.Retry.MaxBackoff = DefaultMaxBackoff
	}
	for i := range p.Transforms {
		p.Transforms[i].Name = p.Transforms[i].nameAt(i)
	}
	return p
}

// Duration is a time.Duration written as a string ("500ms", "1m30s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"500ms\" or \"1m\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q (want e.g. \"500ms\", \"30s\", \"1m\")", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// ByteSize is a size in bytes, written as an integer or with a unit
// ("4MiB", "512KiB", "1GB").
type ByteSize int64

var units = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}

// ParseByteSize parses "4MiB", "1GB", "1024".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. 4MiB, 512KiB, 1GB or a number of bytes)", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// String renders b with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for _, u := range []int{2, 1, 0} { // GiB, MiB, KiB: the largest that divides
		u := units[u]
		if int64(b) >= u.mult && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// MarshalJSON implements json.Marshaler.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

package config_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/cdcd-dev/cdcd/sinks/file"
	pgsink "github.com/cdcd-dev/cdcd/sinks/postgres"
	"github.com/cdcd-dev/cdcd/sources/datagen"
	pgsrc "github.com/cdcd-dev/cdcd/sources/postgres"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func testRegistry() *registry.Registry {
	r := registry.New()
	r.Sources["datagen"] = datagen.Factory()
	r.Sinks["file"] = file.Factory()
	return r
}

func env(m map[string]string) config.Secrets {
	return config.Secrets{All: true, Lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

const good = `
connections:
  - name: gen
    type: datagen
    config: {tables: 3}
pipelines:
  - name: orders
    source: {connection: gen, config: {snapshot_rows: 10}}
    sink: {type: file, config: {dir: /tmp/out}}
    batch: {max_changes: 500, max_bytes: 4MiB, max_wait: 250ms}
`

func TestParseAndDefaults(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(good))
	require.NoError(t, err)
	require.NoError(t, config.Validate(f, testRegistry(), nil, env(nil)))
	p := f.Pipelines[0].WithDefaults()
	require.Equal(t, 500, p.Batch.MaxChanges)
	require.Equal(t, config.ByteSize(4<<20), p.Batch.MaxBytes)
	require.Equal(t, config.Duration(250*time.Millisecond), p.Batch.MaxWait)
	require.Equal(t, config.DefaultDrainTimeout, p.DrainTimeout)

	// JSON is accepted too, with the same strictness.
	j := `{"pipelines":[{"name":"x","source":{"type":"datagen"},"sink":{"type":"file","config":{"dir":"d"}}}]}`
	f, err = config.Parse([]byte(j))
	require.NoError(t, err)
	require.NoError(t, config.Validate(f, testRegistry(), nil, env(nil)))
}

func TestUnknownKeysAreErrors(t *testing.T) {
	t.Parallel()
	_, err := config.Parse([]byte("pipelines:\n  - name: a\n    sorce: {}\n"))
	require.ErrorContains(t, err, "field sorce not found")

	// Unknown keys inside a component's config are caught by its factory.
	f, err := config.Parse([]byte(`
pipelines:
  - name: a
    source: {type: datagen, config: {tabels: 3}}
    sink: {type: file, config: {dir: d}}
`))
	require.NoError(t, err)
	err = config.Validate(f, testRegistry(), nil, env(nil))
	require.ErrorContains(t, err, "pipelines[a].source.config: line 1: field tabels not found")
}

func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(`
connections:
  - name: Bad Name
    type: nosuch
  - name: gen
    type: datagen
    config: {tables: 2}
pipelines:
  - name: Orders-1
    source: {connection: gen, config: {tables: 5, txn_size: 0}}
    sink: {type: file}
    batch: {max_changes: 0, max_bytes: 10, max_wait: 2h}
    drain_timeout: 10ms
    retry: {backoff: 1ms, max_attempts: -1}
  - name: b
    source: {connection: missing}
    retry: {backoff: 10s, max_backoff: 5s}
    sink: {type: nosink, config: {dir: x}}
    transforms: [{type: nosuch}]
  - name: b
    source: {type: datagen, connection: gen}
    sink: {type: file, config: {dir: "${NOPE}"}}
`))
	require.NoError(t, err)
	err = config.Validate(f, testRegistry(), nil, env(nil))
	var ps config.Problems
	require.ErrorAs(t, err, &ps)
	got := map[string]bool{}
	for _, p := range ps {
		got[p.Path] = true
	}
	for _, want := range []string{
		"connections[Bad Name].name",
		"connections[Bad Name].type",
		"pipelines[Orders-1].name",
		"pipelines[Orders-1].batch.max_bytes",
		"pipelines[Orders-1].batch.max_wait",
		"pipelines[Orders-1].drain_timeout",
		"pipelines[Orders-1].retry.backoff",
		"pipelines[Orders-1].retry.max_attempts",
		"pipelines[b].retry.max_backoff",
		"pipelines[Orders-1].source.config", // tables set in both connection and pipeline
		"pipelines[Orders-1].sink.config",   // dir is required
		"pipelines[b].source.connection",
		"pipelines[b].sink.type",
		"pipelines[b].transforms[0].type",
		"pipelines[b].name", // duplicate
		"pipelines[b].source",
		"pipelines[b].sink.config.dir",
	} {
		require.True(t, got[want], "missing problem at %s; got:\n%s", want, err)
	}
	require.Contains(t, err.Error(), "environment variable NOPE is not set")
	require.Contains(t, err.Error(), `"tables" is set both by connection "gen" and by the pipeline`)
	require.True(t, ps.Permanent())
}

func TestExpandSecrets(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`{dsn: "postgres://u:${PW}@h/db", password: "${file:`+secret+`}", port: 5432}`), &n))
	out, err := env(map[string]string{"PW": "p@ss"}).Expand(&n, "x")
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, out.Decode(&v))
	require.Equal(t, "postgres://u:p@ss@h/db", v["dsn"])
	require.Equal(t, "s3cret", v["password"])
	require.Equal(t, 5432, v["port"], "non-string values keep their type")

	var m yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`{port: "${PORT}", flag: "${FLAG}", name: "${NAME}", mixed: "a${PORT}"}`), &m))
	out, err = env(map[string]string{"PORT": "5433", "FLAG": "true", "NAME": "0x: y"}).Expand(&m, "x")
	require.NoError(t, err)
	v = nil
	require.NoError(t, out.Decode(&v))
	require.Equal(t, 5433, v["port"], "a whole-value reference takes the expanded type")
	require.Equal(t, true, v["flag"])
	require.Equal(t, "0x: y", v["name"])
	require.Equal(t, "a5433", v["mixed"])

	_, err = env(nil).Expand(&n, "x")
	require.ErrorContains(t, err, "x.dsn: environment variable PW is not set")
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`
dsn: postgres://app:hunter2@db:5432/x
kv: host=db password=hunter2 user=app
password: hunter2
password_ref: "${PG_PASSWORD}"
nested: {api_key: abc, private_key: "-----BEGIN", ok: visible}
`), &n))
	v, err := config.ToJSON(&n)
	require.NoError(t, err)
	b, _ := json.Marshal(v)
	s := string(b)
	require.NotContains(t, s, "hunter2")
	require.NotContains(t, s, "abc")
	require.NotContains(t, s, "BEGIN")
	require.Contains(t, s, "postgres://app:******@db:5432/x")
	require.Contains(t, s, "${PG_PASSWORD}", "a reference is not a secret and stays visible")
	require.Contains(t, s, "visible")
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]config.ByteSize{"1024": 1024, "4MiB": 4 << 20, "1GB": 1e9, "512 KiB": 512 << 10} {
		got, err := config.ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := config.ParseByteSize("4 parsecs")
	require.Error(t, err)
	require.Equal(t, "4MiB", config.ByteSize(4<<20).String())
}

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	f, err := config.Parse([]byte(good))
	require.NoError(t, err)
	raw, err := config.Marshal(f.Pipelines[0])
	require.NoError(t, err)
	p, err := config.ParsePipeline(raw)
	require.NoError(t, err)
	again, err := config.Marshal(p)
	require.NoError(t, err)
	require.JSONEq(t, string(raw), string(again))
	require.True(t, strings.Contains(string(raw), `"max_wait":"250ms"`))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"pipelines":[{"name":"x"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := config.Parse(b)
		if err != nil {
			return
		}
		_ = config.Validate(cf, testRegistry(), nil, env(nil))
	})
}

func TestWarehouseBatchDefaults(t *testing.T) {
	p := config.Pipeline{Sink: config.Endpoint{Type: "snowflake"}}.WithDefaults()
	require.Equal(t, config.Duration(30*time.Second), p.Batch.MaxWait)
	require.Equal(t, 250_000, p.Batch.MaxChanges)
	require.Equal(t, config.Duration(30*time.Second), p.Batch.MinWait, "fewer, larger merges")
	p = config.Pipeline{Sink: config.Endpoint{Type: "snowflake"}, Batch: config.Batch{MaxWait: config.Duration(time.Second)}}.WithDefaults()
	require.Equal(t, config.Duration(time.Second), p.Batch.MaxWait, "a set value wins")
	require.Equal(t, config.Duration(time.Second), p.Batch.MinWait, "never above max_wait")
	p = config.Pipeline{Sink: config.Endpoint{Type: "postgres"}}.WithDefaults()
	require.Equal(t, config.DefaultMaxWait, p.Batch.MaxWait)
	require.Zero(t, p.Batch.MinWait, "as soon as the source is idle")
}

func TestMinWaitWithinMaxWait(t *testing.T) {
	t.Parallel()
	doc := strings.Replace(good, "batch: {max_changes: 500, max_bytes: 4MiB, max_wait: 250ms}", "batch: {max_changes: 500, max_bytes: 4MiB, max_wait: 250ms, min_wait: 1s}", 1)
	f, err := config.Parse([]byte(doc))
	require.NoError(t, err)
	err = config.Validate(f, testRegistry(), nil, env(nil))
	require.ErrorContains(t, err, "pipelines[orders].batch.min_wait: must be between 0 and max_wait (250ms), got 1s")
}

// What Marshal stores, the strict decoder reads back, whatever characters a
// value holds (YAML allows fewer raw than JSON).
func TestMarshalParsesBack(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"\u0085\u0080\u009f\u007f", "\ufffe\uffff", "tab\tnul\x00", "😀 \u2028"} {
		var n yaml.Node
		require.NoError(t, n.Encode(map[string]any{"password": v, v: 1}))
		c := config.Connection{Name: "c", Type: "file", Config: n}
		b, err := config.Marshal(c)
		require.NoError(t, err)
		back, err := config.ParseConnection(b)
		require.NoError(t, err, "%q: %s", v, b)
		var m map[string]any
		require.NoError(t, back.Config.Decode(&m))
		require.Equal(t, v, m["password"])
		require.Equal(t, 1, m[v])
	}
}

// TestConnectionFitsItsType: a connection's keys and their kinds are checked
// when it is stored, in the user's terms, against each role its type has (a
// postgres connection is a source or a destination).
func TestConnectionFitsItsType(t *testing.T) {
	t.Parallel()
	r := testRegistry()
	r.Sources["postgres"] = pgsrc.Factory()
	r.Sinks["postgres"] = pgsink.Factory()
	conn := func(typ, cfg string) config.Connection {
		var n yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(cfg), &n))
		return config.Connection{Name: "c", Type: typ, Config: *n.Content[0]}
	}
	require.NoError(t, config.ValidateConnection(conn("postgres", `{dsn: "postgres://h/db"}`), r, config.Secrets{}))
	require.NoError(t, config.ValidateConnection(conn("postgres", `{dsn: "postgres://h/db", schema: replica}`), r, config.Secrets{}), "a destination")
	require.NoError(t, config.ValidateConnection(conn("postgres", `{dsn: "postgres://h/db", tables: [public.t]}`), r, config.Secrets{}), "a source")

	err := config.ValidateConnection(conn("datagen", `{tabels: 3}`), r, config.Secrets{})
	require.EqualError(t, err, `connection.config: unknown key "tabels"`)
	err = config.ValidateConnection(conn("datagen", `{tables: four}`), r, config.Secrets{})
	require.ErrorContains(t, err, `connection.config: "four" must be a number`)
	require.NotContains(t, err.Error(), "unmarshal")
	err = config.ValidateConnection(conn("datagen", `{tables: [a.b]}`), r, config.Secrets{})
	require.ErrorContains(t, err, `connection.config: a list where a number is expected`)
	err = config.ValidateConnection(conn("postgres", `{dsn: x, tables: [a.b], schema: s}`), r, config.Secrets{})
	require.ErrorContains(t, err, `fits no role of a postgres connection: as a source: unknown key "schema"; as a destination: unknown key "tables"`)
}

// A rule's threshold is checked against its condition: verify_mismatch takes
// a whole number of rows, 0 or more; conditions without one take none.
func TestAlertThresholds(t *testing.T) {
	t.Parallel()
	rule := func(name, cond string, th float64) config.AlertRule {
		return config.AlertRule{Name: name, Condition: cond, Threshold: th, Channels: []string{"ops"}}
	}
	err := config.ValidateAlerts(config.Alerts{Rules: []config.AlertRule{
		rule("any", "verify_mismatch", 0), rule("some", "verify_mismatch", 10),
		rule("neg", "verify_mismatch", -1), rule("half", "verify_mismatch", 0.5),
		rule("lag", "lag_seconds", 0), rule("held", "schema_change_held", 3),
	}}, testRegistry(), nil)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"alerts.rules[neg].threshold: must be a whole number of rows", "alerts.rules[half].threshold: must be a whole number of rows",
		"alerts.rules[lag].threshold: required: a positive number (seconds)", "alerts.rules[held].threshold: condition schema_change_held takes no threshold",
	} {
		require.Contains(t, msg, want)
	}
	for _, ok := range []string{"rules[any].threshold", "rules[some].threshold"} {
		require.NotContains(t, msg, ok)
	}
}

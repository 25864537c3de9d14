package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// A server resolves for an API caller only what its operator allowed: the
// key file and environment stay out of reach, whatever the document says.
func TestSecretsAllowList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(secrets, 0o700))
	require.NoError(t, os.MkdirAll(data, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(secrets, "pg"), []byte("allowed-file\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(data, "secret.key"), []byte("MASTER"), 0o600))
	require.NoError(t, os.Symlink(filepath.Join(data, "secret.key"), filepath.Join(secrets, "link")))
	env := map[string]string{"CDCD_SECRET_PG": "allowed-env", "HOME": "/root", "CDCD_SECRET_KEY": "MASTER"}
	read := 0
	s := config.Secrets{EnvPrefixes: []string{"CDCD_SECRET_"}, Dirs: []string{secrets},
		DenyEnv: []string{"CDCD_SECRET_KEY"}, DenyFiles: []string{data},
		Lookup:   func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) { read++; return os.ReadFile(p) }}

	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`{a: "${CDCD_SECRET_PG}", b: "${file:`+filepath.Join(secrets, "pg")+`}"}`), &n))
	out, err := s.Expand(&n, "x")
	require.NoError(t, err)
	var v map[string]string
	require.NoError(t, out.Decode(&v))
	require.Equal(t, map[string]string{"a": "allowed-env", "b": "allowed-file"}, v)
	require.Equal(t, 1, read)

	for ref, why := range map[string]string{
		"${HOME}":            "only environment variables starting with CDCD_SECRET_",
		"${CDCD_SECRET_KEY}": "the server's own setting",
		"${CDCD_SECRET_}":    "only environment variables starting with CDCD_SECRET_",
		"${file:" + filepath.Join(data, "secret.key") + "}":          "the server's own key or store",
		"${file:" + filepath.Join(secrets, "link") + "}":             "the server's own key or store",
		"${file:" + filepath.Join(secrets, "..", "data", "x") + "}":  "the server's own key or store",
		"${file:/etc/passwd}":                                        "only files under " + secrets,
		"${file:relative/pg}":                                        "give an absolute path",
		"prefix ${file:" + filepath.Join(dir, "secretsX", "y") + "}": "only files under",
	} {
		var m yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(`{outer: {inner: "`+ref+`"}}`), &m))
		_, err := s.Expand(&m, "config")
		require.ErrorContains(t, err, "config.outer.inner: ", ref)
		require.ErrorContains(t, err, why, ref)
		require.ErrorContains(t, s.Check(&m, "config"), why, ref)
	}
	require.Equal(t, 1, read, "nothing is read for a reference that is not allowed")

	var none config.Secrets
	require.ErrorContains(t, none.Allowed("CDCD_SECRET_PG"), "resolves no environment variables")
	require.ErrorContains(t, none.Allowed("file:/x"), "resolves no files")
	require.NoError(t, config.AllSecrets.Allowed("file:/etc/passwd"))
}

func TestRecordingSecrets(t *testing.T) {
	t.Parallel()
	var seen []string
	s := config.Secrets{All: true, Lookup: func(k string) (string, bool) { return "v-" + k, true }}.Recording(&seen)
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(`{a: "${A}", b: ["x${B}y"]}`), &n))
	_, err := s.Expand(&n, "x")
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"v-A", "v-B"}, seen)
}

// Sending back what GET showed keeps the stored secrets; the placeholder is
// never stored as a value.
func TestUnredact(t *testing.T) {
	t.Parallel()
	parse := func(s string) *yaml.Node {
		var n yaml.Node
		require.NoError(t, yaml.Unmarshal([]byte(s), &n))
		return &n
	}
	stored := parse(`{dsn: "postgres://u:Pa@ss@h/db?sslmode=require", password: hunter2, list: [{token: t1}], port: 5432, kv: "host=h password='a b'"}`)
	display, err := config.ToJSON(stored)
	require.NoError(t, err)
	back, err := yaml.Marshal(display)
	require.NoError(t, err)
	n := parse(string(back))
	require.NoError(t, config.Unredact(n, stored, "config"))
	var got, want map[string]any
	require.NoError(t, n.Decode(&got))
	require.NoError(t, stored.Decode(&want))
	require.Equal(t, want, got)

	n = parse(`{dsn: "postgres://u:******@other/db", password: "******", extra: "******", list: [{token: "******"}, {token: "******"}]}`)
	err = config.Unredact(n, stored, "config")
	require.ErrorContains(t, err, "config.dsn: holds the redaction placeholder")
	require.ErrorContains(t, err, "config.extra: is the redaction placeholder ******, but no value is stored here")
	require.ErrorContains(t, err, "config.list[1].token: is the redaction placeholder")
	require.NotContains(t, err.Error(), "config.password")
	require.NotContains(t, err.Error(), "config.list[0]")
}

func TestPipelineUnredact(t *testing.T) {
	t.Parallel()
	stored, err := config.ParsePipeline([]byte(`{name: p, source: {type: datagen, config: {password: s1}}, sink: {type: file, config: {dir: /x, token: s2}},
		transforms: [{type: mask, config: {key: k0}}, {name: m2, type: mask, config: {key: k1}}]}`))
	require.NoError(t, err)
	sent, err := config.ParsePipeline([]byte(`{name: p, source: {type: datagen, config: {password: "******"}}, sink: {type: file, config: {dir: /x, token: "******"}},
		transforms: [{name: m2, type: mask, config: {key: "******"}}, {type: filter, config: {keep: "true"}}, {type: mask, config: {key: "******"}}]}`))
	require.NoError(t, err)
	err = sent.Unredact(stored)
	// the mask at index 2 is 2_mask now, not the stored 0_mask: nothing to keep
	require.ErrorContains(t, err, "pipelines[p].transforms[2].config.key: is the redaction placeholder")
	require.NotContains(t, err.Error(), "transforms[0]")
	var key string
	require.NoError(t, sent.Transforms[0].Config.Decode(&struct {
		Key *string `yaml:"key"`
	}{&key}))
	require.Equal(t, "k1", key, "matched by name, not by index")
}

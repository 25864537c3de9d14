package mask

import (
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/stretchr/testify/require"
)

const key = "0123456789abcdef-test-key"

func TestGoldenHash(t *testing.T) {
	m, err := New(Config{Columns: []string{"email"}, Key: key, Length: 16})
	require.NoError(t, err)
	transformtest.Golden(t, m, "users")
}

func TestMethods(t *testing.T) {
	apply := func(c Config, v string) schema.Value {
		m, err := New(c)
		require.NoError(t, err)
		ch := schema.Change{After: schema.Row{{Name: "x", Value: schema.String(v)}}}
		_, err = m.Apply(&ch)
		require.NoError(t, err)
		return ch.After[0].Value
	}
	require.Equal(t, "************1111", apply(Config{Columns: []string{"x"}, Method: "partial", KeepLast: 4}, "4111111111111111").Text())
	require.Equal(t, "***@example.com", apply(Config{Columns: []string{"x"}, Method: "email"}, "ann@example.com").Text())
	require.True(t, apply(Config{Columns: []string{"x"}, Method: "redact"}, "secret").IsNull())
	r := "[removed]"
	require.Equal(t, r, apply(Config{Columns: []string{"x"}, Method: "redact", Replacement: &r}, "secret").Text())
	a := apply(Config{Columns: []string{"x"}, Key: key}, "same")
	b := apply(Config{Columns: []string{"x"}, Key: key}, "same")
	require.Equal(t, a, b, "equal inputs hash equally: joins still work")
	require.NotEqual(t, a, apply(Config{Columns: []string{"x"}, Key: key + "2"}, "same"), "another key, another hash")
	require.Len(t, apply(Config{Columns: []string{"x"}, Key: key, Encoding: "base64"}, "v").Text(), 43)

	_, err := New(Config{Columns: []string{"x"}, Key: "short"})
	require.ErrorContains(t, err, "16 bytes")
	_, err = New(Config{Method: "scramble"})
	require.ErrorContains(t, err, "columns:")
	require.ErrorContains(t, err, "method:")
	m, _ := New(Config{Columns: []string{"id"}, Method: "redact"})
	_, err = m.Schema(transformtest.Users)
	require.ErrorContains(t, err, "primary key")
}

// FuzzMask: masking never panics and the masked output never contains the
// clear value (hash, redact, email's local part).
func FuzzMask(f *testing.F) {
	f.Add("ann@example.com")
	f.Add("4111111111111111")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		for _, c := range []Config{{Columns: []string{"x"}, Key: key}, {Columns: []string{"x"}, Method: "redact"}, {Columns: []string{"x"}, Method: "email"}, {Columns: []string{"x"}, Method: "tokenize", Key: key}} {
			m, err := New(c)
			require.NoError(t, err)
			ch := schema.Change{Key: schema.Row{{Name: "x", Value: schema.String(v)}}, After: schema.Row{{Name: "x", Value: schema.String(v)}}}
			_, err = m.Apply(&ch)
			require.NoError(t, err)
			out := ch.After[0].Value.Text()
			secret := v
			if c.Method == "email" { // the domain is kept by design: look at the local part
				secret, _, _ = strings.Cut(v, "@")
				out, _, _ = strings.Cut(out, "@")
			}
			if c.Method == "tokenize" {
				// same shape by design; with 8 or more letters and digits an
				// unchanged output has odds below 1e-8
				require.Equal(t, len(v), len(out))
				if alnum(v) < 8 {
					continue
				}
			}
			if len(secret) >= 4 && strings.Contains(out, secret) {
				t.Fatalf("%s: output %q contains the input %q", c.Method, out, secret)
			}
		}
	})
}

// A masked column renamed at the source would flow in clear under its new name:
// the chain stops with the transform and table named instead.
func TestMaskedColumnRenamedAtSourceIsAnError(t *testing.T) {
	m, err := New(Config{Columns: []string{"email"}, Method: "redact"})
	require.NoError(t, err)
	chain := transforms.NewChain(transforms.Step{Name: "pii", Transform: m})
	v1 := transformtest.Users
	require.NoError(t, chain.ApplyBatch(&schema.Batch{Deltas: []schema.Delta{{Table: v1}}}))
	v2 := v1.Clone()
	v2.Version = 2
	v2.Columns[1].Name = "mail"
	err = chain.ApplyBatch(&schema.Batch{Deltas: []schema.Delta{{Table: v2, From: 1, Changes: schema.Diff(v1, v2)}}})
	require.ErrorContains(t, err, "transform pii on public.users: column email to mask is not in table public.users (dropped or renamed at the source?)")
	require.True(t, component.IsPermanent(err))
}

func alnum(s string) int {
	n := 0
	for _, c := range []byte(s) {
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			n++
		}
	}
	return n
}

func TestTokenizeKeepsShapeAndIsDeterministic(t *testing.T) {
	m, err := New(Config{Columns: []string{"card", "email"}, Method: "tokenize", Key: key})
	require.NoError(t, err)
	apply := func(card, email string) (string, string) {
		ch := schema.Change{After: schema.Row{{Name: "card", Value: schema.String(card)}, {Name: "email", Value: schema.String(email)}}}
		_, err := m.Apply(&ch)
		require.NoError(t, err)
		return ch.After[0].Value.Text(), ch.After[1].Value.Text()
	}
	c1, e1 := apply("4111-1111-1111-1111", "Ann.Lee@example.com")
	require.Regexp(t, `^\d{4}-\d{4}-\d{4}-\d{4}$`, c1)
	require.Regexp(t, `^[A-Z][a-z]{2}\.[A-Z][a-z]{2}@[a-z]{7}\.[a-z]{3}$`, e1)
	require.NotEqual(t, "4111-1111-1111-1111", c1)
	c2, e2 := apply("4111-1111-1111-1111", "Ann.Lee@example.com")
	require.Equal(t, c1, c2, "equal inputs give equal tokens")
	require.Equal(t, e1, e2)
	c3, _ := apply("4111-1111-1111-1112", "x")
	require.NotEqual(t, c1[:14], c3[:14], "the whole value seeds the stream")
	_, err = New(Config{Columns: []string{"x"}, Method: "tokenize"})
	require.ErrorContains(t, err, "tokenize needs a secret key")
}

// TestExistingValueIsMasked: a column added with a default carries the value
// the rows already there hold; the sink writes it into them, so it is masked
// like theirs, never passed on in clear.
func TestExistingValueIsMasked(t *testing.T) {
	m, err := New(Config{Columns: []string{"email"}, Key: key, Length: 16})
	require.NoError(t, err)
	in := schema.Table{ID: schema.TableID{Name: "u"}, PrimaryKey: []string{"id"}, Columns: []schema.Column{
		{Name: "id", Type: schema.Type{Kind: schema.KindInt}},
		{Name: "email", Type: schema.Type{Kind: schema.KindString, Name: "text"}, Nullable: true, Existing: &schema.Existing{Value: schema.String("nobody@example.com")}}}}
	out, err := m.Schema(in)
	require.NoError(t, err)
	c := schema.Change{Op: schema.OpInsert, After: schema.Row{{Name: "email", Value: schema.String("nobody@example.com")}}}
	_, err = m.Apply(&c)
	require.NoError(t, err)
	require.Equal(t, c.After[0].Value, out.Columns[1].Existing.Value, "the same as a row holding it")
	require.Equal(t, schema.String("nobody@example.com"), in.Columns[1].Existing.Value, "the input shape is left as it was")
}

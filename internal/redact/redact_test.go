package redact_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/stretchr/testify/require"
)

func TestText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"url", "postgres://app:hunter2@db:5432/x", "postgres://app:******@db:5432/x"},
		{"at in password", "postgres://u:Pa@ss_S3cr3t@h/db", "postgres://u:******@h/db"},
		{"user only", "postgres://app@db/x", "postgres://app@db/x"},
		{"reference", "postgres://app:${PG_PASSWORD}@db/x", "postgres://app:${PG_PASSWORD}@db/x"},
		{"query keeps the rest", "postgres://u@h/db?password=x&sslmode=require&application_name=a", "postgres://u@h/db?password=******&sslmode=require&application_name=a"},
		{"query encoded key", "postgres://u@h/db?pass%77ord=x&sslmode=require", "postgres://u@h/db?pass%77ord=******&sslmode=require"},
		{"url in an error", `connect "postgres://u:pw@h/db": dial tcp: refused`, `connect "postgres://u:******@h/db": dial tcp: refused`},
		{"kv", "host=db password=hunter2 user=app", "host=db password=****** user=app"},
		{"kv escaped space", `host=db password=Pw\ Esc user=app`, "host=db password=****** user=app"},
		{"kv quoted", `host=db password='it''s \' x' user=app`, "host=db password=****** user=app"},
		{"kv upper case", "host=db PASSWORD=hunter2", "host=db PASSWORD=******"},
		{"kv spaces around =", "password = 'a b' user=app", "password = ****** user=app"},
		{"kv reference", "password=${PW} user=app", "password=${PW} user=app"},
		{"json", `{"password": "a\"b", "host": "db"}`, `{"password": "******", "host": "db"}`},
		{"json number", `{"api_key": 1234, "host": "db"}`, `{"api_key": ******, "host": "db"}`},
		{"sslpassword", "sslpassword=x sslkey=/etc/k", "sslpassword=****** sslkey=/etc/k"},
		{"file key is a path", "private_key_file=/etc/key.p8", "private_key_file=/etc/key.p8"},
		{"plain", "password authentication failed for user \"app\"", "password authentication failed for user \"app\""},
		{"two urls", "a postgres://u:p1@h/x b mysql://v:p2@k/y", "a postgres://u:******@h/x b mysql://v:******@k/y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, redact.Text(tc.in))
		})
	}
}

func TestValue(t *testing.T) {
	t.Parallel()
	require.Equal(t, redact.Placeholder, redact.Value("password", "x"))
	require.Equal(t, redact.Placeholder, redact.Value("PASSWORD", "x"))
	require.Equal(t, redact.Placeholder, redact.Value("private_key_passphrase", "x"))
	require.Equal(t, redact.Placeholder, redact.Value("key", "x"))
	require.Equal(t, "${CDCD_SECRET_PW}", redact.Value("password", "${CDCD_SECRET_PW}"))
	require.Equal(t, "/etc/key.p8", redact.Value("private_key_file", "/etc/key.p8"))
	require.Equal(t, "visible", redact.Value("monkey", "visible"))
	// a whole value: a URL extends to its end, white space included
	require.Equal(t, "postgres://u:******@h/db", redact.Value("dsn", "postgres://u:my pass@h/db"))
}

// TestPasswordNeverShown is the property the display forms must keep: what is
// shown of a connection string, or of an error quoting one, does not depend on
// its password at all, in any of the forms a user writes it.
func FuzzPasswordNeverShown(f *testing.F) {
	for _, s := range []string{"hunter2", "Pa@ss_S3cr3t", `Pw Esc`, `p'w"d`, `a:b/c?d=e&f#g`, `back\slash`, "ü ñ 🔑 =?", "x\ny", "@@::", "''", `\`, "%41%", "://"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pw string) {
		if pw == "" || pw == "x" || strings.Contains(pw, "${") {
			t.Skip()
		}
		for _, form := range forms() {
			for _, mode := range []struct {
				name string
				show func(string) string
			}{
				{"value", func(s string) string { return redact.Value("dsn", s) }},
				{"text", func(s string) string { return redact.Text(`connect "` + s + `": connection refused`) }},
			} {
				if mode.name == "text" && !form.inText(pw) {
					continue
				}
				got, other := mode.show(form.build(pw)), mode.show(form.build("x"))
				require.Equal(t, other, got, "%s form, %s mode: the display depends on the password %q", form.name, mode.name, pw)
				for _, keep := range form.visible {
					require.Contains(t, got, keep, "%s form, %s mode: %q must stay visible", form.name, mode.name, keep)
				}
			}
		}
		for _, k := range []string{"password", "PASSWORD", "sslPassword", "api_key", "private_key", "token", "credentials_json"} {
			require.Equal(t, redact.Placeholder, redact.Value(k, pw))
		}
	})
}

type form struct {
	name    string
	build   func(pw string) string
	inText  func(pw string) bool // whether the form can be quoted in free text
	visible []string
}

func always(string) bool { return true }

func forms() []form {
	kvQuote := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return []form{
		{"url", func(pw string) string {
			return (&url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: "db:5432", Path: "/x", RawQuery: "sslmode=disable"}).String()
		}, always, []string{"postgres://app:", "@db:5432/x?sslmode=disable"}},
		{"raw url", func(pw string) string { return "postgres://app:" + pw + "@db:5432/x?sslmode=disable" },
			func(pw string) bool { return !strings.ContainsAny(pw, " \t\n\r\v\f") }, []string{"postgres://app:", "@db:5432/x?sslmode=disable"}},
		{"query", func(pw string) string {
			return "postgres://app@db/x?sslmode=disable&password=" + url.QueryEscape(pw) + "&application_name=cdcd"
		}, always, []string{"sslmode=disable", "&application_name=cdcd"}},
		{"kv quoted", func(pw string) string { return "host=db password='" + kvQuote.Replace(pw) + "' user=app" },
			always, []string{"host=db", "user=app"}},
		{"kv bare", func(pw string) string {
			var b strings.Builder
			for _, r := range pw {
				if strings.ContainsRune(" \t\n\r\v\f\\'\"", r) {
					b.WriteByte('\\')
				}
				b.WriteRune(r)
			}
			return "host=db PASSWORD=" + b.String() + " user=app"
		}, always, []string{"host=db", "user=app"}},
		{"json", func(pw string) string {
			b, _ := json.Marshal(pw)
			return `{"password": ` + string(b) + `, "host": "db"}`
		}, always, []string{`"host": "db"`}},
	}
}

func TestHandler(t *testing.T) {
	t.Parallel()
	var buf strings.Builder
	log := slog.New(redact.NewHandler(slog.NewTextHandler(&buf, nil))).With("dsn", "postgres://u:hunter2@h/db")
	log.Info("connect host=h password=hunter3 failed", "error", errors.New("dial postgres://u:hunter4@h/db: refused"),
		"password", "hunter5", slog.Group("g", "token", "hunter6", "n", 1), "big", strings.Repeat("é", redact.MaxLogValue))
	out := buf.String()
	for _, s := range []string{"hunter2", "hunter3", "hunter4", "hunter5", "hunter6"} {
		require.NotContains(t, out, s)
	}
	require.Contains(t, out, "g.n=1")
	require.Contains(t, out, "more bytes cut")
	require.Less(t, len(out), 2*redact.MaxLogValue)
}

package api_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/api"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/require"
)

// raw sends a request without the harness's checks and returns status,
// headers and body.
func (h *harness) raw(method, path, contentType, body string, header map[string]string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	require.NoError(h.t, err)
	if body == "" {
		req.Body = http.NoBody
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, resp.Header, "" // a stream: it never ends
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// fakePostgres is a server that speaks enough of the Postgres protocol to
// ask for a cleartext password, and records every password it is sent. Its
// error quotes the password back, as a careless server might.
type fakePostgres struct {
	addr string
	mu   sync.Mutex
	got  []string
	conn int
}

func startFakePostgres(t *testing.T) *fakePostgres {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakePostgres{addr: ln.Addr().String()}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				f.serve(c)
			}()
		}
	}()
	return f
}

func (f *fakePostgres) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	f.mu.Lock()
	f.conn++
	f.mu.Unlock()
	be := pgproto3.NewBackend(c, c)
	for {
		m, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		if _, ok := m.(*pgproto3.SSLRequest); ok {
			if _, err := c.Write([]byte("N")); err != nil {
				return
			}
			continue
		}
		break
	}
	be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if be.Flush() != nil {
		return
	}
	m, err := be.Receive()
	if err != nil {
		return
	}
	if pw, ok := m.(*pgproto3.PasswordMessage); ok {
		f.mu.Lock()
		f.got = append(f.got, pw.Password)
		f.mu.Unlock()
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed: wrong password " + pw.Password})
		_ = be.Flush()
	}
}

func (f *fakePostgres) seen() (conns int, passwords []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn, append([]string(nil), f.got...)
}

// An API caller cannot make the server read its key file or environment, nor
// send them anywhere: a reference outside the allow-list is a 422 naming its
// path, nothing is read or sent, and no answer carries a resolved secret.
func TestNoSecretDisclosureThroughPreview(t *testing.T) {
	t.Parallel()
	h := setup(t)
	key := filepath.Join(h.dir, "secret.key")
	require.NoError(t, os.WriteFile(key, []byte("MASTER-KEY-MATERIAL"), 0o600))
	preview := func(static string) (int, string) {
		body, _ := json.Marshal(map[string]any{
			"transforms": []any{map[string]any{"type": "add_fields", "config": map[string]any{"static": map[string]any{"x": static}}}},
			"rows":       []any{map[string]any{"id": 1}},
		})
		code, _, out := h.raw("POST", "/api/v1/transforms/preview", "application/json", string(body), nil)
		return code, out
	}
	for _, ref := range []string{"${file:" + key + "}", "${HOME}", "${CDCD_SECRET_KEY}", "a ${file:/etc/hostname} b"} {
		code, out := preview(ref)
		require.Equal(t, 422, code, "%s: %s", ref, out)
		require.Contains(t, out, `"transforms[0].config.static.x"`, ref)
		require.NotContains(t, out, "MASTER-KEY", ref)
		require.NotContains(t, out, "secret-home", ref)
	}
	// an allowed secret resolves (a hash key, say), but never shows
	code, out := preview("tok=${CDCD_SECRET_TOKEN}")
	require.Equal(t, 200, code, out)
	require.NotContains(t, out, "s3cr3t-t0ken")
	require.Contains(t, out, `"x": "tok=******"`)
}

func TestNoSecretDisclosureThroughConnectionTest(t *testing.T) {
	t.Parallel()
	h := setup(t)
	pg := startFakePostgres(t)
	key := filepath.Join(h.dir, "secret.key")
	require.NoError(t, os.WriteFile(key, []byte("MASTER-KEY-MATERIAL"), 0o600))
	conn := func(pw string) map[string]any {
		return map[string]any{"type": "postgres", "config": map[string]any{"dsn": "postgres://app:" + pw + "@" + pg.addr + "/db?sslmode=disable&connect_timeout=5", "tables": []any{"public.t"}}}
	}
	res := h.do("PUT", "/api/v1/connections/evil", conn("${file:"+key+"}"), 422)
	require.Equal(t, "connection.config.dsn", res["problems"].([]any)[0].(map[string]any)["path"])
	h.do("GET", "/api/v1/connections/evil", nil, 404)

	// stored by an older cdcd, before the allow-list: the test refuses to resolve it
	raw, _ := json.Marshal(map[string]any{"name": "old", "type": "postgres", "config": conn("${file:" + key + "}")["config"]})
	require.NoError(t, h.st.PutConnection(context.Background(), store.Connection{Name: "old", Type: "postgres", Config: raw}))
	res = h.do("POST", "/api/v1/connections/old/test", nil, 200)
	require.Equal(t, false, res["ok"])
	require.Contains(t, fmt.Sprint(res["problems"]), "resolves no files")
	n, got := pg.seen()
	require.Zero(t, n, "the fake server was never contacted")
	require.Empty(t, got)

	// an allowed secret is sent to the server it is for, and not shown back
	h.do("PUT", "/api/v1/connections/ok", conn("${CDCD_SECRET_PGPW}"), 201)
	code, _, out := h.raw("POST", "/api/v1/connections/ok/test", "", "", nil)
	require.Equal(t, 200, code, out)
	_, got = pg.seen()
	require.Contains(t, got, "pg-pass-w0rd", out)
	require.Contains(t, out, "password authentication failed")
	require.NotContains(t, out, "pg-pass-w0rd", "the server's echo of the secret is scrubbed")
}

// With no token, the server answers only requests from this machine to its
// loopback name: not other hosts, not web pages (cross-site or rebound DNS).
func TestOpenModeIsLocalOnly(t *testing.T) {
	t.Parallel()
	h := setup(t)
	code, _, out := h.raw("GET", "/api/v1/pipelines", "", "", map[string]string{"Host": "attacker.example:8080"})
	require.Equal(t, 421, code, out)
	require.Contains(t, out, "--allowed-hosts attacker.example")
	code, _, out = h.raw("GET", "/api/v1/pipelines", "", "", map[string]string{"Origin": "http://attacker.example"})
	require.Equal(t, 401, code, out)
	require.Contains(t, out, "Origin")

	// a simple (no preflight) cross-site POST: text/plain YAML, as a web page sends it
	yamlBody := "name: x\ntype: file\nconfig: {dir: /tmp/x}\n"
	code, _, out = h.raw("POST", "/api/v1/connections", "text/plain", yamlBody,
		map[string]string{"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"})
	require.Equal(t, 403, code, out)
	code, _, out = h.raw("POST", "/api/v1/connections", "text/plain", yamlBody, nil)
	require.Equal(t, 415, code, out)
	code, _, out = h.raw("POST", "/api/v1/connections", "application/x-www-form-urlencoded", "name=x", nil)
	require.Equal(t, 415, code, out)
	h.do("GET", "/api/v1/connections/x", nil, 404)
	code, _, out = h.raw("POST", "/api/v1/connections", "application/yaml", yamlBody, nil)
	require.Equal(t, 201, code, out)

	// another host: refused while no token exists (the peer address is what counts)
	for _, remote := range []string{"10.1.2.3:5555", "[2001:db8::1]:5555"} {
		req := httptest.NewRequest("GET", "http://127.0.0.1/api/v1/pipelines", nil)
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		require.Equal(t, 401, w.Code, w.Body.String())
		require.Contains(t, w.Body.String(), "cdcd tokens create admin --role admin")
	}
	// relayed by a proxy on this machine (nginx's default Host is the upstream's)
	for _, hdr := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"} {
		req := httptest.NewRequest("GET", "http://127.0.0.1:8080/api/v1/pipelines", nil)
		req.RemoteAddr = "127.0.0.1:5555"
		req.Header.Set(hdr, "203.0.113.9")
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		require.Equal(t, 401, w.Code, hdr)
		require.Contains(t, w.Body.String(), "proxy")
	}
	req := httptest.NewRequest("GET", "http://localhost/api/v1/pipelines", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	w := httptest.NewRecorder()
	h.api.ServeHTTP(w, req)
	require.Equal(t, 200, w.Code)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(h.mustGet("/api/v1/openapi.json")), &doc))
	require.Equal(t, []any{}, doc["security"], "in open mode the document requires no token")
}

func (h *harness) mustGet(path string) string {
	h.t.Helper()
	code, _, out := h.raw("GET", path, "", "", nil)
	require.Equal(h.t, 200, code, out)
	return out
}

// Sending back what GET showed keeps the stored secrets.
func TestWriteBackKeepsSecrets(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	h.do("PUT", "/api/v1/connections/db", map[string]any{"type": "postgres", "config": map[string]any{
		"dsn": "postgres://u:Pa@ss_S3cr3t@h/db?password=Qx&sslmode=require", "tables": []any{"public.t"}}}, 201)
	got := h.do("GET", "/api/v1/connections/db", nil, 200)
	b, _ := json.Marshal(got)
	require.NotContains(t, string(b), "ss_S3cr3t")
	require.NotContains(t, string(b), "Qx")
	require.Contains(t, string(b), "sslmode=require", "the rest of the query stays visible")
	back := map[string]any{"type": got["type"], "config": got["config"]}
	h.do("PUT", "/api/v1/connections/db", back, 200)
	c, err := h.st.GetConnection(ctx, "db")
	require.NoError(t, err)
	require.Contains(t, string(c.Config), "Pa@ss_S3cr3t", "the stored password is kept")
	require.NotContains(t, string(c.Config), "******")

	// an edit around the placeholder is refused, not stored
	cfg := got["config"].(map[string]any)
	cfg["dsn"] = strings.Replace(cfg["dsn"].(string), "@h/", "@other/", 1)
	res := h.do("PUT", "/api/v1/connections/db", back, 422)
	require.Contains(t, fmt.Sprint(res["problems"]), "connection.config.dsn")

	// pipelines: the sink's password and a mask key
	p := map[string]any{"name": "p", "paused": true, "source": map[string]any{"type": "datagen"},
		"sink":       map[string]any{"type": "file", "config": map[string]any{"dir": filepath.Join(h.dir, "out")}},
		"transforms": []any{map[string]any{"type": "mask", "config": map[string]any{"columns": []any{"payload"}, "key": "mask-key-0123456789abcdef"}}}}
	h.do("PUT", "/api/v1/pipelines/p", p, 201)
	view := h.do("GET", "/api/v1/pipelines/p", nil, 200)
	spec := view["spec"].(map[string]any)
	require.Equal(t, "******", spec["transforms"].([]any)[0].(map[string]any)["config"].(map[string]any)["key"])
	spec["paused"] = true
	h.do("PUT", "/api/v1/pipelines/p", spec, 200)
	sp, err := h.st.GetPipeline(ctx, "p")
	require.NoError(t, err)
	require.Contains(t, string(sp.Spec), "mask-key-0123456789abcdef")
	require.Equal(t, int64(1), sp.Generation, "sent back as shown, the spec is unchanged")
}

// Roles: every route, with a token of every role.
func TestRoles(t *testing.T) {
	t.Parallel()
	h := setup(t)
	ctx := context.Background()
	tokens := map[store.Role]string{}
	for _, r := range store.Roles {
		plain, _, err := h.st.CreateToken(ctx, store.TokenSpec{Name: "t-" + string(r), Role: r})
		require.NoError(t, err)
		tokens[r] = plain
	}
	need := map[string]store.Role{
		"GET /metrics": store.RoleViewer, "GET /api/v1/openapi.json": store.RoleViewer,
		"GET /api/v1/connections": store.RoleViewer, "POST /api/v1/connections": store.RoleEditor,
		"GET /api/v1/connections/{name}": store.RoleViewer, "PUT /api/v1/connections/{name}": store.RoleEditor,
		"DELETE /api/v1/connections/{name}": store.RoleEditor, "POST /api/v1/connections/{name}/test": store.RoleEditor,
		"GET /api/v1/pipelines": store.RoleViewer, "POST /api/v1/pipelines": store.RoleEditor,
		"GET /api/v1/pipelines/{name}": store.RoleViewer, "PUT /api/v1/pipelines/{name}": store.RoleEditor,
		"DELETE /api/v1/pipelines/{name}": store.RoleEditor, "POST /api/v1/pipelines/{name}/pause": store.RoleEditor,
		"POST /api/v1/pipelines/{name}/resume": store.RoleEditor, "POST /api/v1/pipelines/{name}/resync": store.RoleEditor, "POST /api/v1/pipelines/{name}/verify": store.RoleEditor, "GET /api/v1/pipelines/{name}/verifications": store.RoleViewer,
		"GET /api/v1/pipelines/{name}/status":         store.RoleViewer,
		"GET /api/v1/pipelines/{name}/schema-changes": store.RoleViewer, "POST /api/v1/pipelines/{name}/schema-changes/{table}": store.RoleEditor,
		"GET /api/v1/pipelines/{name}/skipped": store.RoleViewer, "POST /api/v1/transforms/preview": store.RoleEditor,
		"GET /api/v1/pipelines/{name}/events": store.RoleViewer, "GET /api/v1/pipelines/{name}/events/stream": store.RoleViewer,
		"GET /api/v1/alerts": store.RoleViewer, "PUT /api/v1/alerts": store.RoleEditor, "GET /api/v1/alerts/active": store.RoleViewer,
		"GET /api/v1/alerts/history": store.RoleViewer, "GET /api/v1/connections/{name}/catalog": store.RoleViewer,
		"GET /api/v1/pipelines/{name}/timeseries": store.RoleViewer,
		"GET /api/v1/whoami":                      store.RoleViewer, "GET /api/v1/types": store.RoleViewer, "POST /api/v1/plan": store.RoleEditor, "POST /api/v1/apply": store.RoleEditor, "GET /api/v1/events/stream": store.RoleViewer,
		"GET /api/v1/tokens": store.RoleAdmin, "POST /api/v1/tokens": store.RoleAdmin, "DELETE /api/v1/tokens/{id}": store.RoleAdmin,
		"GET /api/v1/audit": store.RoleAdmin,
	}
	doc := loadDoc(t)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			route := method + " " + path
			if path == "/healthz" || path == "/readyz" {
				continue
			}
			role, ok := need[route]
			require.True(t, ok, "%s has no expected role in this test", route)
			url := strings.NewReplacer("{name}", "nope", "{table}", "public.t", "{id}", "0123456789ab").Replace(path)
			body, ct := "", ""
			if method == "POST" || method == "PUT" {
				body, ct = "{}", "application/json"
			}
			h.token = ""
			code, _, out := h.raw(method, url, ct, body, nil)
			require.Equal(t, 401, code, "%s without a token: %s", route, out)
			for _, r := range store.Roles {
				h.token = tokens[r]
				code, _, out := h.raw(method, url, ct, body, nil)
				if r.Allows(role) {
					require.NotContains(t, []int{401, 403}, code, "%s as %s: %s", route, r, out)
				} else {
					require.Equal(t, 403, code, "%s as %s: %s", route, r, out)
					require.Contains(t, out, "needs "+string(role))
				}
			}
		}
	}
}

// Tokens: lifecycle, printable names, expiry, any-case Bearer.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	h := setup(t)
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "first", "role": "viewer"}, 422) // the first is an admin
	admin := h.do("POST", "/api/v1/tokens", map[string]any{"name": "root", "role": "admin", "expires_in": "720h"}, 201)
	require.Equal(t, "admin", admin["role"])
	exp, err := time.Parse(time.RFC3339, admin["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(720*time.Hour), exp, time.Minute)
	h.token = admin["token"].(string)
	for _, name := range []string{"evil\x1b[31mred", "two\nlines", "tab\there", strings.Repeat("a", 65), "", "ünïcode"} {
		h.do("POST", "/api/v1/tokens", map[string]any{"name": name, "role": "viewer"}, 422)
	}
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "root"}, 422)
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "x", "role": "viewer", "expires_in": "1s"}, 422)
	viewer := h.do("POST", "/api/v1/tokens", map[string]any{"name": "ci.bot@team", "role": "viewer"}, 201)

	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		code, _, out := h.raw("GET", "/api/v1/pipelines", "", "", map[string]string{"Authorization": scheme + " " + viewer["token"].(string)})
		require.Equal(t, 200, code, "%s: %s", scheme, out)
	}
	code, _, _ := h.raw("GET", "/api/v1/pipelines", "", "", map[string]string{"Authorization": "Basic " + viewer["token"].(string)})
	require.Equal(t, 401, code)

	list := h.do("GET", "/api/v1/tokens", nil, 200)["tokens"].([]any)
	require.Len(t, list, 2)
	for _, tk := range list {
		require.NotContains(t, tk, "token")
		if tk.(map[string]any)["name"] == "ci.bot@team" {
			require.NotEmpty(t, tk.(map[string]any)["last_used_at"], "use is recorded")
		}
	}
	// expired
	plain, _, err := h.st.CreateToken(context.Background(), store.TokenSpec{Name: "old", Role: store.RoleAdmin, ExpiresAt: time.Now().Add(-time.Minute)})
	require.NoError(t, err)
	code, _, out := h.raw("GET", "/api/v1/pipelines", "", "", map[string]string{"Authorization": "Bearer " + plain})
	require.Equal(t, 401, code)
	require.Contains(t, out, "expired")

	h.do("DELETE", "/api/v1/tokens/"+admin["id"].(string), nil, 409)
	h.do("DELETE", "/api/v1/tokens/"+viewer["id"].(string), nil, 204)
	h.do("DELETE", "/api/v1/tokens/"+viewer["id"].(string), nil, 404)
}

// Every request that is not a read is in the audit log, with who, what, on
// what, from where and how it ended; never a value sent.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	h := setup(t)
	admin := h.do("POST", "/api/v1/tokens", map[string]any{"name": "root", "role": "admin"}, 201)
	h.token = admin["token"].(string)
	h.do("PUT", "/api/v1/connections/c1", map[string]any{"type": "postgres", "config": map[string]any{"dsn": "postgres://u:audit-secret-pw@h/db"}}, 201)
	h.do("DELETE", "/api/v1/connections/nope", nil, 404)
	h.do("GET", "/api/v1/connections", nil, 200)
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "v", "role": "viewer"}, 201)
	code, _, _ := h.raw("POST", "/api/v1/connections", "text/plain", "x", nil)
	require.Equal(t, 415, code)

	res := h.do("GET", "/api/v1/audit", nil, 200)
	entries := res["entries"].([]any)
	b, _ := json.Marshal(entries)
	require.NotContains(t, string(b), "audit-secret-pw")
	var actions []string
	for _, e := range entries {
		m := e.(map[string]any)
		actions = append(actions, fmt.Sprintf("%s %s %v", m["action"], m["target"], m["status"]))
		if m["target"] != "token "+admin["id"].(string)+" (root)" {
			require.Equal(t, admin["id"], m["token_id"])
			require.Equal(t, "root", m["token_name"])
		}
		require.Contains(t, m["remote"], "127.0.0.1:")
	}
	require.Equal(t, []string{
		"POST /api/v1/connections  415",
		"POST /api/v1/tokens token " + h.do("GET", "/api/v1/tokens", nil, 200)["tokens"].([]any)[1].(map[string]any)["id"].(string) + " (v) 201",
		"DELETE /api/v1/connections/{name} connection nope 404",
		"PUT /api/v1/connections/{name} connection c1 201",
		"POST /api/v1/tokens token " + admin["id"].(string) + " (root) 201",
	}, actions, "newest first; reads are not recorded")
	first := entries[len(entries)-1].(map[string]any)
	require.Equal(t, "", first["token_name"], "the first token was made in open mode")
	h.do("GET", "/api/v1/audit?limit=0", nil, 400)
	page := h.do("GET", "/api/v1/audit?limit=2", nil, 200)
	require.Len(t, page["entries"], 2)
	require.Len(t, h.do("GET", "/api/v1/audit?before="+page["next"].(string), nil, 200)["entries"], 3)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	h := setup(t)
	// YAML aliases: refused, not expanded
	bomb := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nname: y\ntype: file\nconfig: {dir: /tmp}\n"
	for _, path := range []string{"/api/v1/connections", "/api/v1/pipelines", "/api/v1/transforms/preview"} {
		code, _, out := h.raw("POST", path, "application/yaml", bomb, nil)
		require.Equal(t, 400, code, "%s: %s", path, out)
		require.Contains(t, out, "anchors and aliases are not accepted")
	}
	// unknown routes and methods answer JSON, with the right Allow
	code, hdr, out := h.raw("GET", "/api/v1/nope", "", "", nil)
	require.Equal(t, 404, code)
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	require.Contains(t, out, `"error"`)
	code, hdr, out = h.raw("GET", "/api/v1/pipelines/x/pause", "", "", nil)
	require.Equal(t, 405, code, out)
	require.Equal(t, "application/json", hdr.Get("Content-Type"))
	require.Equal(t, "POST", hdr.Get("Allow"))
	code, hdr, _ = h.raw("PATCH", "/api/v1/pipelines/x", "application/json", "{}", nil)
	require.Equal(t, 405, code)
	require.ElementsMatch(t, []string{"DELETE", "GET", "HEAD", "PUT"}, strings.Split(hdr.Get("Allow"), ", "))
	// wrong JSON types are problems with their path, not coerced
	res := h.do("POST", "/api/v1/pipelines", map[string]any{"name": 5, "source": map[string]any{"type": "datagen"}, "sink": map[string]any{"type": "file", "config": map[string]any{"dir": h.dir}}}, 422)
	require.Contains(t, fmt.Sprint(res["problems"]), "pipelines[5].name")
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	h := setup(t)
	for _, path := range []string{"/api/v1/pipelines", "/healthz", "/api/v1/nope"} {
		_, hdr, _ := h.raw("GET", path, "", "", nil)
		require.Contains(t, hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
		require.Contains(t, hdr.Get("Content-Security-Policy"), "script-src 'self'", path)
		require.NotContains(t, hdr.Get("Content-Security-Policy"), "unsafe-inline", path)
		require.Equal(t, "DENY", hdr.Get("X-Frame-Options"), path)
		require.Equal(t, "nosniff", hdr.Get("X-Content-Type-Options"), path)
		require.Equal(t, "no-referrer", hdr.Get("Referrer-Policy"), path)
	}
}

// The server closes idle keep-alive connections, and answers connections over
// its cap with 503 instead of holding them.
func TestServerLimits(t *testing.T) {
	t.Parallel()
	ln := serveOK(t, api.ServerOptions{IdleTimeout: 200 * time.Millisecond, MaxConnections: 2})
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	get := func(c net.Conn, r *bufio.Reader) *http.Response {
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	c1, r1 := dial()
	require.Equal(t, 200, get(c1, r1).StatusCode)
	c2, r2 := dial()
	require.Equal(t, 200, get(c2, r2).StatusCode)
	c3, r3 := dial()
	over := get(c3, r3)
	require.Equal(t, 503, over.StatusCode, "a third connection is over the cap of 2")
	// the idle keep-alive connections are closed by the server, which frees the cap
	_ = c1.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := r1.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closed the idle connection")
	require.Eventually(t, func() bool {
		c, r := dial()
		return get(c, r).StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// --tls-cert and --tls-key: HTTPS only.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))

	_, _, err = api.HTTPServer(http.NotFoundHandler(), nil, api.ServerOptions{TLSCert: certFile}, discard())
	require.ErrorContains(t, err, "--tls-cert and --tls-key go together")

	ln := serveOK(t, api.ServerOptions{TLSCert: certFile, TLSKey: keyFile})
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, uint16(tls.VersionTLS13), resp.TLS.Version)
	plain := &http.Client{Timeout: 10 * time.Second}
	resp, err = plain.Get("http://" + ln.Addr().String() + "/")
	if err == nil {
		resp.Body.Close()
		require.NotEqual(t, 200, resp.StatusCode, "plain HTTP is not served")
	}
}

// serveOK serves "ok" with api.HTTPServer and o until the test ends, and
// returns its listener.
func serveOK(t *testing.T, o api.ServerOptions) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv, ln, err := api.HTTPServer(ok, ln, o, discard())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		<-done
	})
	return ln
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A pipeline's errors never show what its references resolved to, even when
// a component quotes the value (here a file sink's directory).
func TestPipelineErrorsHideResolvedSecrets(t *testing.T) {
	t.Parallel()
	h := setup(t)
	// /proc takes no new directories, even from root: mkdir fails and quotes the path
	h.do("PUT", "/api/v1/pipelines/p", map[string]any{"source": map[string]any{"type": "datagen"},
		"sink": map[string]any{"type": "file", "config": map[string]any{"dir": "/proc/cdcd-${CDCD_SECRET_TOKEN}"}}}, 201)
	var out string
	require.Eventually(t, func() bool {
		_, _, out = h.raw("GET", "/api/v1/pipelines/p", "", "", nil)
		return strings.Contains(out, "mkdir /proc/cdcd-")
	}, 20*time.Second, 20*time.Millisecond)
	require.NotContains(t, out, "s3cr3t-t0ken")
	require.Contains(t, out, "mkdir /proc/cdcd-******")
	sp, err := h.st.GetPipeline(context.Background(), "p")
	require.NoError(t, err)
	require.NotContains(t, sp.LastError, "s3cr3t-t0ken")
}

package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/api"
	"github.com/cdcd-dev/cdcd/internal/app"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/cdcd-dev/cdcd/sinks/file"
	pgsink "github.com/cdcd-dev/cdcd/sinks/postgres"
	"github.com/cdcd-dev/cdcd/sources/datagen"
	pgsrc "github.com/cdcd-dev/cdcd/sources/postgres"
	"github.com/cdcd-dev/cdcd/transforms/addfields"
	"github.com/cdcd-dev/cdcd/transforms/cast"
	"github.com/cdcd-dev/cdcd/transforms/columns"
	"github.com/cdcd-dev/cdcd/transforms/filter"
	"github.com/cdcd-dev/cdcd/transforms/mask"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func loadDoc(t *testing.T) *openapi3.T {
	b, err := api.OpenAPI()
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "the OpenAPI document is valid")
	return doc
}

// TestOpenAPIMatchesRoutes checks that the document and the mux list the same
// method+path pairs.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	src, err := os.ReadFile("server.go")
	require.NoError(t, err)
	var routed []string
	for _, m := range regexp.MustCompile(`\{"(GET|POST|PUT|DELETE)", "([^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		routed = append(routed, m[1]+" "+m[2])
	}
	slices.Sort(documented)
	slices.Sort(routed)
	require.NotEmpty(t, routed)
	require.Equal(t, routed, documented)
}

// testEnv is the server's environment in these tests.
var testEnv = map[string]string{"CDCD_SECRET_SEED": "7", "CDCD_SECRET_TOKEN": "s3cr3t-t0ken-value", "CDCD_SECRET_PGPW": "pg-pass-w0rd", "HOME": "/home/secret-home"}

type harness struct {
	t      *testing.T
	url    string
	router routers.Router
	token  string
	dir    string
	st     store.Store
	api    *api.Server
	// header is sent with every request.
	header http.Header
}

func setup(t *testing.T, opts ...func(*api.Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	c, err := secrets.New(make([]byte, 32))
	require.NoError(t, err)
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "meta.db"), c)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	reg := registry.New()
	reg.Sources["datagen"] = datagen.Factory()
	reg.Sinks["file"] = file.Factory()
	reg.Transforms["filter"] = filter.Factory()
	reg.Transforms["cast"] = cast.Factory()
	reg.Transforms["columns"] = columns.Factory()
	reg.Transforms["mask"] = mask.Factory()
	reg.Transforms["add_fields"] = addfields.Factory()
	reg.Sources["postgres"] = pgsrc.Factory()
	reg.Sinks["postgres"] = pgsink.Factory()
	promReg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(promReg)
	hub := app.NewEventHub(store.Events(st), nil)
	sup := pipeline.NewSupervisor(pipeline.SupervisorConfig{Metrics: metrics, States: app.States(st), BackoffBase: 10 * time.Millisecond, Events: hub})
	a := &app.App{Store: st, Registry: reg, Supervisor: sup, Registerer: promReg, Hub: hub,
		Secrets: config.Secrets{EnvPrefixes: []string{"CDCD_SECRET_"},
			Lookup: func(k string) (string, bool) { v, ok := testEnv[k]; return v, ok }}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	cfg := api.Config{Connections: a, Pipelines: a, Documents: a, SchemaChanges: a, History: a, Catalogs: a, Alerts: a, Previewer: a, Tokens: st, Audit: st, Metrics: promReg, Registerer: promReg, Version: "test", Types: reg, Planner: a, AllEvents: a, Resyncer: a, Verifier: a}
	for _, o := range opts {
		o(&cfg)
	}
	handler, err := api.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		require.NoError(t, <-done)
	})
	doc := loadDoc(t)
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &harness{t: t, url: srv.URL, router: router, dir: dir, st: st, api: handler, header: http.Header{}}
}

// do sends a request and validates the response against the OpenAPI document.
func (h *harness) do(method, path string, body any, wantStatus int) map[string]any {
	h.t.Helper()
	var rd io.Reader
	var raw []byte
	if body != nil {
		switch b := body.(type) {
		case string:
			raw = []byte(b)
		default:
			raw, _ = json.Marshal(b)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	require.NoError(h.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	for k, v := range h.header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	require.Equal(h.t, wantStatus, resp.StatusCode, "%s %s: %s", method, path, out)

	route, params, err := h.router.FindRoute(req)
	require.NoError(h.t, err, "%s %s is not in the OpenAPI document", method, path)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if raw != nil {
		req.Body = io.NopCloser(bytes.NewReader(raw))
		if wantStatus < 400 {
			require.NoError(h.t, openapi3filter.ValidateRequest(context.Background(), in), "%s %s request", method, path)
		}
	}
	rv := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	rv.SetBodyBytes(out)
	require.NoError(h.t, openapi3filter.ValidateResponse(context.Background(), rv), "%s %s response %d does not match the document: %s", method, path, resp.StatusCode, out)

	if len(out) == 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return nil
	}
	var m map[string]any
	require.NoError(h.t, json.Unmarshal(out, &m))
	return m
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	h := setup(t)
	outDir := filepath.Join(h.dir, "out")

	h.do("GET", "/healthz", nil, 200)
	h.do("GET", "/readyz", nil, 200)
	require.Empty(t, h.do("GET", "/api/v1/connections", nil, 200)["connections"])

	// connections
	gen := map[string]any{"name": "gen", "type": "datagen", "config": map[string]any{"tables": 2, "seed": "${CDCD_SECRET_SEED}", "snapshot_rows": 20}}
	h.do("POST", "/api/v1/connections", gen, 201)
	h.do("POST", "/api/v1/connections", gen, 409)
	// a key the type does not have is refused when stored, in the user's terms
	sink := map[string]any{"type": "file", "config": map[string]any{"dir": outDir, "pasword": "hunter2"}}
	refused := h.do("PUT", "/api/v1/connections/out", sink, 422)
	require.Equal(t, `unknown key "pasword"`, refused["problems"].([]any)[0].(map[string]any)["message"])
	delete(sink["config"].(map[string]any), "pasword")
	// a value the type refuses is too, at its key; what a pipeline may add
	// (a source's tables) is not asked for
	src := map[string]any{"type": "postgres", "config": map[string]any{"dsn": "postgres://u@127.0.0.1:1/db", "snapshot": "sometimes"}}
	refused = h.do("PUT", "/api/v1/connections/src", src, 422)
	require.Len(t, refused["problems"], 1, "%v", refused)
	require.Equal(t, "connection.config.snapshot", refused["problems"].([]any)[0].(map[string]any)["path"])
	require.Contains(t, refused["problems"].([]any)[0].(map[string]any)["message"], "sometimes")
	src["config"].(map[string]any)["snapshot"] = "never"
	h.do("PUT", "/api/v1/connections/src", src, 201)
	h.do("DELETE", "/api/v1/connections/src", nil, 204)
	h.do("PUT", "/api/v1/connections/out", sink, 201)
	h.do("PUT", "/api/v1/connections/out", sink, 200)
	require.Len(t, h.do("GET", "/api/v1/connections", nil, 200)["connections"], 2)
	require.Equal(t, true, h.do("POST", "/api/v1/connections/out/test", nil, 200)["ok"])
	h.do("GET", "/api/v1/connections/nope", nil, 404)

	// bad input: malformed, then invalid with every problem listed
	h.do("POST", "/api/v1/pipelines", "{not json", 400)
	h.do("POST", "/api/v1/pipelines", "", 400)
	h.do("POST", "/api/v1/pipelines", map[string]any{"name": "x", "source": map[string]any{"connection": "gen"}, "sink": map[string]any{"connection": "out"}, "bogus": 1}, 422)
	bad := h.do("POST", "/api/v1/pipelines", map[string]any{"name": "Bad!", "source": map[string]any{"connection": "missing"},
		"sink": map[string]any{"connection": "out"}, "batch": map[string]any{"max_wait": "2h"}}, 422)
	var paths []string
	for _, p := range bad["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.ElementsMatch(t, []string{"pipelines[Bad!].name", "pipelines[Bad!].batch.max_wait", "pipelines[Bad!].source.connection"}, paths)

	// pipelines
	p := map[string]any{"name": "orders", "source": map[string]any{"connection": "gen", "config": map[string]any{"changes": 100}},
		"sink": map[string]any{"connection": "out"}, "batch": map[string]any{"max_wait": "10ms"}}
	h.do("POST", "/api/v1/pipelines", p, 201)
	h.do("POST", "/api/v1/pipelines", p, 409)
	h.do("PUT", "/api/v1/pipelines/orders", p, 200)
	h.do("PUT", "/api/v1/pipelines/other", p, 422) // name mismatch
	require.Eventually(t, func() bool {
		st := h.do("GET", "/api/v1/pipelines/orders/status", nil, 200)
		prog, _ := st["progress"].(map[string]any)
		return st["state"] == "streaming" && prog != nil && prog["changes_written"].(float64) == 2*20+100
	}, 20*time.Second, 20*time.Millisecond)
	require.Len(t, h.do("GET", "/api/v1/pipelines", nil, 200)["pipelines"], 1)
	h.do("DELETE", "/api/v1/connections/gen", nil, 409) // in use

	paused := h.do("POST", "/api/v1/pipelines/orders/pause", nil, 200)
	require.Equal(t, true, paused["paused"])
	require.Eventually(t, func() bool { return h.do("GET", "/api/v1/pipelines/orders", nil, 200)["state"] == "paused" }, 10*time.Second, 10*time.Millisecond)
	h.do("POST", "/api/v1/pipelines/orders/resume", nil, 200)
	require.Eventually(t, func() bool { return h.do("GET", "/api/v1/pipelines/orders", nil, 200)["state"] == "streaming" }, 10*time.Second, 10*time.Millisecond)

	// a resync needs a source whose config names its tables, a known
	// pipeline, and a body that says what
	h.do("POST", "/api/v1/pipelines/nope/resync", map[string]any{}, 404)
	h.do("POST", "/api/v1/pipelines/orders/resync", map[string]any{"tables": "public.t"}, 422)
	h.do("POST", "/api/v1/pipelines/orders/resync", map[string]any{"table": []string{"public.t"}}, 422)
	require.Contains(t, h.do("POST", "/api/v1/pipelines/orders/resync", map[string]any{}, 409)["error"], "cannot resync tables")
	// so does a verify, whose source and sink must be able to compare
	h.do("POST", "/api/v1/pipelines/nope/verify", map[string]any{}, 404)
	h.do("POST", "/api/v1/pipelines/orders/verify", map[string]any{"repair": "yes"}, 422)
	require.Contains(t, h.do("POST", "/api/v1/pipelines/orders/verify", map[string]any{}, 409)["error"], "cannot be verified")
	require.Equal(t, []any{}, h.do("GET", "/api/v1/pipelines/orders/verifications", nil, 200)["verifications"])
	h.do("GET", "/api/v1/pipelines/orders/verifications?limit=0", nil, 400)
	require.Eventually(t, func() bool { return h.do("GET", "/api/v1/pipelines/orders", nil, 200)["state"] == "streaming" }, 10*time.Second, 10*time.Millisecond)

	// the file sink holds exactly the generator's final state
	state, err := file.State(outDir)
	require.NoError(t, err)
	want := datagen.Final(datagen.Config{Tables: 2, Seed: 7, SnapshotRows: 20, Changes: 100}, 10000)
	for id, rows := range want {
		require.Len(t, state[id.String()], len(rows), id.String())
	}

	metrics, err := http.Get(h.url + "/metrics")
	require.NoError(t, err)
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	require.Contains(t, string(mb), `cdcd_source_changes_total{op="c",pipeline="orders"}`)

	h.do("DELETE", "/api/v1/pipelines/orders", nil, 204)
	h.do("DELETE", "/api/v1/pipelines/orders", nil, 404)
	h.do("DELETE", "/api/v1/connections/gen", nil, 204)
	h.do("POST", "/api/v1/pipelines/orders/pause", nil, 404)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	h := setup(t)
	// Open while no token exists.
	h.do("GET", "/api/v1/pipelines", nil, 200)
	h.do("POST", "/api/v1/tokens", map[string]any{}, 422)
	h.do("POST", "/api/v1/tokens", map[string]any{"name": "ci", "role": "admin", "extra": 1}, 422)
	tok := h.do("POST", "/api/v1/tokens", map[string]any{"name": "ci", "role": "admin"}, 201)

	// Now every endpoint but health requires it.
	for _, path := range []string{"/api/v1/pipelines", "/api/v1/connections", "/metrics", "/api/v1/openapi.json", "/api/v1/tokens"} {
		h.do("GET", path, nil, 401)
	}
	h.token = "cdcd_wrong"
	h.do("GET", "/api/v1/pipelines", nil, 401)
	h.token = ""
	h.do("GET", "/healthz", nil, 200)
	h.do("GET", "/readyz", nil, 200)

	h.token = tok["token"].(string)
	h.do("GET", "/api/v1/pipelines", nil, 200)
	list := h.do("GET", "/api/v1/tokens", nil, 200)["tokens"].([]any)
	require.Len(t, list, 1)
	require.NotContains(t, list[0], "token", "listing never shows a token's value")
	h.do("DELETE", "/api/v1/tokens/"+tok["id"].(string), nil, 409) // not itself
	other := h.do("POST", "/api/v1/tokens", map[string]any{"name": "ops", "role": "admin"}, 201)
	h.token = other["token"].(string)
	h.do("DELETE", "/api/v1/tokens/"+tok["id"].(string), nil, 204)
	h.token = tok["token"].(string)
	h.do("GET", "/api/v1/pipelines", nil, 401)
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	h := setup(t)
	big := `{"name":"x","type":"file","config":{"dir":"` + strings.Repeat("a", 2<<20) + `"}}`
	h.do("POST", "/api/v1/connections", big, 413)
}

func TestTransformPreview(t *testing.T) {
	h := setup(t)
	res := h.do("POST", "/api/v1/transforms/preview", map[string]any{
		"transforms": []any{
			map[string]any{"type": "filter", "config": map[string]any{"keep": `row.status != "test"`}},
			map[string]any{"name": "qty", "type": "cast", "config": map[string]any{"columns": map[string]any{"qty": "int4"}}},
			map[string]any{"type": "columns", "config": map[string]any{"rename": map[string]any{"qty": "quantity"}}},
		},
		"rows": []any{
			map[string]any{"id": 1, "status": "live", "qty": "5", "attrs": map[string]any{"a": 1}},
			map[string]any{"id": 2, "status": "test", "qty": "6"},
			map[string]any{"id": 3, "status": "live", "qty": "many"},
		},
	}, 200)
	rows := res["rows"].([]any)
	require.Len(t, rows, 3)
	first := rows[0].(map[string]any)
	require.Equal(t, map[string]any{"id": 1.0, "status": "live", "quantity": 5.0, "attrs": map[string]any{"a": 1.0}}, first["after"])
	require.Equal(t, "public.sample", first["table"])
	require.Equal(t, true, rows[1].(map[string]any)["dropped"])
	require.Contains(t, rows[2].(map[string]any)["error"], "cast column qty: a string value does not convert to int4")
	cols := res["output"].(map[string]any)["columns"].([]any)
	require.Equal(t, "quantity", cols[2].(map[string]any)["name"])
	require.Equal(t, "int", cols[2].(map[string]any)["type"].(map[string]any)["kind"])

	// a declared table types the rows; problems come back with their paths
	res = h.do("POST", "/api/v1/transforms/preview", map[string]any{
		"transforms": []any{map[string]any{"type": "nope"}, map[string]any{"type": "mask", "config": map[string]any{"columns": []any{"x"}}}},
		"table":      map[string]any{"columns": []any{map[string]any{"name": "id", "type": "int9"}}},
		"rows":       []any{map[string]any{"id": 1}},
	}, 422)
	var paths []string
	for _, p := range res["problems"].([]any) {
		paths = append(paths, p.(map[string]any)["path"].(string))
	}
	require.Equal(t, []string{"transforms[0].type", "transforms[1].config", "table.columns[0].type"}, paths)
	h.do("POST", "/api/v1/transforms/preview", `{"transforms": [], "bogus": 1}`, 422)
	h.do("POST", "/api/v1/transforms/preview", `{"rows": [{}, {}]}`, 422) // no columns (was a panic)
}

// Changing a pipeline's transforms must say what happens to rows already
// written; without an answer the update is refused.
func TestTransformChangeNeedsADecision(t *testing.T) {
	t.Parallel()
	h := setup(t)
	out := filepath.Join(h.dir, "out")
	p := func(keep string) map[string]any {
		return map[string]any{"name": "tc", "source": map[string]any{"type": "datagen", "config": map[string]any{"tables": 1, "snapshot_rows": 10, "seed": 1}},
			"sink":       map[string]any{"type": "file", "config": map[string]any{"dir": out}},
			"transforms": []any{map[string]any{"type": "filter", "config": map[string]any{"keep": keep}}}}
	}
	h.do("PUT", "/api/v1/pipelines/tc", p(`op != "d"`), 201)
	h.do("PUT", "/api/v1/pipelines/tc", p(`op != "d"`), 200) // unchanged: no decision needed
	res := h.do("PUT", "/api/v1/pipelines/tc", p(`op == "c"`), 409)
	require.Contains(t, res["error"], "transform_change=keep_written")
	require.Contains(t, res["error"], "transform_change=resync")
	h.do("PUT", "/api/v1/pipelines/tc?transform_change=maybe", p(`op == "c"`), 400)
	res = h.do("PUT", "/api/v1/pipelines/tc?transform_change=keep_written", p(`op == "c"`), 200)
	require.Contains(t, res["notice"], "keep the previous chain's output")
	require.Equal(t, 2.0, res["generation"])
	res = h.do("PUT", "/api/v1/pipelines/tc?transform_change=resync", p(`op == "u"`), 201)
	require.Contains(t, res["notice"], "snapshots every table again")
	require.Equal(t, 1.0, res["generation"], "a resync starts the pipeline over")
}

// TestEvents: a pipeline's events list in order and stream over SSE: the
// backlog after Last-Event-ID, then each as it happens.
func TestEvents(t *testing.T) {
	t.Parallel()
	h := setup(t)
	h.do("POST", "/api/v1/connections", map[string]any{"name": "gen", "type": "datagen", "config": map[string]any{"tables": 2, "snapshot_rows": 20}}, 201)
	h.do("POST", "/api/v1/connections", map[string]any{"name": "out", "type": "file", "config": map[string]any{"dir": filepath.Join(h.dir, "out")}}, 201)
	h.do("POST", "/api/v1/pipelines", map[string]any{"name": "ev", "source": map[string]any{"connection": "gen", "config": map[string]any{"changes": 10}},
		"sink": map[string]any{"connection": "out"}, "batch": map[string]any{"max_wait": "10ms"}}, 201)
	type event struct {
		Seq     int64
		Kind    string
		Level   string
		Table   string
		Message string
	}
	list := func(after int) []event {
		var v struct{ Events []event }
		raw, _ := json.Marshal(h.do("GET", fmt.Sprintf("/api/v1/pipelines/ev/events?after=%d", after), nil, 200))
		require.NoError(t, json.Unmarshal(raw, &v))
		return v.Events
	}
	require.Eventually(t, func() bool {
		es := list(0)
		done := 0
		for _, e := range es {
			if e.Kind == "snapshot" && strings.Contains(e.Message, "done: 20 rows") {
				done++
			}
		}
		return done == 2
	}, 20*time.Second, 20*time.Millisecond, "snapshot events: %+v", list(0))
	es := list(0)
	require.Equal(t, "loaded", es[0].Message)
	require.Equal(t, "running: snapshotting", es[1].Message)
	for i, e := range es {
		require.Equal(t, int64(i+1), e.Seq, "in order, without gaps")
	}
	require.Equal(t, es[2:], list(2), "after a seq")
	h.do("GET", "/api/v1/pipelines/nope/events", nil, 404)
	h.do("GET", "/api/v1/pipelines/ev/events?after=-1", nil, 400)

	// the stream: what came after Last-Event-ID, then the pause as it happens
	req, err := http.NewRequest("GET", h.url+"/api/v1/pipelines/ev/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	sc := bufio.NewScanner(resp.Body)
	next := func() event {
		var e event
		var id string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e))
			case line == "" && id != "":
				require.Equal(t, strconv.FormatInt(e.Seq, 10), id)
				return e
			}
		}
		t.Fatalf("the stream ended: %v", sc.Err())
		return e
	}
	for _, want := range es[1:] {
		require.Equal(t, want, next())
	}
	// every pipeline's stream: what happens from now on, with the pipeline
	all, err := http.Get(h.url + "/api/v1/events/stream")
	require.NoError(t, err)
	defer all.Body.Close()
	require.Equal(t, 200, all.StatusCode)
	h.do("POST", "/api/v1/pipelines/ev/pause", nil, 200)
	for {
		e := next()
		require.Greater(t, e.Seq, es[len(es)-1].Seq)
		if e.Kind == "state" && e.Message == "paused" {
			break
		}
	}
	asc := bufio.NewScanner(all.Body)
	for asc.Scan() {
		line := asc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var e struct{ Pipeline, Kind, Message string }
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e))
		require.Equal(t, "ev", e.Pipeline)
		if e.Kind == "state" && e.Message == "paused" {
			return
		}
	}
	t.Fatalf("the stream of every pipeline ended: %v", asc.Err())
}

// Found by Schemathesis: a connection that cannot be read as one table's
// source is a 422 for the catalog and the preview, not a 500; an unknown
// transform_change is refused; a chart window is one of a few.
func TestReadsFromAConnectionThatCannot(t *testing.T) {
	t.Parallel()
	h := setup(t)
	h.do("POST", "/api/v1/connections", map[string]any{"name": "gen", "type": "datagen", "config": map[string]any{"snapshot_rows": 5}}, 201)
	got := h.do("GET", "/api/v1/connections/gen/catalog", nil, 422)
	require.Contains(t, got["problems"].([]any)[0].(map[string]any)["message"], "connection gen cannot be read from as a datagen source: a list where a number is expected")
	h.do("POST", "/api/v1/transforms/preview", map[string]any{"source": map[string]any{"connection": "gen", "table": "public.sample", "limit": 1}}, 422)
	p := map[string]any{"name": "tc", "source": map[string]any{"connection": "gen"}, "sink": map[string]any{"type": "file", "config": map[string]any{"dir": filepath.Join(h.dir, "tc")}}}
	h.do("PUT", "/api/v1/pipelines/tc?transform_change=maybe", p, 400)
	h.do("PUT", "/api/v1/pipelines/tc", p, 201)
	h.do("GET", "/api/v1/pipelines/tc/timeseries?window=000", nil, 400)
	require.Equal(t, "168h0m0s", h.do("GET", "/api/v1/pipelines/tc/timeseries?window=7d", nil, 200)["window"])
}

// Deleting a pipeline whose source does not answer (its slot cannot be
// dropped) is a 502 that says how to delete anyway; the pipeline stays, and
// runs again.
func TestDeleteWithAnUnreachableSource(t *testing.T) {
	t.Parallel()
	h := setup(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens there
	p := map[string]any{"name": "gone", "source": map[string]any{"type": "postgres", "config": map[string]any{
		"dsn": "postgres://cdcd:s3cr3t-pw@" + addr + "/app?connect_timeout=2", "tables": []any{"public.t"}}},
		"sink": map[string]any{"type": "file", "config": map[string]any{"dir": filepath.Join(h.dir, "gone")}}}
	h.do("PUT", "/api/v1/pipelines/gone", p, 201)
	res := h.do("DELETE", "/api/v1/pipelines/gone", nil, 502)
	require.Contains(t, res["error"], "keep_slot_on_delete: true")
	require.NotContains(t, res["error"], "s3cr3t-pw")
	require.Eventually(t, func() bool {
		st := h.do("GET", "/api/v1/pipelines/gone", nil, 200)
		return st["status"].(map[string]any)["failed_attempts"].(float64) > 0
	}, 20*time.Second, 50*time.Millisecond, "it runs (and retries) again")
	p["source"].(map[string]any)["config"].(map[string]any)["keep_slot_on_delete"] = true
	h.do("PUT", "/api/v1/pipelines/gone", p, 200)
	h.do("DELETE", "/api/v1/pipelines/gone", nil, 204)
}

// TestWhoamiAndTypes: the UI learns who it acts as, and builds its forms
// from the same specs that decode the documents.
func TestWhoamiAndTypes(t *testing.T) {
	t.Parallel()
	h := setup(t)
	who := h.do("GET", "/api/v1/whoami", nil, 200)
	require.Equal(t, true, who["open"])
	require.Equal(t, "admin", who["role"])
	plain, _, err := h.st.CreateToken(context.Background(), store.TokenSpec{Name: "ann", Role: store.RoleViewer})
	require.NoError(t, err)
	h.token = plain
	who = h.do("GET", "/api/v1/whoami", nil, 200)
	require.Equal(t, map[string]any{"open": false, "name": "ann", "role": "viewer"}, who)

	types := h.do("GET", "/api/v1/types", nil, 200)
	fields := map[string]map[string]any{}
	for _, c := range types["connections"].([]any) {
		c := c.(map[string]any)
		if c["type"] != "postgres" {
			continue
		}
		roles := c["roles"].([]any)
		require.Len(t, roles, 2, "a postgres connection is a source or a destination")
		require.Equal(t, "source", roles[0].(map[string]any)["role"])
		require.Equal(t, "destination", roles[1].(map[string]any)["role"])
		for _, f := range roles[0].(map[string]any)["fields"].([]any) {
			f := f.(map[string]any)
			fields[f["key"].(string)] = f
		}
	}
	require.Equal(t, "string", fields["dsn"]["kind"])
	require.Equal(t, "list", fields["tables"]["kind"])
	require.Equal(t, "integer", fields["snapshot_workers"]["kind"])
	require.EqualValues(t, 4, fields["snapshot_workers"]["default"])
	var mask map[string]any
	for _, tr := range types["transforms"].([]any) {
		if tr.(map[string]any)["type"] == "mask" {
			mask = tr.(map[string]any)
		}
	}
	require.NotNil(t, mask)
	for _, f := range mask["fields"].([]any) {
		if f.(map[string]any)["key"] == "key" {
			require.Equal(t, true, f.(map[string]any)["secret"], "a mask key is write-only")
			require.Nil(t, f.(map[string]any)["default"])
		}
	}
}

// TestPlan: a pipeline document's plan, against a private Postgres: each
// table's destination name and shape after the transforms, and what the
// destination could not hold as it is (a name Postgres would cut, two tables
// on one destination table), before anything is created.
func TestPlan(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	src := pg.CreateDatabase(t, "plan_src")
	dst := pg.CreateDatabase(t, "plan_dst")
	long := strings.Repeat("l", 60)
	conn, err := pgx.Connect(context.Background(), src)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `CREATE TABLE users (id int8 PRIMARY KEY, email text, name text);
		CREATE TABLE `+long+` (id int8 PRIMARY KEY);
		CREATE SCHEMA s1; CREATE SCHEMA s2; CREATE TABLE s1.t (id int4 PRIMARY KEY); CREATE TABLE s2.t (id int4 PRIMARY KEY)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	h := setup(t)
	doc := func(tables []string, tableName string) map[string]any {
		return map[string]any{"name": "plan",
			"source": map[string]any{"type": "postgres", "config": map[string]any{"dsn": src, "tables": tables}},
			"sink":   map[string]any{"type": "postgres", "config": map[string]any{"dsn": dst, "schema": "wh", "table_name": tableName}},
			"transforms": []any{map[string]any{"type": "columns", "tables": []string{"public.users"}, "config": map[string]any{"drop": []string{"name"}}},
				map[string]any{"type": "mask", "tables": []string{"public.users"}, "config": map[string]any{"columns": []string{"email"}, "key": "plan-key-0123456789abcdef"}}},
		}
	}
	type planTable struct {
		Source, Destination string
		Columns             []struct{ Name, Type string }
		Problems            []string
	}
	plan := func(d map[string]any) (bool, []planTable, map[string]any) {
		out := h.do("POST", "/api/v1/plan", d, 200)
		b, _ := json.Marshal(out["tables"])
		var ts []planTable
		require.NoError(t, json.Unmarshal(b, &ts))
		return out["ok"].(bool), ts, out
	}

	ok, ts, out := plan(doc([]string{"public.users", "public." + long}, "{namespace}_{table}"))
	require.False(t, ok)
	require.Equal(t, true, out["source"].(map[string]any)["ok"], "%v", out["source"])
	require.Equal(t, true, out["destination"].(map[string]any)["ok"], "%v", out["destination"])
	require.Len(t, ts, 2)
	require.Equal(t, "wh.public_users", ts[0].Destination)
	var cols []string
	for _, c := range ts[0].Columns {
		cols = append(cols, c.Name)
	}
	require.Equal(t, []string{"id", "email"}, cols, "the columns transform's drop shows")
	require.Empty(t, ts[0].Problems)
	require.Empty(t, ts[1].Destination)
	require.Len(t, ts[1].Problems, 1)
	require.Contains(t, ts[1].Problems[0], "the destination holds at most 63")

	ok, ts, _ = plan(doc([]string{"s1.t", "s2.t"}, "{table}"))
	require.False(t, ok)
	require.Equal(t, "wh.t", ts[0].Destination)
	require.Contains(t, ts[1].Problems[0], "would both be written to destination table \"t\"")

	ok, ts, _ = plan(doc([]string{"s1.t", "s2.t"}, "{namespace}_{table}"))
	require.True(t, ok, "%+v", ts)

	// a postgres connection that leaves its tables to its pipelines is tested
	// as a source on its server alone, or as a destination, as asked
	h.do("PUT", "/api/v1/connections/pgsrc", map[string]any{"type": "postgres", "config": map[string]any{"dsn": src}}, 201)
	res := h.do("POST", "/api/v1/connections/pgsrc/test?role=source", nil, 200)
	require.Equal(t, true, res["ok"], "%v", res)
	require.Contains(t, fmt.Sprint(res["warnings"]), "max_slot_wal_keep_size", "the source's server checks ran")
	res = h.do("POST", "/api/v1/connections/pgsrc/test?role=destination", nil, 200)
	require.Equal(t, true, res["ok"], "%v", res)
	require.Nil(t, res["warnings"], "tested as a destination")
	h.do("POST", "/api/v1/connections/pgsrc/test?role=sideways", nil, 400)
	h.do("DELETE", "/api/v1/connections/pgsrc", nil, 204)

	// a document's problems come back at their paths, in a 200
	bad := doc([]string{"public.users"}, "{table}")
	bad["sink"].(map[string]any)["config"].(map[string]any)["delete_mode"] = "sometimes"
	out = h.do("POST", "/api/v1/plan", bad, 200)
	require.Equal(t, false, out["ok"])
	require.Contains(t, fmt.Sprint(out["problems"]), "delete_mode")
	// a document that is not one is refused, as its creation would be
	refused := h.do("POST", "/api/v1/plan", map[string]any{}, 422)
	require.Contains(t, fmt.Sprint(refused["problems"]), "source")
	// nothing was created
	require.Empty(t, h.do("GET", "/api/v1/pipelines", nil, 200)["pipelines"])
}

// The runtime profiles are served only when asked for, and then to admin
// tokens only.
func TestPprofIsOffByDefaultAndAdminOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	get := func(url, token string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	off := setup(t)
	adminOff, _, err := off.st.CreateToken(ctx, store.TokenSpec{Name: "a", Role: store.RoleAdmin})
	require.NoError(t, err)
	code, _ := get(off.url+"/debug/pprof/heap?debug=1", adminOff)
	require.Equal(t, http.StatusNotFound, code)

	on := setup(t, func(c *api.Config) { c.Pprof = true })
	admin, _, err := on.st.CreateToken(ctx, store.TokenSpec{Name: "a", Role: store.RoleAdmin})
	require.NoError(t, err)
	editor, _, err := on.st.CreateToken(ctx, store.TokenSpec{Name: "e", Role: store.RoleEditor})
	require.NoError(t, err)
	code, _ = get(on.url+"/debug/pprof/heap?debug=1", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get(on.url+"/debug/pprof/heap?debug=1", editor)
	require.Equal(t, http.StatusForbidden, code)
	code, body := get(on.url+"/debug/pprof/heap?debug=1", admin)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "heap profile")
	code, body = get(on.url+"/debug/pprof/", admin)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine")
}

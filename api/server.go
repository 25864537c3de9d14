package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/catalog"
	"github.com/cdcd-dev/cdcd/internal/alerts"
	"github.com/cdcd-dev/cdcd/internal/series"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/internal/app"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/redact"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"
)

// The API drives the application through small interfaces, one per area;
// internal/app.App implements them all. A handler names the one it needs.

// Connections stores, lists, tests and deletes connections.
type Connections interface {
	ApplyConnection(ctx context.Context, c config.Connection) (created bool, err error)
	Connections(ctx context.Context) ([]app.ConnectionView, error)
	Connection(ctx context.Context, name string) (app.ConnectionView, error)
	DeleteConnection(ctx context.Context, name string) error
	TestConnection(ctx context.Context, name, role string) (app.CheckResult, error)
	CheckConnection(ctx context.Context, c config.Connection) error
}

// Pipelines stores, lists, pauses, resumes and deletes pipelines.
type Pipelines interface {
	ApplyPipeline(ctx context.Context, p config.Pipeline, transformChange string) (created bool, notice string, err error)
	CheckPipeline(ctx context.Context, p config.Pipeline) error
	Pipelines(ctx context.Context) ([]app.PipelineView, error)
	Pipeline(ctx context.Context, name string) (app.PipelineView, error)
	PausePipeline(ctx context.Context, name string) error
	ResumePipeline(ctx context.Context, name string) error
	DeletePipeline(ctx context.Context, name string, force bool) (app.DeleteReport, error)
}

// Documents checks and applies whole documents (connections, pipelines and
// alerts at once).
type Documents interface {
	ApplyFile(ctx context.Context, f config.File, transformChange string) ([]app.Applied, error)
	CheckFile(ctx context.Context, f config.File, transformChange string) error
}

// SchemaChanges lists a pipeline's held schema changes and resolves them,
// and lists the changes it skipped.
type SchemaChanges interface {
	SchemaChanges(ctx context.Context, name string) ([]pipeline.Hold, error)
	ResolveSchemaChange(ctx context.Context, name, table, decision string) (pipeline.Hold, error)
	Skipped(ctx context.Context, name string, limit int) ([]store.SkippedChange, error)
}

// History is what happened to a pipeline: its events, live and kept, and
// its chart points.
type History interface {
	Events(ctx context.Context, name string, after int64, limit int) ([]pipeline.Event, error)
	SubscribeEvents(ctx context.Context, name string) (<-chan pipeline.Event, func(), error)
	Timeseries(ctx context.Context, name string, window time.Duration) ([]series.Point, error)
}

// Catalogs lists the tables of a connection's server: a source's to pick,
// or what exists at a destination (role "source" or "destination"; "": the
// role the connection's type has, a source when it has both).
type Catalogs interface {
	Catalog(ctx context.Context, name, role string, q catalog.Query) (catalog.Page, error)
}

// Alerts edits the alert rules and shows what fires and what was sent.
type Alerts interface {
	AlertRules(ctx context.Context) (config.Alerts, error)
	ApplyAlerts(ctx context.Context, a config.Alerts) error
	ActiveAlerts(ctx context.Context) ([]alerts.Active, error)
	AlertHistory(ctx context.Context, limit int) ([]alerts.HistoryEntry, error)
}

// Previewer runs transforms over a source's sample rows.
type Previewer interface {
	Preview(ctx context.Context, req app.PreviewRequest) (app.PreviewResult, error)
}

// Describer describes the connection and transform types the server knows
// (registry.Registry).
type Describer interface {
	Describe() registry.Types
}

// Planner says what a pipeline document would do without creating it
// (app.App).
type Planner interface {
	PlanPipeline(ctx context.Context, p config.Pipeline) (app.Plan, error)
}

// Resyncer reads tables of a pipeline again (app.App).
type Resyncer interface {
	ResyncPipeline(ctx context.Context, name string, tables []string) (app.ResyncReport, error)
}

// Verifier compares pipelines' replicas with their sources (app.App).
type Verifier interface {
	VerifyPipeline(ctx context.Context, name string, o app.VerifyOptions) (app.VerifyReport, error)
	Verifications(ctx context.Context, name string, limit int) ([]app.VerifyReport, error)
}

// AllEvents follows the events of every pipeline (app.App).
type AllEvents interface {
	SubscribeAllEvents(ctx context.Context) (<-chan pipeline.Event, func(), error)
}

// Tokens is the token store the API authenticates against.
type Tokens interface {
	CreateToken(ctx context.Context, spec store.TokenSpec) (string, store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	DeleteToken(ctx context.Context, id string) error
	VerifyToken(ctx context.Context, plaintext string) (store.Token, error)
	HasTokens(ctx context.Context) (bool, error)
}

// Audit is where the API records state-changing requests.
type Audit interface {
	RecordAudit(ctx context.Context, e store.AuditEntry) error
	ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
}

// Config configures a Server.
type Config struct {
	Connections   Connections
	Pipelines     Pipelines
	Documents     Documents
	SchemaChanges SchemaChanges
	History       History
	Catalogs      Catalogs
	Alerts        Alerts
	Previewer     Previewer
	Tokens        Tokens
	Audit         Audit
	// Metrics is what /metrics serves; Registerer takes the API's own
	// collectors (nil: they are not exported).
	Metrics    prometheus.Gatherer
	Registerer prometheus.Registerer
	// Ready reports whether the process can serve (store reachable, supervisor up).
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// UI is the static web UI, served at /; nil serves none.
	UI fs.FS
	// Types describes the component types for forms (GET /api/v1/types).
	Types Describer
	// Planner plans pipeline documents (POST /api/v1/plan); nil: 404.
	Planner Planner
	// AllEvents streams every pipeline's events (GET /api/v1/events/stream);
	// nil: 404.
	AllEvents AllEvents
	// Resyncer resyncs pipelines (POST /api/v1/pipelines/{name}/resync); nil: 404.
	Resyncer Resyncer
	// Verifier verifies pipelines (/api/v1/pipelines/{name}/verify); nil: 404.
	Verifier Verifier
	// Pprof serves Go's runtime profiles (net/http/pprof) at /debug/pprof/,
	// to admin tokens only; off: 404.
	Pprof bool
	// Version is reported by /healthz.
	Version string
	// AllowedHosts are the host names (no port) a request's Host may name,
	// besides localhost and IP literals, which are always allowed; "*" allows
	// any (only behind a proxy that checks Host itself).
	AllowedHosts []string
	// TrustedOrigins are origins ("https://ui.example.com") allowed to send
	// state-changing requests from a browser besides the server's own.
	TrustedOrigins []string
}

// Server is the HTTP handler of the control plane.
type Server struct {
	cfg          Config
	docs         *documents
	log          *slog.Logger
	mux          *http.ServeMux
	ui           http.Handler
	csrf         *http.CrossOriginProtection
	hosts        map[string]bool
	authFailures prometheus.Counter
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

// route is one endpoint: public ones need no token; the others need a token
// whose role allows role (or, while no token exists, a request from this
// machine).
type route struct {
	method, path string
	role         store.Role
	h            http.HandlerFunc
}

const public store.Role = ""

// New returns a Server.
func New(cfg Config) (*Server, error) {
	var missing []string
	for name, v := range map[string]any{"Connections": cfg.Connections, "Pipelines": cfg.Pipelines, "Documents": cfg.Documents,
		"SchemaChanges": cfg.SchemaChanges, "History": cfg.History, "Catalogs": cfg.Catalogs, "Alerts": cfg.Alerts, "Previewer": cfg.Previewer} {
		if v == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return nil, fmt.Errorf("api: Config needs %s", strings.Join(missing, ", "))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	docs, err := loadDocuments()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, docs: docs, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux(),
		csrf: http.NewCrossOriginProtection(), hosts: map[string]bool{}}
	for _, o := range cfg.TrustedOrigins {
		if err := s.csrf.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("trusted origin %q: %w", o, err)
		}
	}
	for _, h := range cfg.AllowedHosts {
		s.hosts[strings.ToLower(h)] = true
	}
	s.authFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "cdcd_api_auth_failures_total",
		Help: "API requests refused for a missing, unknown or expired token, or one whose role does not allow them."})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.authFailures); err != nil {
			return nil, err
		}
	}
	routes := s.routes()
	if cfg.Pprof {
		routes = append(routes, pprofRoutes()...)
	}
	for _, r := range routes {
		s.mux.Handle(r.method+" "+r.path, s.guard(r))
	}
	if cfg.UI != nil {
		s.ui = spa(cfg.UI)
	}
	return s, nil
}

func (s *Server) routes() []route {
	metrics := promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})
	viewer, editor, admin := store.RoleViewer, store.RoleEditor, store.RoleAdmin
	return []route{
		{"GET", "/healthz", public, s.healthz},
		{"GET", "/readyz", public, s.readyz},
		{"GET", "/metrics", viewer, metrics.ServeHTTP},
		{"GET", "/api/v1/openapi.json", viewer, s.openapi},
		{"GET", "/api/v1/whoami", viewer, s.whoami},
		{"GET", "/api/v1/types", viewer, s.types},

		{"GET", "/api/v1/connections", viewer, s.listConnections},
		{"POST", "/api/v1/connections", editor, s.createConnection},
		{"GET", "/api/v1/connections/{name}", viewer, s.getConnection},
		{"PUT", "/api/v1/connections/{name}", editor, s.putConnection},
		{"DELETE", "/api/v1/connections/{name}", editor, s.deleteConnection},
		{"POST", "/api/v1/connections/{name}/test", editor, s.testConnection},
		{"GET", "/api/v1/connections/{name}/catalog", viewer, s.catalog},

		{"GET", "/api/v1/pipelines", viewer, s.listPipelines},
		{"POST", "/api/v1/pipelines", editor, s.createPipeline},
		{"GET", "/api/v1/pipelines/{name}", viewer, s.getPipeline},
		{"PUT", "/api/v1/pipelines/{name}", editor, s.putPipeline},
		{"DELETE", "/api/v1/pipelines/{name}", editor, s.deletePipeline},
		{"POST", "/api/v1/pipelines/{name}/pause", editor, s.pausePipeline},
		{"POST", "/api/v1/pipelines/{name}/resume", editor, s.resumePipeline},
		{"POST", "/api/v1/pipelines/{name}/resync", editor, s.resyncPipeline},
		{"POST", "/api/v1/pipelines/{name}/verify", editor, s.verifyPipeline},
		{"GET", "/api/v1/pipelines/{name}/verifications", viewer, s.listVerifications},
		{"GET", "/api/v1/pipelines/{name}/status", viewer, s.pipelineStatus},
		{"GET", "/api/v1/pipelines/{name}/schema-changes", viewer, s.listSchemaChanges},
		{"POST", "/api/v1/pipelines/{name}/schema-changes/{table}", editor, s.resolveSchemaChange},
		{"GET", "/api/v1/pipelines/{name}/skipped", viewer, s.listSkipped},
		{"GET", "/api/v1/pipelines/{name}/events", viewer, s.listEvents},
		{"GET", "/api/v1/pipelines/{name}/events/stream", viewer, s.streamEvents},
		{"GET", "/api/v1/pipelines/{name}/timeseries", viewer, s.timeseries},
		{"GET", "/api/v1/events/stream", viewer, s.streamAllEvents},

		{"POST", "/api/v1/transforms/preview", editor, s.previewTransforms},
		{"POST", "/api/v1/plan", editor, s.planPipeline},
		{"POST", "/api/v1/apply", editor, s.applyFile},

		{"GET", "/api/v1/alerts", viewer, s.getAlerts},
		{"PUT", "/api/v1/alerts", editor, s.putAlerts},
		{"GET", "/api/v1/alerts/active", viewer, s.activeAlerts},
		{"GET", "/api/v1/alerts/history", viewer, s.alertHistory},

		{"GET", "/api/v1/tokens", admin, s.listTokens},
		{"POST", "/api/v1/tokens", admin, s.createToken},
		{"DELETE", "/api/v1/tokens/{id}", admin, s.deleteToken},
		{"GET", "/api/v1/audit", admin, s.listAudit},
	}
}

// securityHeaders are sent with every answer: the UI runs no inline script and
// loads nothing from elsewhere, no page may frame it, and no answer is sniffed,
// cached or sent on as a referrer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, "internal error", nil)
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", time.Since(start))
	}()
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	if !s.hostAllowed(r.Host) {
		writeError(sw, http.StatusMisdirectedRequest, fmt.Sprintf("host %q is not one this server answers for: open it by an address it was told (start cdcd with --allowed-hosts %s)",
			hostOnly(r.Host), hostOnly(r.Host)), nil)
		return
	}
	h, pattern := s.mux.Handler(r)
	switch {
	case pattern != "":
		w.Header().Set("Cache-Control", "no-store")
		s.mux.ServeHTTP(sw, r) // sets the path values, which Handler does not
	case s.ui != nil && !strings.HasPrefix(r.URL.Path, "/api/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		jsonErrors(s.ui).ServeHTTP(sw, r)
	case s.ui != nil && !strings.HasPrefix(r.URL.Path, "/api/"):
		w.Header().Set("Allow", "GET, HEAD")
		writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path), nil)
	default:
		jsonErrors(h).ServeHTTP(sw, r)
	}
}

// jsonErrors runs h (the mux's or the file server's answer to what it has no
// route or file for) and turns its plain-text error into the JSON error body.
func jsonErrors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &captureWriter{ResponseWriter: w, header: http.Header{}}
		h.ServeHTTP(c, r)
		if c.status < 400 {
			return // passed through already
		}
		if a := c.header.Get("Allow"); a != "" {
			w.Header().Set("Allow", a)
		}
		msg := fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path)
		if c.status == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, c.header.Get("Allow"))
		}
		writeError(w, c.status, msg, nil)
	})
}

// captureWriter passes an answer below 400 through and holds back an error
// answer (status and headers) for jsonErrors to rewrite.
type captureWriter struct {
	http.ResponseWriter
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) WriteHeader(code int) {
	if c.status != 0 {
		return
	}
	c.status = code
	if code < 400 {
		for k, v := range c.header {
			c.ResponseWriter.Header()[k] = v
		}
		c.ResponseWriter.WriteHeader(code)
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if c.status >= 400 {
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	// errMsg is the message of an error answer, for the audit log.
	errMsg string
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error    string           `json:"error"`
	Problems []config.Problem `json:"problems,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, problems []config.Problem) {
	if sw, ok := w.(*statusWriter); ok {
		sw.errMsg = msg
	}
	writeJSON(w, status, ErrorBody{Error: msg, Problems: problems})
}

// fail maps an error to a response: validation → 422 with every problem, not
// found → 404, conflict → 409, anything else → 500 (logged, message kept generic
// only when it may carry internals).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ps config.Problems
	switch {
	case errors.As(err, &ps):
		writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("invalid configuration: %d problem(s)", len(ps)), ps)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, err.Error(), nil)
	case errors.Is(err, app.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "request cancelled", nil)
	case errors.Is(err, ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error(), nil)
	case errors.Is(err, app.ErrUnavailable):
		writeError(w, http.StatusBadGateway, redact.Cut(redact.Text(err.Error()), 4<<10), nil)
	default:
		msg := redact.Cut(redact.Text(err.Error()), 4<<10)
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", msg)
		writeError(w, http.StatusInternalServerError, msg, nil)
	}
}

// readJSON reads a bounded JSON body into dst: a body that is not one JSON
// value is 400; one that breaks the operation's schema (unknown fields, wrong
// types, nulls, patterns) is 422 with every problem. It answers and returns
// false on failure.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, dst any, what string) bool {
	b, ok := readBody(w, r)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if !json.Valid(b) {
		writeError(w, http.StatusBadRequest, what+": the body is not one JSON value", nil)
		return false
	}
	if ps := s.docs.problems(r.Pattern, b, ""); len(ps) > 0 {
		writeError(w, http.StatusUnprocessableEntity, what, ps)
		return false
	}
	if err := dec.Decode(dst); err != nil {
		writeError(w, http.StatusUnprocessableEntity, what, config.Problems{{Path: "(document)", Message: err.Error()}})
		return false
	}
	return true
}

// readDocument reads a bounded JSON or YAML document. A JSON body is read as
// JSON (YAML's parser refuses some valid JSON, such as surrogate-pair escapes)
// and handed on as YAML; YAML anchors and aliases are refused (a document sent
// over the API has no use for them, and they can expand a small body into a
// huge one).
func readDocument(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return nil, false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		y, err := jsonToYAML(b)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid JSON document: "+err.Error(), nil)
			return nil, false
		}
		return y, true
	}
	if err := config.RejectAliases(b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid document: "+err.Error(), nil)
		return nil, false
	}
	return b, true
}

// jsonToYAML reads one JSON value and renders it as YAML: numbers keep their
// type (integers stay integers), strings their every character.
func jsonToYAML(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("one JSON value expected, more follows")
	}
	return yaml.Marshal(numbers(v))
}

// numbers replaces the json.Numbers of v by int64, uint64 or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxBody), nil)
		} else {
			writeError(w, http.StatusBadRequest, "cannot read request body", nil)
		}
		return nil, false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		writeError(w, http.StatusBadRequest, "request body is empty: send a JSON (or YAML) document", nil)
		return nil, false
	}
	return b, true
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// --- connections ---

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Connections.Connections(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": nonNil(list)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// decodeConnection reads a connection document: syntax errors are 400; a
// document that does not fit (unknown keys, wrong types, the schema's rules,
// then the connection's own validation) is 422 with every problem.
func (s *Server) decodeConnection(w http.ResponseWriter, r *http.Request, name string) (config.Connection, bool) {
	b, ok := readDocument(w, r)
	if !ok {
		return config.Connection{}, false
	}
	c, err := config.ParseConnection(b)
	schema := s.docs.problems(r.Pattern, b, "connection")
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid connection document", merge(config.Problems{{Path: "connection", Message: err.Error()}}, schema))
		return c, false
	}
	if name != "" && c.Name == "" {
		c.Name = name
	}
	if name != "" && c.Name != name {
		schema = append(schema, config.Problem{Path: "connection.name", Message: fmt.Sprintf("%q in the body does not match %q in the path", c.Name, name)})
	}
	if len(schema) > 0 {
		var ps config.Problems
		errors.As(s.cfg.Connections.CheckConnection(r.Context(), c), &ps)
		writeError(w, http.StatusUnprocessableEntity, "invalid connection document", merge(schema, ps))
		return c, false
	}
	return c, true
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.decodeConnection(w, r, "")
	if !ok {
		return
	}
	setTarget(r, "connection "+c.Name)
	if _, err := s.cfg.Connections.Connection(r.Context(), c.Name); err == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("connection %q exists; use PUT /api/v1/connections/%s to change it", c.Name, c.Name), nil)
		return
	}
	s.applyConnection(w, r, c)
}

func (s *Server) putConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.decodeConnection(w, r, r.PathValue("name"))
	if !ok {
		return
	}
	s.applyConnection(w, r, c)
}

func (s *Server) applyConnection(w http.ResponseWriter, r *http.Request, c config.Connection) {
	created, err := s.cfg.Connections.ApplyConnection(r.Context(), c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.cfg.Connections.Connection(r.Context(), c.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[created], v)
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Connections.Connection(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Connections.DeleteConnection(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) {
	role := r.URL.Query().Get("role")
	if r.URL.Query().Has("role") && role != "source" && role != "destination" && role != "alert_channel" {
		writeError(w, http.StatusBadRequest, "invalid query", config.Problems{{Path: "role", Message: "must be source, destination or alert_channel"}})
		return
	}
	res, err := s.cfg.Connections.TestConnection(r.Context(), r.PathValue("name"), role)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// --- pipelines ---

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Pipelines.Pipelines(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": nonNil(list)})
}

// decodePipeline reads a pipeline document, as decodeConnection does.
func (s *Server) decodePipeline(w http.ResponseWriter, r *http.Request, name string) (config.Pipeline, bool) {
	b, ok := readDocument(w, r)
	if !ok {
		return config.Pipeline{}, false
	}
	p, err := config.ParsePipeline(b)
	if name != "" && p.Name == "" {
		p.Name = name
	}
	prefix := fmt.Sprintf("pipelines[%s]", p.Name)
	schema := s.docs.problems(r.Pattern, b, prefix)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid pipeline document", merge(config.Problems{{Path: prefix, Message: err.Error()}}, schema))
		return p, false
	}
	if name != "" && p.Name != name {
		schema = append(schema, config.Problem{Path: prefix + ".name", Message: fmt.Sprintf("%q in the body does not match %q in the path", p.Name, name)})
	}
	if len(schema) > 0 {
		var ps config.Problems
		errors.As(s.cfg.Pipelines.CheckPipeline(r.Context(), p), &ps)
		writeError(w, http.StatusUnprocessableEntity, "invalid pipeline document", merge(schema, ps))
		return p, false
	}
	return p, true
}

func (s *Server) createPipeline(w http.ResponseWriter, r *http.Request) {
	p, ok := s.decodePipeline(w, r, "")
	if !ok {
		return
	}
	setTarget(r, "pipeline "+p.Name)
	if _, err := s.cfg.Pipelines.Pipeline(r.Context(), p.Name); err == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("pipeline %q exists; use PUT /api/v1/pipelines/%s to change it", p.Name, p.Name), nil)
		return
	}
	s.applyPipeline(w, r, p)
}

func (s *Server) putPipeline(w http.ResponseWriter, r *http.Request) {
	p, ok := s.decodePipeline(w, r, r.PathValue("name"))
	if !ok {
		return
	}
	s.applyPipeline(w, r, p)
}

// applyFile is POST /api/v1/apply: a config file's connections, pipelines
// and alert rules, all at once or not at all.
func (s *Server) applyFile(w http.ResponseWriter, r *http.Request) {
	change, ok := transformChange(w, r)
	if !ok {
		return
	}
	f, schema, ok := parseDocument(s, w, r, "", "invalid config file", config.Parse)
	if !ok {
		return
	}
	setTarget(r, fileTarget(f))
	if len(schema) > 0 {
		// the schema's paths name items by index: by name, as the rest does
		for i := range schema {
			schema[i].Path = namedPath(schema[i].Path, f)
		}
		var ps config.Problems
		errors.As(s.cfg.Documents.CheckFile(r.Context(), f, change), &ps)
		writeError(w, http.StatusUnprocessableEntity, "invalid config file", merge(schema, ps))
		return
	}
	applied, err := s.cfg.Documents.ApplyFile(r.Context(), f, change)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"applied": applied})
}

// fileTarget names what a config file holds, for the audit log.
func fileTarget(f config.File) string {
	var parts []string
	for _, c := range f.Connections {
		parts = append(parts, "connection "+c.Name)
	}
	for _, p := range f.Pipelines {
		parts = append(parts, "pipeline "+p.Name)
	}
	if f.Alerts != nil {
		parts = append(parts, "alerts")
	}
	return redact.Cut(strings.Join(parts, ", "), 512)
}

// namedPath rewrites "pipelines.1.batch" as "pipelines[name].batch" (and so
// for connections), when the item has a name.
func namedPath(path string, f config.File) string {
	list, rest, _ := strings.Cut(path, ".")
	idx, rest, _ := strings.Cut(rest, ".")
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 {
		return path
	}
	var name string
	switch {
	case list == "pipelines" && i < len(f.Pipelines):
		name = f.Pipelines[i].Name
	case list == "connections" && i < len(f.Connections):
		name = f.Connections[i].Name
	}
	if name == "" {
		return path
	}
	out := fmt.Sprintf("%s[%s]", list, name)
	if rest != "" {
		out += "." + rest
	}
	return out
}

// transformChange reads the transform_change parameter; false means the
// answer (400) was written.
func transformChange(w http.ResponseWriter, r *http.Request) (string, bool) {
	var ps config.Problems
	change, given := param(r.URL.Query(), "transform_change", &ps)
	if given && change != "keep_written" && change != "resync" {
		ps = append(ps, config.Problem{Path: "transform_change", Message: "must be keep_written or resync"})
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return "", false
	}
	return change, true
}

// parseDocument reads the request's document, parses it and checks it
// against the route's schema (its problems under prefix). false means the
// answer was written: a body that cannot be read or parsed (what names the
// document in that answer).
func parseDocument[T any](s *Server, w http.ResponseWriter, r *http.Request, prefix, what string, parse func([]byte) (T, error)) (T, config.Problems, bool) {
	var zero T
	b, ok := readDocument(w, r)
	if !ok {
		return zero, nil, false
	}
	v, err := parse(b)
	schema := s.docs.problems(r.Pattern, b, prefix)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, what, merge(config.Problems{{Path: prefix, Message: err.Error()}}, schema))
		return zero, nil, false
	}
	return v, schema, true
}

func (s *Server) applyPipeline(w http.ResponseWriter, r *http.Request, p config.Pipeline) {
	change, ok := transformChange(w, r)
	if !ok {
		return
	}
	created, notice, err := s.cfg.Pipelines.ApplyPipeline(r.Context(), p, change)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.cfg.Pipelines.Pipeline(r.Context(), p.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.Notice = notice
	writeJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[created], v)
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Pipelines.Pipeline(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) pipelineStatus(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Pipelines.Pipeline(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st := map[string]any{"name": v.Name, "state": v.State, "paused": v.Paused}
	if v.LastError != "" {
		st["last_error"] = v.LastError
	}
	if v.Status != nil {
		st["running"] = v.Status.Running
		st["progress"] = v.Status.Progress
		st["failed_attempts"] = v.Status.Attempts
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) pipelineAction(w http.ResponseWriter, r *http.Request, f func(context.Context, string) error) {
	name := r.PathValue("name")
	if err := f(r.Context(), name); err != nil {
		s.fail(w, r, err)
		return
	}
	s.getPipeline(w, r)
}

func (s *Server) pausePipeline(w http.ResponseWriter, r *http.Request) {
	s.pipelineAction(w, r, s.cfg.Pipelines.PausePipeline)
}

func (s *Server) resumePipeline(w http.ResponseWriter, r *http.Request) {
	s.pipelineAction(w, r, s.cfg.Pipelines.ResumePipeline)
}

func (s *Server) resyncPipeline(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Resyncer == nil {
		writeError(w, http.StatusNotFound, "this server resyncs no pipelines", nil)
		return
	}
	var req struct {
		Tables []string `json:"tables"`
	}
	if !s.readJSON(w, r, &req, `body must be {"tables": ["namespace.name", …]}, or {} for the whole pipeline`) {
		return
	}
	rep, err := s.cfg.Resyncer.ResyncPipeline(r.Context(), r.PathValue("name"), req.Tables)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, rep)
}

func (s *Server) verifyPipeline(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Verifier == nil {
		writeError(w, http.StatusNotFound, "this server verifies no pipelines", nil)
		return
	}
	var req struct {
		Tables []string `json:"tables"`
		Repair bool     `json:"repair"`
	}
	if !s.readJSON(w, r, &req, `body must be {"tables": ["namespace.name", …], "repair": false}, or {} for every table`) {
		return
	}
	// a verify of big tables outlasts the server's write timeout: the
	// request's own context still ends it when the client goes away
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(verifyWriteTimeout))
	rep, err := s.cfg.Verifier.VerifyPipeline(r.Context(), r.PathValue("name"), app.VerifyOptions{Tables: req.Tables, Repair: req.Repair})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// verifyWriteTimeout bounds the answer of a verify.
const verifyWriteTimeout = 2 * time.Hour

func (s *Server) listVerifications(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Verifier == nil {
		writeError(w, http.StatusNotFound, "this server verifies no pipelines", nil)
		return
	}
	var ps config.Problems
	limit := intParam(r.URL.Query(), "limit", 1, 100, 20, &ps)
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	vs, err := s.cfg.Verifier.Verifications(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"verifications": vs})
}

func (s *Server) deletePipeline(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	force, _ := param(r.URL.Query(), "force", &ps)
	if force != "" && force != "true" && force != "false" {
		ps = append(ps, config.Problem{Path: "force", Message: "must be true or false"})
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	rep, err := s.cfg.Pipelines.DeletePipeline(r.Context(), r.PathValue("name"), force == "true")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if force != "true" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// --- schema changes ---

// SchemaChangeList is the held tables of a pipeline.
type SchemaChangeList struct {
	SchemaChanges []pipeline.Hold `json:"schema_changes"`
}

func (s *Server) listSchemaChanges(w http.ResponseWriter, r *http.Request) {
	holds, err := s.cfg.SchemaChanges.SchemaChanges(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SchemaChangeList{SchemaChanges: holds})
}

func (s *Server) resolveSchemaChange(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Decision string `json:"decision"`
	}
	if !s.readJSON(w, r, &req, `body must be {"decision": "approve" | "reject" | "new_column"}`) {
		return
	}
	h, err := s.cfg.SchemaChanges.ResolveSchemaChange(r.Context(), r.PathValue("name"), r.PathValue("table"), req.Decision)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// SkippedList is the newest changes a pipeline skipped.
type SkippedList struct {
	Skipped []store.SkippedChange `json:"skipped"`
}

// param returns the value of a query parameter, and whether it was given:
// given more than once, it is a problem.
func param(q url.Values, name string, ps *config.Problems) (string, bool) {
	switch vs := q[name]; len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	*ps = append(*ps, config.Problem{Path: name, Message: "give it once"})
	return "", false
}

// intParam returns an integer query parameter from lo to hi, or def.
func intParam(q url.Values, name string, lo, hi, def int, ps *config.Problems) int {
	v, ok := param(q, name, ps)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		*ps = append(*ps, config.Problem{Path: name, Message: fmt.Sprintf("must be an integer from %d to %d", lo, hi)})
	}
	return n
}

func (s *Server) listSkipped(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	limit := intParam(r.URL.Query(), "limit", 1, 10_000, 100, &ps)
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	list, err := s.cfg.SchemaChanges.Skipped(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SkippedList{Skipped: list})
}

// maxSeq is the largest event seq a query may name: the largest integer a
// JSON number holds exactly (the OpenAPI document's maximum).
const maxSeq = 1<<53 - 1

// EventList is a page of a pipeline's events, oldest first.
type EventList struct {
	Events []pipeline.Event `json:"events"`
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	q := r.URL.Query()
	after := intParam(q, "after", 0, maxSeq, 0, &ps)
	limit := intParam(q, "limit", 1, 10_000, 100, &ps)
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	list, err := s.cfg.History.Events(r.Context(), r.PathValue("name"), int64(after), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []pipeline.Event{}
	}
	writeJSON(w, http.StatusOK, EventList{Events: list})
}

// sseKeepalive is how often an idle event stream sends a comment, so that
// proxies and clients see it alive.
const sseKeepalive = 15 * time.Second

// streamEvents streams a pipeline's events as Server-Sent Events: those after
// Last-Event-ID (or ?after=), then each as it is recorded, in order.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	q := r.URL.Query()
	after := intParam(q, "after", 0, maxSeq, 0, &ps)
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 || n > maxSeq {
			ps = append(ps, config.Problem{Path: "Last-Event-ID", Message: "must be an event's seq"})
		}
		after = int(n)
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	name := r.PathValue("name")
	// subscribe first, then read the backlog: nothing falls between the two
	live, cancel, err := s.cfg.History.SubscribeEvents(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer cancel()
	rc := startSSE(w)
	last := int64(after)
	send := func(e pipeline.Event) bool {
		if e.Seq <= last {
			return true
		}
		b, err := json.Marshal(e)
		if err != nil {
			return false
		}
		// the JSON has no newline: one data line
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Kind, b); err != nil {
			return false
		}
		last = e.Seq
		return true
	}
	for {
		page, err := s.cfg.History.Events(r.Context(), name, last, 1000)
		if err != nil {
			return
		}
		for _, e := range page {
			if !send(e) {
				return
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	followSSE(r, w, rc, live, send) // a subscriber that fell behind reconnects with Last-Event-ID
}

// startSSE answers with an event stream: no write deadline (a stream outlives
// the server's write timeout), no caching, no proxy buffering.
func startSSE(w http.ResponseWriter) *http.ResponseController {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return rc
}

// followSSE sends each live event until the client leaves, send fails or
// the subscription ends (the subscriber fell behind), with a keepalive
// comment when nothing happens.
func followSSE(r *http.Request, w http.ResponseWriter, rc *http.ResponseController, live <-chan pipeline.Event, send func(pipeline.Event) bool) {
	if rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(sseKeepalive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-live:
			if !ok || !send(e) {
				return
			}
		case <-tick.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// catalog lists a page of the tables a connection's server has: a source's
// to pick, or those that exist at a destination (?role=destination).
func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	q := r.URL.Query()
	limit := intParam(q, "limit", 1, 1000, 100, &ps)
	var cq catalog.Query
	var role string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"schema", &cq.Schema}, {"search", &cq.Search}, {"after", &cq.After}, {"role", &role}} {
		if v, ok := param(q, p.name, &ps); ok {
			if utf8.RuneCountInString(v) > 256 { // the schema counts characters
				ps = append(ps, config.Problem{Path: p.name, Message: "at most 256 characters"})
			}
			*p.dst = v
		}
	}
	if role != "" && role != "source" && role != "destination" {
		ps = append(ps, config.Problem{Path: "role", Message: "must be source or destination"})
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	cq.Limit = limit
	page, err := s.cfg.Catalogs.Catalog(r.Context(), r.PathValue("name"), role, cq)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if page.Tables == nil {
		page.Tables = []catalog.Table{}
	}
	writeJSON(w, http.StatusOK, page)
}

// Timeseries is a pipeline's chart points, oldest first.
type Timeseries struct {
	Window string         `json:"window"`
	Points []series.Point `json:"points"`
}

// windows are the chart windows a time series is asked for.
var windows = map[string]time.Duration{"5m": 5 * time.Minute, "15m": 15 * time.Minute, "1h": time.Hour, "6h": 6 * time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour}

// timeseries answers a pipeline's chart points over ?window= (default 1h):
// every 10 s up to an hour, every 5 min beyond.
func (s *Server) timeseries(w http.ResponseWriter, r *http.Request) {
	window := time.Hour
	var ps config.Problems
	if v, ok := param(r.URL.Query(), "window", &ps); ok {
		d, known := windows[v]
		if !known {
			ps = append(ps, config.Problem{Path: "window", Message: "one of 5m, 15m, 1h, 6h, 24h, 7d"})
		}
		window = d
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	points, err := s.cfg.History.Timeseries(r.Context(), r.PathValue("name"), window)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if points == nil {
		points = []series.Point{}
	}
	writeJSON(w, http.StatusOK, Timeseries{Window: window.String(), Points: points})
}

// --- alerts ---

func (s *Server) getAlerts(w http.ResponseWriter, r *http.Request) {
	a, err := s.cfg.Alerts.AlertRules(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if a.Rules == nil {
		a.Rules = []config.AlertRule{}
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) putAlerts(w http.ResponseWriter, r *http.Request) {
	a, schema, ok := parseDocument(s, w, r, "alerts", "invalid alerts document", config.ParseAlerts)
	if !ok {
		return
	}
	if len(schema) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid alerts document", schema)
		return
	}
	if err := s.cfg.Alerts.ApplyAlerts(r.Context(), a); err != nil {
		s.fail(w, r, err)
		return
	}
	s.getAlerts(w, r)
}

// ActiveAlerts are the pending and firing alerts.
type ActiveAlerts struct {
	Alerts []alerts.Active `json:"alerts"`
}

func (s *Server) activeAlerts(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Alerts.ActiveAlerts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []alerts.Active{}
	}
	writeJSON(w, http.StatusOK, ActiveAlerts{Alerts: list})
}

// AlertHistory is the newest alert deliveries.
type AlertHistory struct {
	History []alerts.HistoryEntry `json:"history"`
}

func (s *Server) alertHistory(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	limit := intParam(r.URL.Query(), "limit", 1, 10_000, 100, &ps)
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	list, err := s.cfg.Alerts.AlertHistory(r.Context(), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []alerts.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, AlertHistory{History: list})
}

// --- transforms ---

func (s *Server) previewTransforms(w http.ResponseWriter, r *http.Request) {
	body, ok := readDocument(w, r)
	if !ok {
		return
	}
	req, err := app.ParsePreview(body)
	schema := s.docs.problems(r.Pattern, body, "")
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid preview request", merge(config.Problems{{Path: "(document)", Message: err.Error()}}, schema))
		return
	}
	if len(schema) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid preview request", schema)
		return
	}
	res, err := s.cfg.Previewer.Preview(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// --- tokens ---

// TokenView is a token as listed; the plaintext is never shown again.
type TokenView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       store.Role `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt time.Time  `json:"last_used_at,omitzero"`
	ExpiresAt  time.Time  `json:"expires_at,omitzero"`
}

func tokenView(t store.Token) TokenView {
	return TokenView{ID: t.ID, Name: t.Name, Role: t.Role, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt}
}

// NewTokenView is a token just made, with its plaintext, shown only now.
type NewTokenView struct {
	TokenView
	Token string `json:"token"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Tokens.ListTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]TokenView, 0, len(list))
	for _, t := range list {
		out = append(out, tokenView(t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// maxTokenLife bounds expires_in.
const maxTokenLife = 10 * 365 * 24 * time.Hour

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string `json:"name"`
		Role      string `json:"role"`
		ExpiresIn string `json:"expires_in"`
	}
	if !s.readJSON(w, r, &req, "invalid token request") {
		return
	}
	setTarget(r, "token "+req.Name)
	var ps []config.Problem
	spec := store.TokenSpec{Name: req.Name, Role: store.Role(req.Role)}
	if !store.TokenName.MatchString(req.Name) {
		ps = append(ps, config.Problem{Path: "name", Message: "must match " + store.TokenName.String()})
	}
	if _, err := store.ParseRole(string(spec.Role)); err != nil {
		ps = append(ps, config.Problem{Path: "role", Message: err.Error()})
	}
	if req.ExpiresIn != "" {
		d, err := time.ParseDuration(req.ExpiresIn)
		if err != nil || d < time.Minute || d > maxTokenLife {
			ps = append(ps, config.Problem{Path: "expires_in", Message: fmt.Sprintf("must be a duration from 1m to %s, like \"720h\"", maxTokenLife)})
		} else {
			spec.ExpiresAt = time.Now().Add(d)
		}
	}
	if len(ps) == 0 && spec.Role != store.RoleAdmin {
		if has, err := s.cfg.Tokens.HasTokens(r.Context()); err != nil {
			s.fail(w, r, err)
			return
		} else if !has {
			ps = append(ps, config.Problem{Path: "role", Message: "the first token must be an admin: it is the one that manages the others"})
		}
	}
	if len(ps) > 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid token request", ps)
		return
	}
	plain, t, err := s.cfg.Tokens.CreateToken(r.Context(), spec)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setTarget(r, "token "+t.ID+" ("+t.Name+")")
	writeJSON(w, http.StatusCreated, NewTokenView{TokenView: tokenView(t), Token: plain})
}

// deleteToken revokes a token, but not the one in use: that would lock its
// caller out (and a token that is not its caller's is always another admin
// token's to revoke, so an admin token remains). The CLI, on the store, can.
func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if cur, ok := tokenOf(r); ok && cur.ID == id {
		writeError(w, http.StatusConflict, "a token cannot revoke itself: revoke it with another admin token, or with `cdcd tokens delete` on the server", nil)
		return
	}
	if err := s.cfg.Tokens.DeleteToken(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- audit ---

// AuditList is a page of the audit log, newest first; Next, when set, is the
// before= of the next page.
type AuditList struct {
	Entries []store.AuditEntry `json:"entries"`
	Next    string             `json:"next,omitempty"`
}

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	var ps config.Problems
	query := r.URL.Query()
	q := store.AuditQuery{Limit: intParam(query, "limit", 1, 1000, 100, &ps)}
	if v, ok := param(query, "before", &ps); ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			ps = append(ps, config.Problem{Path: "before", Message: "must be a time like 2026-12-01T10:00:00Z"})
		}
		q.Before = t
	}
	if len(ps) > 0 {
		writeError(w, http.StatusBadRequest, "invalid query", ps)
		return
	}
	list, err := s.cfg.Audit.ListAudit(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := AuditList{Entries: list}
	if len(list) == q.Limit {
		out.Next = list[len(list)-1].At.Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, out)
}

// Identity is who a request is made as: what the UI shows and which controls
// it offers.
type Identity struct {
	// Open: no token exists yet and the request is local: every role's rights.
	Open bool       `json:"open"`
	Name string     `json:"name,omitempty"`
	Role store.Role `json:"role"`
	// ExpiresAt is when the token stops working (absent: never).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	tok, ok := tokenOf(r)
	if !ok {
		writeJSON(w, http.StatusOK, Identity{Open: true, Role: store.RoleAdmin})
		return
	}
	id := Identity{Name: tok.Name, Role: tok.Role}
	if !tok.ExpiresAt.IsZero() {
		at := tok.ExpiresAt.UTC()
		id.ExpiresAt = &at
	}
	writeJSON(w, http.StatusOK, id)
}

func (s *Server) types(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Types == nil {
		writeJSON(w, http.StatusOK, registry.Types{Connections: []registry.ConnectionType{}, Transforms: []registry.TypeFields{}})
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Types.Describe())
}

// planPipeline answers what a pipeline document would do: its problems (a
// document the schema refuses is a 422, as its creation would be; one that
// is well formed but wrong, a 200 with ok false and the problems), the live
// checks of its source and destination, and each table's destination name
// and shape.
func (s *Server) planPipeline(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Planner == nil {
		writeError(w, http.StatusNotFound, "this server plans no pipelines", nil)
		return
	}
	b, ok := readDocument(w, r)
	if !ok {
		return
	}
	p, err := config.ParsePipeline(b)
	prefix := fmt.Sprintf("pipelines[%s]", p.Name)
	problems := s.docs.problems(r.Pattern, b, prefix)
	if err != nil {
		problems = merge(config.Problems{{Path: prefix, Message: err.Error()}}, problems)
	}
	if len(problems) > 0 {
		// not a pipeline document at all: refused as its creation would be
		var more config.Problems
		if err == nil {
			errors.As(s.cfg.Pipelines.CheckPipeline(r.Context(), p), &more)
		}
		writeError(w, http.StatusUnprocessableEntity, "invalid pipeline document", merge(problems, more))
		return
	}
	plan, err := s.cfg.Planner.PlanPipeline(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

// streamAllEvents streams every pipeline's events as they are recorded
// (Server-Sent Events; each data is an Event with its pipeline): what the
// pipeline list follows to show a state change at once. There is no backlog:
// seqs count per pipeline; a client that reconnects reads the list again.
func (s *Server) streamAllEvents(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AllEvents == nil {
		writeError(w, http.StatusNotFound, "this server streams no events", nil)
		return
	}
	live, cancel, err := s.cfg.AllEvents.SubscribeAllEvents(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer cancel()
	// a subscriber that fell behind reconnects and reads the list again
	followSSE(r, w, startSSE(w), live, func(e pipeline.Event) bool {
		b, err := json.Marshal(e)
		if err != nil {
			return false
		}
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.Kind, b)
		return err == nil
	})
}

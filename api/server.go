package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/internal/app"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Control is what the API drives; internal/app.App implements it.
type Control interface {
	ApplyConnection(ctx context.Context, c config.Connection) (created bool, err error)
	Connections(ctx context.Context) ([]app.ConnectionView, error)
	Connection(ctx context.Context, name string) (app.ConnectionView, error)
	DeleteConnection(ctx context.Context, name string) error
	TestConnection(ctx context.Context, name string) (app.CheckResult, error)

	ApplyPipeline(ctx context.Context, p config.Pipeline, transformChange string) (created bool, notice string, err error)
	Pipelines(ctx context.Context) ([]app.PipelineView, error)
	Pipeline(ctx context.Context, name string) (app.PipelineView, error)
	PausePipeline(ctx context.Context, name string) error
	ResumePipeline(ctx context.Context, name string) error
	DeletePipeline(ctx context.Context, name string) error
	SchemaChanges(ctx context.Context, name string) ([]pipeline.Hold, error)
	ResolveSchemaChange(ctx context.Context, name, table, decision string) (pipeline.Hold, error)
	Skipped(ctx context.Context, name string, limit int) ([]store.SkippedChange, error)
	Preview(ctx context.Context, req app.PreviewRequest) (app.PreviewResult, error)
}

// Tokens is the token store the API authenticates against.
type Tokens interface {
	CreateToken(ctx context.Context, name string) (string, store.Token, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	DeleteToken(ctx context.Context, id string) error
	VerifyToken(ctx context.Context, plaintext string) (store.Token, error)
	HasTokens(ctx context.Context) (bool, error)
}

// Config configures a Server.
type Config struct {
	Control Control
	Tokens  Tokens
	Metrics prometheus.Gatherer
	// Ready reports whether the process can serve (store reachable, supervisor up).
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
	// UI is the static web UI, served at /; nil serves none.
	UI fs.FS
	// Version is reported by /healthz.
	Version string
}

// Server is the HTTP handler of the control plane.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

type route struct {
	method, path string
	public       bool
	h            http.HandlerFunc
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "api"), mux: http.NewServeMux()}
	for _, r := range s.routes() {
		h := r.h
		if !r.public {
			h = s.auth(h)
		}
		s.mux.Handle(r.method+" "+r.path, h)
	}
	if cfg.UI != nil {
		s.mux.Handle("GET /", http.FileServerFS(cfg.UI))
	}
	return s
}

func (s *Server) routes() []route {
	metrics := promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})
	return []route{
		{"GET", "/healthz", true, s.healthz},
		{"GET", "/readyz", true, s.readyz},
		{"GET", "/metrics", false, metrics.ServeHTTP},
		{"GET", "/api/v1/openapi.json", false, s.openapi},

		{"GET", "/api/v1/connections", false, s.listConnections},
		{"POST", "/api/v1/connections", false, s.createConnection},
		{"GET", "/api/v1/connections/{name}", false, s.getConnection},
		{"PUT", "/api/v1/connections/{name}", false, s.putConnection},
		{"DELETE", "/api/v1/connections/{name}", false, s.deleteConnection},
		{"POST", "/api/v1/connections/{name}/test", false, s.testConnection},

		{"GET", "/api/v1/pipelines", false, s.listPipelines},
		{"POST", "/api/v1/pipelines", false, s.createPipeline},
		{"GET", "/api/v1/pipelines/{name}", false, s.getPipeline},
		{"PUT", "/api/v1/pipelines/{name}", false, s.putPipeline},
		{"DELETE", "/api/v1/pipelines/{name}", false, s.deletePipeline},
		{"POST", "/api/v1/pipelines/{name}/pause", false, s.pausePipeline},
		{"POST", "/api/v1/pipelines/{name}/resume", false, s.resumePipeline},
		{"GET", "/api/v1/pipelines/{name}/status", false, s.pipelineStatus},
		{"GET", "/api/v1/pipelines/{name}/schema-changes", false, s.listSchemaChanges},
		{"POST", "/api/v1/pipelines/{name}/schema-changes/{table}", false, s.resolveSchemaChange},
		{"GET", "/api/v1/pipelines/{name}/skipped", false, s.listSkipped},

		{"POST", "/api/v1/transforms/preview", false, s.previewTransforms},

		{"GET", "/api/v1/tokens", false, s.listTokens},
		{"POST", "/api/v1/tokens", false, s.createToken},
		{"DELETE", "/api/v1/tokens/{id}", false, s.deleteToken},
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if !sw.wrote {
				writeError(sw, http.StatusInternalServerError, "internal error", nil)
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", time.Since(start))
	}()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(sw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
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

// auth requires a valid bearer token once any token exists.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		has, err := s.cfg.Tokens.HasTokens(r.Context())
		if err != nil {
			s.log.Error("check tokens", "error", err)
			writeError(w, http.StatusServiceUnavailable, "cannot check credentials: metadata store unavailable", nil)
			return
		}
		if has {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || tok == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cdcd"`)
				writeError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>; create one with `cdcd tokens create`)", nil)
				return
			}
			if _, err := s.cfg.Tokens.VerifyToken(r.Context(), strings.TrimSpace(tok)); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="cdcd", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, "invalid bearer token", nil)
				return
			}
		}
		next(w, r)
	}
}

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
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", config.RedactURL(err.Error()))
		writeError(w, http.StatusInternalServerError, config.RedactURL(err.Error()), nil)
	}
}

// readJSON reads a bounded JSON body strictly (unknown fields are errors) into
// dst; on failure it answers 400 with what, and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, dst any, what string) bool {
	b, ok := readBody(w, r)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeError(w, http.StatusBadRequest, what+": "+err.Error(), nil)
		return false
	}
	return true
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
	list, err := s.cfg.Control.Connections(r.Context())
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

func (s *Server) decodeConnection(w http.ResponseWriter, r *http.Request, name string) (config.Connection, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return config.Connection{}, false
	}
	c, err := config.ParseConnection(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid connection document: "+err.Error(), nil)
		return c, false
	}
	if name != "" {
		if c.Name == "" {
			c.Name = name
		}
		if c.Name != name {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("name %q in the body does not match %q in the path", c.Name, name), nil)
			return c, false
		}
	}
	return c, true
}

func (s *Server) createConnection(w http.ResponseWriter, r *http.Request) {
	c, ok := s.decodeConnection(w, r, "")
	if !ok {
		return
	}
	if _, err := s.cfg.Control.Connection(r.Context(), c.Name); err == nil {
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
	created, err := s.cfg.Control.ApplyConnection(r.Context(), c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.cfg.Control.Connection(r.Context(), c.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[created], v)
}

func (s *Server) getConnection(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Control.Connection(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) deleteConnection(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Control.DeleteConnection(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) testConnection(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Control.TestConnection(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for i, p := range res.Problems {
		res.Problems[i] = config.RedactURL(p)
	}
	writeJSON(w, http.StatusOK, res)
}

// --- pipelines ---

func (s *Server) listPipelines(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Control.Pipelines(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": nonNil(list)})
}

func (s *Server) decodePipeline(w http.ResponseWriter, r *http.Request, name string) (config.Pipeline, bool) {
	b, ok := readBody(w, r)
	if !ok {
		return config.Pipeline{}, false
	}
	p, err := config.ParsePipeline(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid pipeline document: "+err.Error(), nil)
		return p, false
	}
	if name != "" {
		if p.Name == "" {
			p.Name = name
		}
		if p.Name != name {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("name %q in the body does not match %q in the path", p.Name, name), nil)
			return p, false
		}
	}
	return p, true
}

func (s *Server) createPipeline(w http.ResponseWriter, r *http.Request) {
	p, ok := s.decodePipeline(w, r, "")
	if !ok {
		return
	}
	if _, err := s.cfg.Control.Pipeline(r.Context(), p.Name); err == nil {
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

func (s *Server) applyPipeline(w http.ResponseWriter, r *http.Request, p config.Pipeline) {
	created, notice, err := s.cfg.Control.ApplyPipeline(r.Context(), p, r.URL.Query().Get("transform_change"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v, err := s.cfg.Control.Pipeline(r.Context(), p.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.Notice = notice
	writeJSON(w, map[bool]int{true: http.StatusCreated, false: http.StatusOK}[created], v)
}

func (s *Server) getPipeline(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Control.Pipeline(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) pipelineStatus(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Control.Pipeline(r.Context(), r.PathValue("name"))
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
	s.pipelineAction(w, r, s.cfg.Control.PausePipeline)
}

func (s *Server) resumePipeline(w http.ResponseWriter, r *http.Request) {
	s.pipelineAction(w, r, s.cfg.Control.ResumePipeline)
}

func (s *Server) deletePipeline(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Control.DeletePipeline(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- schema changes ---

// SchemaChangeList is the held tables of a pipeline.
type SchemaChangeList struct {
	SchemaChanges []pipeline.Hold `json:"schema_changes"`
}

func (s *Server) listSchemaChanges(w http.ResponseWriter, r *http.Request) {
	holds, err := s.cfg.Control.SchemaChanges(r.Context(), r.PathValue("name"))
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
	if !readJSON(w, r, &req, `body must be {"decision": "approve" | "reject" | "new_column"}`) {
		return
	}
	h, err := s.cfg.Control.ResolveSchemaChange(r.Context(), r.PathValue("name"), r.PathValue("table"), req.Decision)
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

func (s *Server) listSkipped(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10_000 {
			writeError(w, http.StatusBadRequest, "limit must be an integer from 1 to 10000", nil)
			return
		}
		limit = n
	}
	list, err := s.cfg.Control.Skipped(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SkippedList{Skipped: list})
}

// --- transforms ---

func (s *Server) previewTransforms(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := app.ParsePreview(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.cfg.Control.Preview(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// --- tokens ---

// TokenView is a token as listed; the plaintext is never shown again.
type TokenView struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	list, err := s.cfg.Tokens.ListTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]TokenView, 0, len(list))
	for _, t := range list {
		out = append(out, TokenView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedAt, LastUsedAt: t.LastUsedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if !readJSON(w, r, &req, "invalid token request") {
		return
	}
	if req.Name == "" || len(req.Name) > 100 {
		writeError(w, http.StatusUnprocessableEntity, "invalid token request", []config.Problem{{Path: "name", Message: "required, at most 100 characters"}})
		return
	}
	plain, t, err := s.cfg.Tokens.CreateToken(r.Context(), req.Name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": t.ID, "name": t.Name, "created_at": t.CreatedAt, "token": plain})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Tokens.DeleteToken(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Package api is cdcd's REST control plane under /api/v1: connections (CRUD and a
// live test action), pipelines (CRUD, pause, resume, status), API tokens, plus
// /healthz, /readyz, /metrics (Prometheus, from an injected gatherer) and the
// OpenAPI 3 document at /api/v1/openapi.json, which a test keeps in step with the
// routes and the responses.
//
// Auth: bearer tokens. While no token exists the API is open (a fresh local
// install); once one does, every endpoint except /healthz, /readyz and the static
// web UI requires a valid token (deny by default).
//
// Errors are JSON: {"error": "...", "problems": [{"path", "message"}]}. Bad input
// is a 4xx listing every problem, never a 500.
//
// Concurrency: a Server is safe for concurrent use by net/http.
package api

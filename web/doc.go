// Package web holds cdcd's web UI: static files embedded in the binary and served
// by api at /. The UI uses only the public REST API (with a bearer token the user
// enters, kept in the browser's session storage).
//
// FS is safe for concurrent use.
package web

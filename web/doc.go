// Package web holds cdcd's web UI, embedded in the binary and served by api at
// / (any path without a file extension is the single-page app's route). The
// files in static/ are the build of the TypeScript app in ui/ (Preact and
// Vite), committed so that `go build` needs no Node.js; scripts/test rebuilds
// them with the locked toolchain and fails when they differ. The UI uses only
// the public REST API, through a client typed from the OpenAPI document, with
// a bearer token the user enters, kept in the tab's session storage.
//
// FS is safe for concurrent use.
package web

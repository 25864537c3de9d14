// ui/ is the web UI's TypeScript project, not Go. This file makes it a module
// of its own, so that `go vet ./...` and `go test ./...` of the cdcd module
// skip it, and the Go files some npm packages carry in node_modules with it.
module github.com/cdcd-dev/cdcd/ui

go 1.25

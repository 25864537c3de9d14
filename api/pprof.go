package api

import (
	"net/http/pprof"

	"github.com/cdcd-dev/cdcd/internal/store"
)

// pprofRoutes are Go's runtime profiles (CPU, heap, goroutines, …), for an
// admin: they show the process's memory and stacks. They are a debugging aid,
// served only with Config.Pprof, and not part of the API's OpenAPI document
// (TestOpenAPIMatchesRoutes reads server.go's routes).
func pprofRoutes() []route {
	admin := store.RoleAdmin
	return []route{
		{"GET", "/debug/pprof/", admin, pprof.Index}, // and every named profile: /debug/pprof/heap …
		{"GET", "/debug/pprof/cmdline", admin, pprof.Cmdline},
		{"GET", "/debug/pprof/profile", admin, pprof.Profile},
		{"GET", "/debug/pprof/symbol", admin, pprof.Symbol},
		{"GET", "/debug/pprof/trace", admin, pprof.Trace},
	}
}

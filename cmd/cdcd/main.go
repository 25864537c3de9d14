// Command cdcd is a change-data-capture replication service: it tails database
// logs (Postgres logical replication, MySQL/MariaDB binlog) and keeps warehouse
// tables continuously in step.
//
//	cdcd serve                      # API, web UI and every stored pipeline
//	cdcd run -f pipelines.yaml      # run the pipelines of a file in the foreground
//	cdcd config check -f FILE       # validate a config file, no I/O
//	cdcd pipelines list|get|apply|pause|resume|delete   # talk to a running server
//	cdcd connections list|get|apply|test|delete
//	cdcd tokens create|list|delete  # API tokens, on the metadata store directly
//	cdcd version
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/cdcd-dev/cdcd/sources/datagen"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// registry registers every component explicitly; there is no init() registration.
func registry() *pipeline.Registry {
	r := pipeline.NewRegistry()
	r.Sources["datagen"] = datagen.Factory()
	r.Sinks["file"] = file.Factory()
	return r
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	err := newRoot().ExecuteContext(context.Background())
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		fmt.Fprintf(os.Stderr, "invalid configuration (%d problems):\n", len(ps))
		for _, p := range ps {
			fmt.Fprintf(os.Stderr, "  %s\n", p.Error())
		}
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "cdcd:", err)
	os.Exit(code)
}

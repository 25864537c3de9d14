package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/notify"
	"os"

	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/cdcd-dev/cdcd/sinks/bigquery"
	"github.com/cdcd-dev/cdcd/sinks/clickhouse"
	"github.com/cdcd-dev/cdcd/sinks/discard"
	"github.com/cdcd-dev/cdcd/sinks/file"
	pgsink "github.com/cdcd-dev/cdcd/sinks/postgres"
	"github.com/cdcd-dev/cdcd/sinks/snowflake"
	"github.com/cdcd-dev/cdcd/sources/datagen"
	mysqlsrc "github.com/cdcd-dev/cdcd/sources/mysql"
	pgsrc "github.com/cdcd-dev/cdcd/sources/postgres"
	"github.com/cdcd-dev/cdcd/transforms/addfields"
	"github.com/cdcd-dev/cdcd/transforms/cast"
	"github.com/cdcd-dev/cdcd/transforms/columns"
	"github.com/cdcd-dev/cdcd/transforms/filter"
	"github.com/cdcd-dev/cdcd/transforms/flatten"
	"github.com/cdcd-dev/cdcd/transforms/mask"
	"github.com/cdcd-dev/cdcd/transforms/route"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// components registers every component explicitly; there is no init() registration.
func components() *registry.Registry {
	r := registry.New()
	r.Sources["datagen"] = datagen.Factory()
	r.Sources["postgres"] = pgsrc.Factory()
	r.Sources["mysql"] = mysqlsrc.Factory()
	r.Sinks["file"] = file.Factory()
	r.Sinks["discard"] = discard.Factory()
	r.Sinks["postgres"] = pgsink.Factory()
	r.Sinks["clickhouse"] = clickhouse.Factory()
	r.Sinks["snowflake"] = snowflake.Factory()
	r.Sinks["bigquery"] = bigquery.Factory()
	r.Transforms["filter"] = filter.Factory()
	r.Transforms["mask"] = mask.Factory()
	r.Transforms["columns"] = columns.Factory()
	r.Transforms["route"] = route.Factory()
	r.Transforms["add_fields"] = addfields.Factory()
	r.Transforms["cast"] = cast.Factory()
	r.Transforms["flatten"] = flatten.Factory()
	r.Notifiers = notify.Types()
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

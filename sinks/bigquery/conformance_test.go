package bigquery

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/cdcd-dev/cdcd/sinks/sinktest"
)

// The REST client keeps idle HTTP connections, and managedwriter cancels a
// replaced append connection 20 s later from a goroutine of its own.
func TestMain(m *testing.M) {
	sinktest.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("cloud.google.com/go/bigquery/storage/managedwriter.(*connection).getStream.func1"))
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness { return newHarness(t) })
}

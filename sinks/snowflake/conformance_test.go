package snowflake

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/cdcd-dev/cdcd/sinks/sinktest"
)

// gosnowflake keeps idle HTTP connections in its shared transport.
func TestMain(m *testing.M) {
	sinktest.VerifyTestMain(m, goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness { return newHarness(t) })
}

package clickhouse

import (
	"os"
	"testing"

	"github.com/cdcd-dev/cdcd/sinks/sinktest"
)

// The suite runs on the current ClickHouse engine (chdb: DDL, engine semantics,
// type mapping, the Native blocks clickhouse-go encodes), on Debian's 18.16
// server (the native-protocol wire path, kills and restarts), and on a live
// server when CDCD_TEST_CLICKHOUSE_DSN names one (host:port).
func TestConformanceChDB(t *testing.T) { sinktest.Run(t, newChdbHarness) }

func TestConformanceServer18(t *testing.T) { sinktest.Run(t, newServerHarness) }

func TestConformanceLive(t *testing.T) {
	if os.Getenv("CDCD_TEST_CLICKHOUSE_DSN") == "" {
		t.Skip("CDCD_TEST_CLICKHOUSE_DSN is not set")
	}
	sinktest.Run(t, newLiveHarness)
}

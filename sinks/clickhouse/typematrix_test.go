package clickhouse

import (
	"testing"

	"github.com/cdcd-dev/cdcd/test/typematrix"
)

// TestTypeMatrix runs every source type, with edge values, through this sink on
// both paths (test/typematrix), on the current engine and on 18.16.
func TestTypeMatrix(t *testing.T) {
	t.Run("chdb", func(t *testing.T) { typematrix.Run(t, "clickhouse", newChdbHarness) })
	t.Run("server18", func(t *testing.T) { typematrix.Run(t, "clickhouse-18", newServerHarness) })
}

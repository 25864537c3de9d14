package bigquery

import (
	"testing"

	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/test/typematrix"
)

// TestTypeMatrix runs every source type, with edge values, through this sink on
// both paths (test/typematrix), on the emulator.
func TestTypeMatrix(t *testing.T) {
	typematrix.Run(t, "bigquery", func(t *testing.T) sinktest.Harness { return newHarness(t) })
}

package postgres

import (
	"testing"

	"github.com/cdcd-dev/cdcd/test/typematrix"
)

// TestTypeMatrix runs every source type, with edge values, through this sink on
// both paths (test/typematrix).
func TestTypeMatrix(t *testing.T) { typematrix.Run(t, "postgres", newHarness("merge")) }

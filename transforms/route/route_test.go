package route

import (
	"testing"

	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/stretchr/testify/require"
)

func TestGolden(t *testing.T) {
	r, err := New(Config{Pattern: `^public\.(.*)$`, Replace: "raw.cdc_$1"})
	require.NoError(t, err)
	transformtest.Golden(t, r, "users")
}

func TestErrors(t *testing.T) {
	_, err := New(Config{Pattern: "("})
	require.ErrorContains(t, err, "pattern")
	require.ErrorContains(t, err, "replace")
	_, err = New(Config{})
	require.ErrorContains(t, err, "map or pattern")
}

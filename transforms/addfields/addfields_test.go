package addfields

import (
	"testing"

	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/stretchr/testify/require"
)

func TestGolden(t *testing.T) {
	a, err := New(Config{Static: map[string]string{"env": "prod"}, Metadata: map[string]string{"_op": "op", "_src": "source_table", "_ts": "commit_ts", "_tx": "tx"}})
	require.NoError(t, err)
	transformtest.Golden(t, a, "users")
}

func TestErrors(t *testing.T) {
	_, err := New(Config{Metadata: map[string]string{"x": "weather"}})
	require.ErrorContains(t, err, "weather")
	a, _ := New(Config{Static: map[string]string{"email": "x"}})
	_, err = a.Schema(transformtest.Users)
	require.ErrorContains(t, err, "exists already")
}

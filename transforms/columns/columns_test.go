package columns

import (
	"testing"

	"github.com/cdcd-dev/cdcd/transforms/transformtest"
	"github.com/stretchr/testify/require"
)

func TestGolden(t *testing.T) {
	c, err := New(Config{Drop: []string{"card"}, Rename: map[string]string{"email": "contact"}})
	require.NoError(t, err)
	transformtest.Golden(t, c, "users")
}

func TestErrors(t *testing.T) {
	_, err := New(Config{Drop: []string{"a"}, Keep: []string{"b"}})
	require.ErrorContains(t, err, "not both")
	_, err = New(Config{Rename: map[string]string{"a": "x", "b": "x"}})
	require.ErrorContains(t, err, "both become x")
	c, _ := New(Config{Drop: []string{"id"}})
	_, err = c.Schema(transformtest.Users)
	require.ErrorContains(t, err, "primary key")
	c, _ = New(Config{Rename: map[string]string{"email": "status"}})
	_, err = c.Schema(transformtest.Users)
	require.ErrorContains(t, err, "appears twice")
}

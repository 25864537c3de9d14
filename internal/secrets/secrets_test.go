package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k := make([]byte, 32)
	c, err := New(k)
	require.NoError(t, err)
	s := c.Seal([]byte("password=hunter2"))
	require.NotContains(t, s, "hunter2")
	require.NotEqual(t, s, c.Seal([]byte("password=hunter2")), "nonces differ")
	pt, err := c.Open(s)
	require.NoError(t, err)
	require.Equal(t, "password=hunter2", string(pt))

	k2 := make([]byte, 32)
	k2[0] = 1
	other, _ := New(k2)
	_, err = other.Open(s)
	require.ErrorIs(t, err, ErrWrongKey)
	_, err = c.Open(s[:len(s)-4] + "AAAA")
	require.ErrorIs(t, err, ErrWrongKey)
	_, err = New(k[:16])
	require.Error(t, err)
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	require.True(t, created)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	k2, created, err := LoadOrCreateKeyFile(path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, k1, k2)

	require.NoError(t, os.WriteFile(path, []byte("short"), 0o600))
	_, _, err = LoadOrCreateKeyFile(path)
	require.ErrorContains(t, err, "32 bytes")
	_, err = ParseKey(strings.Repeat("A", 43))
	require.NoError(t, err)
}

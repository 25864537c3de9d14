package secrets

import (
	"encoding/base64"
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
	s := c.Seal([]byte("password=hunter2"), "cdcd_connections.config\x00a")
	require.NotContains(t, s, "hunter2")
	require.Equal(t, c.ID(), KeyIDOf(s))
	require.NotEqual(t, s, c.Seal([]byte("password=hunter2"), "cdcd_connections.config\x00a"), "nonces differ")
	pt, err := c.Open(s, "cdcd_connections.config\x00a")
	require.NoError(t, err)
	require.Equal(t, "password=hunter2", string(pt))

	_, err = c.Open(s, "cdcd_connections.config\x00b")
	require.ErrorIs(t, err, ErrWrongKey, "a value moved to another row does not open")

	k2 := make([]byte, 32)
	k2[0] = 1
	other, _ := New(k2)
	require.NotEqual(t, c.ID(), other.ID())
	_, err = other.Open(s, "cdcd_connections.config\x00a")
	require.ErrorIs(t, err, ErrWrongKey)
	require.ErrorContains(t, err, "sealed under key "+c.ID())
	_, err = c.Open(s[:len(s)-4]+"AAAA", "cdcd_connections.config\x00a")
	require.ErrorIs(t, err, ErrWrongKey)
	_, err = New(k[:16])
	require.Error(t, err)
}

// Values of the first format (no key id, no binding) open only to be sealed
// again.
func TestLegacy(t *testing.T) {
	t.Parallel()
	c, err := New(make([]byte, 32))
	require.NoError(t, err)
	nonce := make([]byte, 12)
	legacy := "v1:" + base64.StdEncoding.EncodeToString(c.aead.Seal(nonce, nonce, []byte("old"), nil))
	_, err = c.Open(legacy, "x")
	require.ErrorContains(t, err, "older cdcd")
	pt, err := c.OpenLegacy(legacy)
	require.NoError(t, err)
	require.Equal(t, "old", string(pt))
	require.Equal(t, "", KeyIDOf(legacy))
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

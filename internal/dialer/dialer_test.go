package dialer

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// silentServer accepts connections and never answers, as a frozen server.
func silentServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln.Addr().String()
}

// TestCloseWithinCutsASilentConnection: a close blocked reading from a
// silent server returns once the context ends, and later dials are refused
// until Reset.
func TestCloseWithinCutsASilentConnection(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	tr := New()
	c, err := tr.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	require.Equal(t, 1, tr.Open())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var readErr error
	tr.CloseWithin(ctx, func() {
		_, readErr = c.Read(make([]byte, 1)) // blocks until the connection is cut
	})
	require.ErrorIs(t, readErr, net.ErrClosed)
	require.Zero(t, tr.Open())
	_, err = tr.DialContext(context.Background(), "tcp", addr)
	require.ErrorIs(t, err, ErrCut)
	tr.Reset()
	c, err = tr.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.Zero(t, tr.Open())
}

// TestCloseWithinLeavesAQuickCloseAlone: a close that returns before the
// context ends cuts nothing.
func TestCloseWithinLeavesAQuickCloseAlone(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	tr := New()
	c, err := tr.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	tr.CloseWithin(context.Background(), func() {})
	require.Equal(t, 1, tr.Open())
	_, err = c.Write([]byte("x"))
	require.False(t, errors.Is(err, net.ErrClosed), "not cut")
	require.NoError(t, c.Close())
}

package sources

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	var p Probe[int]
	_, _, ok := p.Pending()
	require.False(t, ok)
	t0 := time.Unix(100, 0)
	p.Offer(t0, 7)
	p.Offer(t0.Add(time.Second), 9) // one pending at a time: the older stands
	at, pos, ok := p.Pending()
	require.True(t, ok)
	require.Equal(t, t0, at)
	require.Equal(t, 7, pos)
	p.Reached(t0.Add(time.Hour)) // another sample's: nothing
	_, _, ok = p.Pending()
	require.True(t, ok)
	p.Reached(t0)
	_, _, ok = p.Pending()
	require.False(t, ok)
	p.Offer(t0, 1)
	p.Reset()
	_, _, ok = p.Pending()
	require.False(t, ok)
}

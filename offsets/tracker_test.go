package offsets

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func pos(n uint64) Position { return AppendUint(nil, n) }

func TestTrackerContiguous(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := NewTracker(8)
	t1, _ := tr.Begin(ctx, pos(1))
	t2, _ := tr.Begin(ctx, nil) // a batch that ends inside a transaction
	t3, _ := tr.Begin(ctx, pos(3))

	require.NoError(t, tr.Done(t3))
	_, moved := tr.Resolve()
	require.False(t, moved, "a later batch alone must not resolve")

	require.NoError(t, tr.Done(t1))
	p, moved := tr.Resolve()
	require.True(t, moved)
	require.Equal(t, pos(1), p)

	require.NoError(t, tr.Done(t2))
	p, moved = tr.Resolve()
	require.True(t, moved)
	require.Equal(t, pos(3), p)
	require.Equal(t, 0, tr.InFlight())

	require.Error(t, tr.Done(t2), "double done is a bug")
	require.Error(t, tr.Done(99), "unknown ticket is a bug")
}

func TestTrackerCapacityBlocks(t *testing.T) {
	t.Parallel()
	tr := NewTracker(2)
	ctx := context.Background()
	t1, _ := tr.Begin(ctx, pos(1))
	_, _ = tr.Begin(ctx, pos(2))

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := tr.Begin(cctx, pos(3))
	require.ErrorIs(t, err, context.Canceled, "full tracker must block until ctx ends")

	require.NoError(t, tr.Done(t1))
	_, err = tr.Begin(ctx, pos(3))
	require.NoError(t, err, "a freed slot admits the next batch")
}

func TestTrackerRandomOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := 1 + rng.IntN(40)
		tr := NewTracker(n)
		tickets := make([]Ticket, n)
		positions := make([]Position, n)
		for i := range n {
			if rng.IntN(4) != 0 {
				positions[i] = pos(uint64(i + 1))
			}
			tickets[i], _ = tr.Begin(ctx, positions[i])
		}
		done := make([]bool, n)
		for _, i := range rng.Perm(n) {
			require.NoError(t, tr.Done(tickets[i]))
			done[i] = true
			var want Position
			for j := 0; j < n && done[j]; j++ {
				if positions[j] != nil {
					want = positions[j]
				}
			}
			got, _ := tr.Resolve()
			require.Equal(t, want, got, "round %d", round)
		}
		require.Equal(t, 0, tr.InFlight())
	}
}

package datagen

import (
	"context"
	"testing"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

func readAll(t *testing.T, s *Source, n int) []schema.Batch {
	var out []schema.Batch
	for range n {
		b, err := s.Read(context.Background())
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

func TestDeterministicAndResumable(t *testing.T) {
	t.Parallel()
	cfg := Config{Tables: 2, SnapshotRows: 25, Keys: 40, Changes: 60, TxnSize: 4}.WithDefaults()
	deps := sources.Deps{MaxChanges: 10}
	a := New(cfg, deps)
	require.NoError(t, a.Open(context.Background(), nil))
	require.True(t, a.SourceStatus().Snapshotting)
	all := readAll(t, a, 6+15) // 2 tables × 3 chunks, then 15 transactions
	require.False(t, a.SourceStatus().Snapshotting)

	var last offsets.Position
	for _, b := range all {
		for _, c := range b.Changes {
			require.Equal(t, 1, c.Pos.Compare(last), "positions increase")
			last = c.Pos
		}
		require.Equal(t, 1, b.Checkpoint.Compare(last), "the checkpoint follows every change of its batch")
	}

	// Resume after batch 8 yields exactly batches 9.. again.
	b := New(cfg, deps)
	require.NoError(t, b.Open(context.Background(), all[8].Checkpoint))
	rest := readAll(t, b, len(all)-9)
	for i, got := range rest {
		want := all[9+i]
		require.Equal(t, len(want.Changes), len(got.Changes))
		for j := range got.Changes {
			require.Equal(t, want.Changes[j].Pos, got.Changes[j].Pos)
			require.Equal(t, want.Changes[j].Op, got.Changes[j].Op)
			require.Equal(t, string(want.Changes[j].After.AppendJSON(nil)), string(got.Changes[j].After.AppendJSON(nil)))
		}
	}
	require.NotEmpty(t, rest[0].Deltas, "tables are announced again after a resume")

	// The expected final state matches applying every change in order.
	state := map[schema.TableID]map[int64]string{}
	for _, b := range all {
		for _, c := range b.Changes {
			k := c.Key[0].Value.AsInt()
			if state[c.Table] == nil {
				state[c.Table] = map[int64]string{}
			}
			if c.Op == schema.OpDelete {
				delete(state[c.Table], k)
			} else {
				state[c.Table][k] = string(c.After.AppendJSON(nil))
			}
		}
	}
	final := Final(cfg, 10)
	for id, rows := range final {
		require.Len(t, state[id], len(rows))
		for k, r := range rows {
			require.Equal(t, string(r.AppendJSON(nil)), state[id][k])
		}
	}

	require.Error(t, New(cfg, deps).Open(context.Background(), offsets.AppendUint(nil, 1)), "a foreign position is refused")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := Config{Tables: -1, SnapshotRows: 10, Keys: 5, TxnSize: 0, Rate: -1}.Validate()
	require.ErrorContains(t, err, "tables:")
	require.ErrorContains(t, err, "keys:")
	require.ErrorContains(t, err, "txn_size:")
	require.ErrorContains(t, err, "rate:")
}

package clickhouse

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/secrets"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	pgsrc "github.com/cdcd-dev/cdcd/sources/postgres"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// crashingSink fails a Write after a random number of batches, as a process
// crash would: the batch may be half written and nothing after it is committed.
type crashingSink struct {
	sinks.Sink
	left atomic.Int64
}

var errInjected = errors.New("injected crash")

func (c *crashingSink) Write(ctx context.Context, b *schema.Batch) error {
	if c.left.Add(-1) == 0 {
		half := *b
		half.Changes = b.Changes[:len(b.Changes)/2]
		_ = c.Sink.Write(ctx, &half)
		return errInjected
	}
	return c.Sink.Write(ctx, b)
}

// TestPostgresWorkloadOnCurrentEngine runs the end-to-end workload (a snapshot
// plus inserts, updates, deletes and key updates) from a private Postgres through
// the real engine into the ClickHouse sink on the current engine (chdb), with
// attempts that crash at random points; the current state (FINAL, without
// tombstones) must equal the source. Sizes: CDCD_PG2CH_ROWS, CDCD_PG2CH_CHANGES.
func TestPostgresWorkloadOnCurrentEngine(t *testing.T) {
	t.Parallel()
	rows := 20_000
	if v, err := strconv.Atoi(os.Getenv("CDCD_PG2CH_ROWS")); err == nil {
		rows = v
	}
	changes := rows * 13 / 10
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d rows, %d changes", seed, rows, changes)
	rng := rand.New(rand.NewPCG(seed, 9))
	ctx := context.Background()

	pg := testenv.StartPostgres(t, testenv.WithSetting("synchronous_commit", "on"))
	dsn := pg.CreateDatabase(t, "app")
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, testenv.FillAcct(ctx, pool, rows))
	cipher, err := secrets.New(make([]byte, 32))
	require.NoError(t, err)
	meta, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"), cipher)
	require.NoError(t, err)
	defer meta.Close()
	db := testenv.StartChDB(t)

	// small batches at CI size (many crash points), larger ones at full size
	batch := max(500, rows/50)
	srcCfg := pgsrc.Config{DSN: dsn, Tables: []string{"public.acct"}, SnapshotChunkRows: 2 * batch, HeartbeatInterval: "1s", StatusInterval: "200ms"}.WithDefaults("p")
	require.NoError(t, srcCfg.Validate())
	sinkCfg := Config{Addr: []string{"chdb:0"}, Database: "replica"}.WithDefaults()
	attempt := func(ctx context.Context, crashAfter int64) error {
		epoch, err := meta.Acquire(ctx, "p")
		if err != nil {
			return err
		}
		reg, err := schema.NewRegistry(ctx, meta, "p")
		if err != nil {
			return err
		}
		src := pgsrc.New(srcCfg, sources.Deps{Pipeline: "p", Schema: reg, Progress: store.Bind(meta, "p", epoch), Epoch: uint64(epoch),
			MaxChanges: batch, MaxWait: 50 * time.Millisecond})
		snk := &crashingSink{Sink: New(sinkCfg, sinks.Deps{Pipeline: "p"}, WithBackend(chdbBackend{db}))}
		snk.left.Store(crashAfter)
		r, err := pipeline.NewRunner(pipeline.RunnerConfig{Pipeline: "p", Source: src, Sink: snk, Offsets: meta, Epoch: epoch,
			MaxChanges: batch, MaxWait: 50 * time.Millisecond, DrainTimeout: 10 * time.Second})
		if err != nil {
			return err
		}
		return r.Run(ctx)
	}

	writerDone := make(chan error, 1)
	go func() { writerDone <- testenv.WriteAcct(ctx, pool, rand.New(rand.NewPCG(seed, 10)), rows, changes) }()
	crashes, attempts := 0, 0
	for writing := true; writing || attempts < 6; attempts++ {
		// an attempt crashes after a few batches, or is stopped after a while
		// when no batch comes (the writer is done)
		actx, cancel := context.WithTimeout(ctx, time.Duration(1000+rng.IntN(2000))*time.Millisecond)
		err := attempt(actx, 1+rng.Int64N(5))
		cancel()
		if errors.Is(err, errInjected) {
			crashes++
		} else {
			require.NoError(t, err)
		}
		select {
		case err := <-writerDone:
			require.NoError(t, err)
			writing = false
		default:
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	final := make(chan error, 1)
	go func() { final <- attempt(runCtx, -1) }()

	want, err := testenv.AcctSource(ctx, pool)
	require.NoError(t, err)
	var got map[int64]string
	require.Eventually(t, func() bool {
		rows, err := db.Query(testenv.AcctClickHouseQuery("replica"))
		if err != nil {
			return false
		}
		got = map[int64]string{}
		for _, r := range rows {
			strs := make([]string, len(r))
			for i, v := range r {
				strs[i], _ = v.(string)
			}
			id, row, err := testenv.AcctClickHouseRow(strs)
			require.NoError(t, err)
			got[id] = row
		}
		if len(got) != len(want) {
			return false
		}
		for id, w := range want {
			if got[id] != w {
				return false
			}
		}
		return true
	}, 15*time.Minute, time.Second, "ClickHouse (FINAL) never equal to the source: %d rows vs %d", len(got), len(want))
	stop()
	require.NoError(t, <-final)
	t.Logf("%d crashed attempts; %d rows in ClickHouse (FINAL, current engine) equal the source", crashes, len(want))
}

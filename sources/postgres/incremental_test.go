package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAddTableToRunningPipeline: a table added to the config of a streaming
// pipeline is snapshotted chunk by chunk between watermarks while writes to it
// go on; both tables end equal to the source, and a crash in the middle of the
// table's snapshot resumes it.
func TestAddTableToRunningPipeline(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE first (id int PRIMARY KEY, v int); INSERT INTO first SELECT g, g FROM generate_series(1, 100) g;
		CREATE TABLE added (a int, b text, v int, PRIMARY KEY (a, b));
		INSERT INTO added SELECT g / 10, 'k' || (g % 10), g FROM generate_series(1, 5000) g`)
	cfg := h.config("public.first")
	stop, _ := h.start(cfg)
	h.waitSynced("public.first", "id")
	h.exec(`INSERT INTO first VALUES (101, 101)`) // past the snapshot: the pipeline is streaming
	h.waitSynced("public.first", "id")
	require.NoError(t, stop())

	// writes to the new table while its snapshot runs
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = h.pool.Exec(ctx, `UPDATE added SET v = v + 1 WHERE a = $1`, i%500)
			_, _ = h.pool.Exec(ctx, `DELETE FROM added WHERE a = $1 AND b = 'k3'`, (i*7)%500)
			_, _ = h.pool.Exec(ctx, `INSERT INTO added VALUES ($1, 'new', 0) ON CONFLICT DO NOTHING`, 1000+i)
			_, _ = h.pool.Exec(ctx, `UPDATE first SET v = v + 1 WHERE id = $1`, 1+i%100)
		}
	}()

	cfg2 := h.config("public.first", "public.added")
	stop, r := h.start(cfg2)
	// interrupt once in the middle of the added table's snapshot
	require.Eventually(t, func() bool {
		p := r.Progress()
		if p.Source == nil {
			return false
		}
		for _, tp := range p.Source.Tables {
			if tp.Table.Name == "added" && tp.RowsDone > 500 {
				return true
			}
		}
		return false
	}, 60*time.Second, time.Millisecond)
	require.NoError(t, stop())
	stop, _ = h.start(cfg2)
	defer stop()
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	h.waitSynced("public.added", "a")
	h.waitSynced("public.first", "id")
	require.NoError(t, stop())
}

// TestWatermarkWindowDropsChangedRows: a row changed after its chunk was read but
// before the high watermark must come from the stream, not from the (older) chunk.
func TestWatermarkWindowDropsChangedRows(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE one (id int PRIMARY KEY); INSERT INTO one VALUES (1);
		CREATE TABLE win (id int PRIMARY KEY, v text); INSERT INTO win SELECT g, 'old' FROM generate_series(1, 250) g`)
	stop, _ := h.start(h.config("public.one"))
	h.waitSynced("public.one", "id")
	h.exec(`INSERT INTO one VALUES (2)`) // past the snapshot: the pipeline is streaming
	h.waitSynced("public.one", "id")
	require.NoError(t, stop())
	require.Equal(t, uint64(phaseStream), h.committedPhase())

	r, src := h.runner(h.config("public.one", "public.win"))
	var n int
	src.afterChunkSelect = func(ctx context.Context) {
		n++
		// change a row of the chunk just read, and delete another
		_, err := h.pool.Exec(ctx, `UPDATE win SET v = 'changed in the window' WHERE id = $1`, (n-1)*100+50)
		require.NoError(t, err)
		_, err = h.pool.Exec(ctx, `DELETE FROM win WHERE id = $1`, (n-1)*100+60)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	h.waitSynced("public.win", "id")
	cancel()
	require.NoError(t, <-errc)
	require.GreaterOrEqual(t, n, 3, "the table was read in several chunks")
}

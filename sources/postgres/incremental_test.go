package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/sources"
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
	stop = h.run(r)
	h.waitSynced("public.win", "id")
	require.NoError(t, stop())
	require.GreaterOrEqual(t, n, 3, "the table was read in several chunks")
}

// TestChunkThatMissedAnEarlierCommitIsReadAgain: a chunk whose snapshot saw
// running a transaction that the stream read before the chunk's low
// watermark (commit order is not visibility order) is read again instead of
// emitted: emitted, its older row would overwrite that transaction's change.
func TestChunkThatMissedAnEarlierCommitIsReadAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE win (id int PRIMARY KEY, v text); INSERT INTO win SELECT g, 'old' FROM generate_series(1, 250) g`)
	cfg := h.config("public.win")
	stop, _ := h.start(cfg)
	h.waitSynced("public.win", "id")
	h.exec(`INSERT INTO win VALUES (251, 'x')`)
	h.waitSynced("public.win", "id")
	require.NoError(t, stop())

	// the table is resynced; a transaction of it committed before the first
	// chunk's low watermark is what the stream reads first
	require.NoError(t, h.progress.SaveSnapshotProgress(context.Background(), sources.SnapshotProgress{Table: schemaID("public.win"), Resync: true}))
	var xid int64
	require.NoError(t, h.pool.QueryRow(context.Background(), `UPDATE win SET v = 'new' WHERE id = 1 RETURNING txid_current()`).Scan(&xid))
	r, src := h.runner(cfg)
	var mu sync.Mutex
	reads := 0
	src.editSnapshot = func(xip []uint32) []uint32 {
		mu.Lock()
		defer mu.Unlock()
		reads++
		if reads == 1 {
			return append(xip, uint32(xid)) // as if its snapshot had not seen it yet
		}
		return xip
	}
	stop = h.run(r)
	require.Eventually(t, func() bool {
		list, _ := h.progress.LoadSnapshotProgress(context.Background())
		return len(list) == 1 && list[0].Done
	}, time.Minute, 10*time.Millisecond)
	h.waitSynced("public.win", "id")
	require.NoError(t, stop())
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 4, reads, "three chunks, the first read twice")
}

func TestParseSnapshot(t *testing.T) {
	t.Parallel()
	snap, err := parseSnapshot("4294967300:4294967310:4294967301,4294967305")
	require.NoError(t, err)
	require.Equal(t, chunkSnapshot{xip: []uint32{5, 9}, xmax: 14}, snap, "32-bit xids, as pgoutput names transactions")
	snap, err = parseSnapshot("10:10:")
	require.NoError(t, err)
	require.Empty(t, snap.xip)
	_, err = parseSnapshot("10:10")
	require.Error(t, err)
	r := &recentCommits{}
	r.add(4, 100)
	r.add(9, 300)
	r.add(20, 150)
	require.True(t, r.missed(&window{xip: []uint32{4}, xmax: 30, low: 200}), "committed before the low watermark, running for the read")
	require.False(t, r.missed(&window{xip: []uint32{9}, xmax: 30, low: 200}), "committed in the window: the stream's change wins")
	require.False(t, r.missed(&window{xip: []uint32{7}, xmax: 30, low: 200}), "not committed yet")
	require.True(t, r.missed(&window{xmax: 15, low: 200}), "committed before the low watermark, past the read's xmax")
	require.False(t, r.missed(&window{xmax: 21, low: 200}), "seen by the read")
	require.True(t, r.missed(&window{low: 0}), "no low watermark read")
	require.True(t, xidAtOrAfter(3, 0xfffffff0), "xids wrap around")
}

// TestResyncOneTableUnderWrites: a resync of one table restarts the pipeline
// while a writer changes both tables; both end equal to the source (the file
// sink keeps every change, the evidence when they do not).
func TestResyncOneTableUnderWrites(t *testing.T) {
	t.Parallel()
	h := newHarness(t, startPG(t), `CREATE TABLE acct (id bigint PRIMARY KEY, owner text, balance bigint);
		INSERT INTO acct SELECT g, 'o' || g, g FROM generate_series(1, 3000) g;
		CREATE TABLE other (id bigint PRIMARY KEY, owner text, balance bigint);
		INSERT INTO other SELECT g, 'o' || g, g FROM generate_series(1, 3000) g`)
	cfg := h.config("public.acct", "public.other")
	stop, _ := h.start(cfg)
	h.waitSynced("public.acct", "id")
	h.waitSynced("public.other", "id")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, tbl := range []string{"acct", "other"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := (i*7919)%2000 + 1
				switch i % 4 {
				case 0:
					_, _ = h.pool.Exec(ctx, "INSERT INTO "+tbl+" VALUES ($1, 'new', $1) ON CONFLICT DO NOTHING", 1_000_000+i)
				case 1:
					_, _ = h.pool.Exec(ctx, "DELETE FROM "+tbl+" WHERE id = $1", id)
				default:
					_, _ = h.pool.Exec(ctx, "UPDATE "+tbl+" SET balance = balance + 1, owner = owner || '+' WHERE id = $1", id)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, stop())
	require.NoError(t, h.progress.SaveSnapshotProgress(context.Background(), sources.SnapshotProgress{Table: schemaID("public.acct"), Resync: true}))
	stop, _ = h.start(cfg)
	defer stop()
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	h.waitSynced("public.other", "id")
	h.waitSynced("public.acct", "id")
	require.NoError(t, stop())
}

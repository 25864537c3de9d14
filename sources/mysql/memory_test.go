package mysql

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadAheadIsBounded: with the pipeline not reading (a slow sink), the
// source reads and decodes only a bounded part of the binlog ahead of it, not
// the ~700k rows go-mysql's default cache holds. Not parallel: it measures the
// process's heap.
func TestReadAheadIsBounded(t *testing.T) {
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, pad varchar(255))")
	s := r.open()
	collect(t, s, 0) // open and stream; nothing to read yet
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	const rows, per = 300_000, 10_000
	for i := 0; i < rows; i += per {
		r.exec(fmt.Sprintf("INSERT INTO types SELECT seq, REPEAT('x', 200) FROM seq_%d_to_%d", i+1, i+per))
	}
	// the binlog holds ~70 MB of row events the source could race through
	peak := uint64(0)
	for range 30 { // three seconds of samples, in this goroutine
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		require.LessOrEqual(t, ms.HeapInuse, base+48<<20, "the heap grew by more than 48 MiB while nothing was read")
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("heap in use: %d MiB before, %d MiB at most while the binlog waited", base>>20, peak>>20)
	cs, _ := collect(t, s, rows) // every row is there to read
	require.Len(t, cs, rows)
	require.Equal(t, int64(rows), cs[len(cs)-1].Key[0].Value.AsInt())
}

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// TestPostgresToBigQueryKilled runs the acct workload Postgres → BigQuery
// (bigquery-emulator) with cdcd killed mid-run (runKilledAcct).
func TestPostgresToBigQueryKilled(t *testing.T) {
	t.Parallel()
	emu := testenv.StartBigQueryEmulator(t)
	bq, err := bigquery.NewClient(context.Background(), emu.Project, option.WithEndpoint(emu.Endpoint()), option.WithoutAuthentication())
	require.NoError(t, err)
	defer bq.Close()
	runKilledAcct(t, func(string) warehouseRun {
		w := warehouseRun{
			rows: 1000,
			sink: fmt.Sprintf(`      type: bigquery
      config: {project: %s, dataset: replica, endpoint: %q, storage_endpoint: %q, no_auth: true}`, emu.Project, emu.Endpoint(), emu.GRPCAddr()),
			read: func() (map[int64]string, map[int64]bool, error) { return bigqueryAcct(bq) },
		}
		// the emulator's MERGE compares every staged row with every stored row
		// (3,000 rows into 20,000 take a minute): a smaller table and workload
		w.writes.total, w.writes.span, w.writes.pause = 20, 50, 200*time.Millisecond
		return w
	})
}

// bigqueryAcct reads the destination's acct: live rows by id, and the ids of
// soft-deleted rows.
func bigqueryAcct(bq *bigquery.Client) (map[int64]string, map[int64]bool, error) {
	it, err := bq.Query("SELECT `id`, `note`, CAST(`v` AS STRING), CAST(`amount` AS STRING), UNIX_MICROS(`at`), TO_JSON_STRING(`tags`), TO_JSON_STRING(`doc`), `_cdc_deleted` FROM `replica`.`acct`").Read(context.Background())
	if err != nil {
		return nil, nil, err
	}
	live, dels := map[int64]string{}, map[int64]bool{}
	for {
		var r []bigquery.Value
		err := it.Next(&r)
		if errors.Is(err, iterator.Done) {
			return live, dels, nil
		}
		if err != nil {
			return nil, nil, err
		}
		id := r[0].(int64)
		if r[7].(bool) {
			dels[id] = true
			continue
		}
		str := func(v bigquery.Value) *string {
			if s, ok := v.(string); ok && s != "null" {
				return &s
			}
			return nil
		}
		var at *int64
		if us, ok := r[4].(int64); ok {
			at = &us
		}
		tags := []*string{}
		if s := str(r[5]); s != nil {
			if err := json.Unmarshal([]byte(*s), &tags); err != nil {
				return nil, nil, err
			}
		}
		live[id] = testenv.AcctRow(str(r[1]), str(r[2]), str(r[3]), at, tags, str(r[6]))
	}
}

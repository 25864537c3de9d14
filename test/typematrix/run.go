package typematrix

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/offsets/memstore"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/mysql"
	"github.com/cdcd-dev/cdcd/sources/postgres"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// pipelineName is the pipeline the sink harnesses' sinks belong to.
const pipelineName = "sinktest"

// streamBase is added to a row's id for the rows the stream writes.
const streamBase = 1000

// Run runs every source's matrix into the sink the harness makes (target
// names it in Policies), each source into its own destination.
func Run(t *testing.T, target string, newHarness func(t *testing.T) sinktest.Harness) {
	if !slices.ContainsFunc(Targets, func(x struct{ Name, Destination string }) bool { return x.Name == target }) {
		t.Fatalf("target %q is not in Targets", target)
	}
	for _, src := range Sources {
		t.Run(src.Name, func(t *testing.T) {
			t.Parallel()
			// the BigQuery emulator keeps its tables in SQLite, and under load a
			// commit of its own can fail with "database is locked": a defect of
			// the stand-in (BigQuery has no such error), whose run starts over on
			// fresh servers; every other failure fails the test
			for try := 1; ; try++ {
				err := runSource(t, target, src, newHarness(t))
				if err == nil {
					return
				}
				if try < 3 && strings.Contains(err.Error(), "database is locked") {
					t.Logf("run %d: the emulator failed a write of its own; starting over: %v", try, err)
					continue
				}
				t.Fatal(err)
			}
		})
	}
}

// Sources are the sources the matrix runs, in docs order.
var Sources = []Source{Postgres, MySQL}

// server is a source database the matrix writes to.
type server struct {
	exec      func(q string) error
	newSource func(reg schema.Registry, epoch offsets.Epoch) sources.Source
	table     schema.TableID
	toast     schema.TableID // Postgres: the unchanged-TOAST table
}

// runSource runs the matrix of src into the harness's sink and checks it; it
// returns the error of a pipeline that stopped on its own.
func runSource(t *testing.T, target string, src Source, h sinktest.Harness) error {
	ctx := context.Background()
	var db server
	switch src.Name {
	case "postgres":
		db = startPostgres(t, src)
	case "mysql":
		db = startMySQL(t, src)
	}
	rows := src.Rows()
	leftOut := func(column string, cell int) bool {
		_, ok := standIn(target, src.Name, column, cell)
		return ok
	}
	insert := func(base int) {
		for i := range rows {
			require.NoError(t, db.exec(src.insert(base+i+1, i, leftOut)), "row %d", base+i+1)
		}
	}
	insert(0) // the snapshot reads these
	toastChanges := 0
	if db.toast != (schema.TableID{}) {
		for id := 1; id <= 3; id++ {
			require.NoError(t, db.exec(fmt.Sprintf("INSERT INTO toast VALUES (%d, 0, repeat(md5('%d'), 20000))", id, id)))
		}
		toastChanges = 3
	}

	metrics := prometheus.NewRegistry()
	sink := h.NewSink(t, sinktest.Options{NullUnrepresentable: true, Metrics: metrics})
	var store offsets.Store = &memstore.Store{}
	if st, ok := sink.(sinks.OffsetStorer); ok {
		store = st
	}
	epoch, err := store.Acquire(ctx, pipelineName)
	require.NoError(t, err)
	reg, err := schema.NewRegistry(ctx, &schema.MemoryVersions{}, pipelineName)
	require.NoError(t, err)
	r, err := pipeline.NewRunner(pipeline.RunnerConfig{Pipeline: pipelineName, Source: db.newSource(reg, epoch), Sink: sink,
		Offsets: store, Epoch: epoch, MaxChanges: 100, MaxWait: 20 * time.Millisecond, DrainTimeout: 30 * time.Second})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	wait := func(what string, n int) error {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for r.Progress().ChangesWritten < uint64(n) {
			select {
			case err := <-done:
				return fmt.Errorf("the pipeline stopped while %s (%d of %d changes written): %w", what, r.Progress().ChangesWritten, n, err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d changes written after 3 minutes", what, r.Progress().ChangesWritten, n)
			}
		}
		return nil
	}
	if err := wait("the snapshot was written", rows+toastChanges); err != nil {
		return err
	}
	insert(streamBase) // the stream reads these
	if toastChanges > 0 {
		for _, q := range []string{
			"UPDATE toast SET n = n + 1 WHERE id = 1",            // big unchanged
			"UPDATE toast SET id = 10 WHERE id = 2",              // big unchanged, the key moves
			"UPDATE toast SET id = 11, n = n + 1 WHERE id = 3"} { // the same, with another column
			require.NoError(t, db.exec(q))
		}
		toastChanges += 5 // an update, and two key moves (a delete and an update each)
	}
	if err := wait("the stream was written", 2*rows+toastChanges); err != nil {
		return err
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("the pipeline failed: %w", err)
	}

	var tbl, toast schema.Table
	for _, x := range reg.Tables() {
		switch x.ID {
		case db.table:
			tbl = x
		case db.toast:
			toast = x
		}
	}
	require.Equal(t, db.table, tbl.ID, "the source registered the matrix table")
	check(t, target, src, tbl, h.State(t, tbl), byColumn(t, metrics, "cdcd_sink_values_nulled_total"), byColumn(t, metrics, "cdcd_sink_values_altered_total"))
	if toastChanges > 0 {
		checkToast(t, toast, h.State(t, toast))
	}
	return nil
}

// insert is the statement that writes row index i of the matrix under id
// (NULL for a cell left out).
func (s Source) insert(id, i int, leftOut func(column string, cell int) bool) string {
	cols := []string{"id"}
	vals := []string{itoa(id)}
	for _, c := range s.Columns {
		cols = append(cols, c.Name)
		if i < len(c.Cells) && !leftOut(c.Name, i) {
			vals = append(vals, c.Cells[i].SQL)
		} else {
			vals = append(vals, "NULL")
		}
	}
	return fmt.Sprintf("INSERT INTO matrix (%s) VALUES (%s)", strings.Join(cols, ", "), strings.Join(vals, ", "))
}

// create is the matrix table's DDL.
func (s Source) create() string {
	defs := []string{"id int PRIMARY KEY"}
	for _, c := range s.Columns {
		defs = append(defs, c.Name+" "+c.Type)
	}
	return "CREATE TABLE matrix (" + strings.Join(defs, ", ") + ")"
}

func startPostgres(t *testing.T, src Source) server {
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "matrix")
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	exec := func(q string) error {
		_, err := conn.Exec(context.Background(), q)
		return err
	}
	for _, q := range append(slices.Clone(src.Setup), src.create(),
		"CREATE TABLE toast (id int PRIMARY KEY, n int, big text)", "ALTER TABLE toast ALTER COLUMN big SET STORAGE EXTERNAL") {
		require.NoError(t, exec(q), q)
	}
	cfg := postgres.Config{DSN: dsn, Tables: []string{"public.matrix", "public.toast"}, SnapshotChunkRows: 100,
		HeartbeatInterval: "1s", StatusInterval: "200ms", SlotPollInterval: "1s"}.WithDefaults(pipelineName)
	require.NoError(t, cfg.Validate())
	return server{exec: exec, table: schema.TableID{Namespace: "public", Name: "matrix"}, toast: schema.TableID{Namespace: "public", Name: "toast"},
		newSource: func(reg schema.Registry, epoch offsets.Epoch) sources.Source {
			return postgres.New(cfg, sources.Deps{Pipeline: pipelineName, Schema: reg, Progress: &sourcetest.MemProgress{},
				MaxChanges: 100, MaxWait: 20 * time.Millisecond, Epoch: uint64(epoch)})
		}}
}

func startMySQL(t *testing.T, src Source) server {
	m := testenv.StartMariaDB(t)
	conn, err := client.Connect(m.Addr(), "root", "", "")
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	exec := func(q string) error {
		_, err := conn.Execute(q)
		return err
	}
	for _, q := range append([]string{"CREATE DATABASE app CHARACTER SET utf8mb4", "USE app", "SET NAMES utf8mb4", "SET time_zone = '+00:00'",
		"SET sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"}, src.create()) {
		require.NoError(t, exec(q), q)
	}
	cfg := mysql.Config{Addr: m.Addr(), User: "root", Tables: []string{"app.matrix"}, SnapshotChunkRows: 10, HeartbeatInterval: "1s"}.WithDefaults(pipelineName)
	require.NoError(t, cfg.Validate())
	return server{exec: exec, table: schema.TableID{Namespace: "app", Name: "matrix"},
		newSource: func(reg schema.Registry, epoch offsets.Epoch) sources.Source {
			return mysql.New(cfg, sources.Deps{Pipeline: pipelineName, Schema: reg, Progress: &sourcetest.MemProgress{},
				MaxChanges: 100, MaxWait: 20 * time.Millisecond, Epoch: uint64(epoch)})
		}}
}

// byColumn sums a counter per column.
func byColumn(t *testing.T, reg *prometheus.Registry, name string) map[string]int {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]int{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "column" {
					out[l.GetValue()] += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

// PolicyFor returns the policy of a cell at a target, if any.
func PolicyFor(target, source, column string, cell int) (Policy, bool) {
	for _, p := range Policies[target] {
		if p.Source == source && p.Column == column && (p.Cell == cell || (p.Cell == AllCells && cell >= 0)) {
			return p, true
		}
	}
	return Policy{}, false
}

// standIn returns why a cell is left out on a target's stand-in, if it is.
func standIn(target, source, column string, cell int) (Policy, bool) {
	for _, p := range StandIn[target] {
		if p.Source == source && p.Column == column && (p.Cell == cell || p.Cell == AllCells) {
			return p, true
		}
	}
	return Policy{}, false
}

func key(id int) string { return fmt.Sprintf(`{"id":%d}`, id) }

// check compares every cell of both paths with what the source holds, and the
// paths with each other; a cell a policy covers must hold what the policy
// says, counted as nulled or altered.
func check(t *testing.T, target string, src Source, tbl schema.Table, got map[string]sinktest.Stored, nulled, altered map[string]int) {
	t.Helper()
	rows := src.Rows()
	var problems []string
	var discovered []string
	wantNulled, wantAltered := map[string]int{}, map[string]int{}
	for i := range rows {
		for _, c := range src.Columns {
			want := schema.Null()
			if _, out := standIn(target, src.Name, c.Name, i); i < len(c.Cells) && !out {
				want = c.Cells[i].Want
			}
			cell := i
			if want.IsNull() {
				cell = NullCells
			}
			p, policy := PolicyFor(target, src.Name, c.Name, cell)
			var paths [2]schema.Value
			for j, id := range []int{i + 1, streamBase + i + 1} {
				row, ok := got[key(id)]
				if !ok {
					problems = append(problems, fmt.Sprintf("row %d is missing", id))
					continue
				}
				v, _ := row.Row.Get(c.Name)
				paths[j] = v
				path := [2]string{"snapshot", "stream"}[j]
				switch {
				case policy:
					stored := p.stored()
					if p.Altered {
						wantAltered[c.Name]++
					} else {
						wantNulled[c.Name]++
					}
					if !Same(stored, v) {
						problems = append(problems, fmt.Sprintf("%s %s (%s) row %d: the policy says %s (%s), read back %s", path, c.Name, c.Type, id, show(stored), p.Why, show(v)))
					}
				case want.IsNull():
					if !v.IsNull() {
						problems = append(problems, fmt.Sprintf("%s %s (%s) row %d: wrote NULL, read back %s", path, c.Name, c.Type, id, show(v)))
					}
				case !Same(want, v):
					problems = append(problems, fmt.Sprintf("%s %s (%s) cell %d: the source holds %s, the destination %s", path, c.Name, c.Type, i, show(want), show(v)))
					if v.IsNull() && j == 0 {
						discovered = append(discovered, fmt.Sprintf("{Source: %q, Column: %q, Cell: %d, Why: \"\"},", src.Name, c.Name, i))
					}
				}
			}
			if !Same(paths[0], paths[1]) {
				problems = append(problems, fmt.Sprintf("%s (%s) cell %d: the snapshot's row holds %s, the stream's %s", c.Name, c.Type, i, show(paths[0]), show(paths[1])))
			}
		}
	}
	for _, c := range src.Columns {
		if nulled[c.Name] != wantNulled[c.Name] {
			problems = append(problems, fmt.Sprintf("%s: %d values counted as stored NULL by policy, %d expected", c.Name, nulled[c.Name], wantNulled[c.Name]))
		}
		if altered[c.Name] != wantAltered[c.Name] {
			problems = append(problems, fmt.Sprintf("%s: %d values counted as altered, %d expected", c.Name, altered[c.Name], wantAltered[c.Name]))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s → %s: %d problems:\n  %s", src.Name, target, len(problems), strings.Join(problems, "\n  "))
		if len(discovered) > 0 && os.Getenv("CDCD_TYPEMATRIX_DISCOVER") != "" {
			t.Logf("NULL at the destination, not in Policies[%q]:\n%s", target, strings.Join(discovered, "\n"))
		}
	}
}

// checkToast: rows updated without their big column (unchanged TOAST), with
// and without a key change, keep the value at the destination.
func checkToast(t *testing.T, tbl schema.Table, got map[string]sinktest.Stored) {
	t.Helper()
	for id, src := range map[int]int{1: 1, 10: 2, 11: 3} {
		row, ok := got[key(id)]
		require.True(t, ok, "toast row %d missing", id)
		require.False(t, row.Deleted, "toast row %d", id)
		v, _ := row.Row.Get("big")
		want := strings.Repeat(md5hex(src), 20000)
		require.True(t, v.Kind() == schema.KindString && v.Text() == want, "toast row %d: the big value was lost (%s)", id, show(v))
	}
	for _, id := range []int{2, 3} {
		if row, ok := got[key(id)]; ok {
			require.True(t, row.Deleted, "toast row %d moved to another key: it must be gone", id)
		}
	}
}

// Same is exact equality of a value written and read back: sinktest.Equal,
// and the sign of every float (so -0 stays -0).
func Same(want, got schema.Value) bool {
	if !sinktest.Equal(want, got) {
		return false
	}
	switch want.Kind() {
	case schema.KindFloat:
		return math.Signbit(want.AsFloat()) == math.Signbit(got.AsFloat())
	case schema.KindArray:
		we, ge := want.Elems(), got.Elems()
		for i := range we {
			if !Same(we[i], ge[i]) {
				return false
			}
		}
	}
	return true
}

// show renders a value for a message, long ones cut.
func show(v schema.Value) string {
	s := string(v.AppendJSON(nil))
	if v.Kind() == schema.KindUnknown {
		s = v.TypeName() + ":" + s
	}
	if len(s) > 120 {
		s = s[:100] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

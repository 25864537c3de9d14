package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/alerts"
	"github.com/cdcd-dev/cdcd/internal/config"
	"github.com/cdcd-dev/cdcd/internal/store"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/pipeline"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"github.com/stretchr/testify/require"
)

// Open returns a fresh, empty store for one subtest; the suite closes it.
type Open func(t *testing.T) store.Store

// Run runs the suite.
func Run(t *testing.T, open Open) {
	tests := map[string]func(t *testing.T, s store.Store){
		"offsets":            testOffsets,
		"offsets_concurrent": testOffsetsConcurrent,
		"schema_versions":    testSchemaVersions,
		"snapshot_progress":  testSnapshotProgress,
		"resync_requests":    testResyncRequests,
		"connections":        testConnections,
		"pipelines":          testPipelines,
		"tokens":             testTokens,
		"audit":              testAudit,
		"holds":              testHolds,
		"skipped":            testSkipped,
		"stats":              testStats,
		"events":             testEvents,
		"alerts":             testAlerts,
		"verifications":      testVerifications,
		"reopen_migrations":  func(t *testing.T, s store.Store) {}, // opening twice is covered by the caller's reopen
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			f(t, s)
		})
	}
}

func pos(n uint64) offsets.Position { return offsets.AppendUint(nil, n) }

func testOffsets(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Load(ctx, "p")
	require.ErrorIs(t, err, offsets.ErrNotFound)

	e1, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	_, err = s.Load(ctx, "p")
	require.ErrorIs(t, err, offsets.ErrNotFound, "acquiring a lease stores no position")
	require.NoError(t, s.Commit(ctx, "p", e1, pos(10)))
	require.NoError(t, s.Commit(ctx, "p", e1, pos(10)), "committing the same position again is a no-op")
	got, err := s.Load(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, pos(10), got)

	var reg *offsets.RegressionError
	require.ErrorAs(t, s.Commit(ctx, "p", e1, pos(9)), &reg, "a position never moves back")

	e2, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.Greater(t, e2, e1)
	require.ErrorIs(t, s.Commit(ctx, "p", e1, pos(11)), offsets.ErrFenced, "a stale epoch cannot commit")
	got, _ = s.Load(ctx, "p")
	require.Equal(t, pos(10), got)
	require.NoError(t, s.Commit(ctx, "p", e2, pos(11)))
	require.ErrorIs(t, s.Commit(ctx, "other", 1, pos(1)), offsets.ErrFenced, "no lease, no commit")

	_, err = s.Load(ctx, "other")
	require.ErrorIs(t, err, offsets.ErrNotFound, "pipelines are independent")
}

// testOffsetsConcurrent races a stale runner against the current one: every stale
// commit is fenced, every current one lands, and the position only grows.
func testOffsetsConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	stale, err := s.Acquire(ctx, "race")
	require.NoError(t, err)
	current, err := s.Acquire(ctx, "race")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var errs [2][]error
	for w, epoch := range []offsets.Epoch{stale, current} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				errs[w] = append(errs[w], s.Commit(ctx, "race", epoch, pos(uint64(i+1))))
			}
		}()
	}
	wg.Wait()
	for i := range 40 {
		require.ErrorIs(t, errs[0][i], offsets.ErrFenced, "stale commit %d", i)
		require.NoError(t, errs[1][i], "current commit %d", i)
	}
	got, err := s.Load(ctx, "race")
	require.NoError(t, err)
	require.Equal(t, pos(40), got)
}

func testSchemaVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	reg, err := schema.NewRegistry(ctx, s, "p")
	require.NoError(t, err)
	tbl := schema.Table{ID: schema.TableID{Namespace: "public", Name: "orders"},
		Columns:    []schema.Column{{Name: "id", Type: schema.Type{Kind: schema.KindInt, Name: "int8"}}},
		PrimaryKey: []string{"id"}}
	v1, _, err := reg.Observe(ctx, tbl, pos(1))
	require.NoError(t, err)
	tbl.Columns = append(tbl.Columns, schema.Column{Name: "amount", Type: schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: 12, Scale: 2}, Nullable: true})
	v2, d, err := reg.Observe(ctx, tbl, pos(5))
	require.NoError(t, err)
	require.Equal(t, schema.Version(2), v2.Version)
	require.Equal(t, schema.AddColumn, d.Changes[0].Op)

	// A new registry over the same store sees the same history.
	reg2, err := schema.NewRegistry(ctx, s, "p")
	require.NoError(t, err)
	got, err := reg2.At(ctx, tbl.ID, 1)
	require.NoError(t, err)
	require.True(t, got.SameShape(v1))
	got, err = reg2.At(ctx, tbl.ID, 2)
	require.NoError(t, err)
	require.Equal(t, 12, got.Columns[1].Type.Precision)
	require.NoError(t, s.SaveTableVersion(ctx, "p", schema.TableVersion{Table: v2, Pos: pos(5)}), "saving a version again is a no-op")
	all, err := s.LoadTableVersions(ctx, "p")
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, pos(5), all[1].Pos)
}

func testSnapshotProgress(t *testing.T, s store.Store) {
	ctx := context.Background()
	e, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	tid := schema.TableID{Namespace: "public", Name: "t"}
	bound := store.Bind(s, "p", e)
	require.NoError(t, bound.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: tid, RowsDone: 10, RowsEstimated: 100, State: []byte{1, 2}}))
	require.NoError(t, bound.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: tid, RowsDone: 100, RowsEstimated: 100, Done: true, State: []byte{3}}))
	got, err := bound.LoadSnapshotProgress(ctx)
	require.NoError(t, err)
	require.Equal(t, []sources.SnapshotProgress{{Table: tid, RowsDone: 100, RowsEstimated: 100, Done: true, State: []byte{3}}}, got)

	_, err = s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.ErrorIs(t, bound.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: tid, RowsDone: 1}), offsets.ErrFenced)
}

// testResyncRequests: a request marks the tables for their source (clearing
// their progress and holds); with reset the pipeline's history goes first
// while its lease epoch keeps counting; a source that starts the resync
// saves the table without the mark.
func testResyncRequests(t *testing.T, s store.Store) {
	ctx := context.Background()
	t1, t2 := schema.TableID{Namespace: "public", Name: "t1"}, schema.TableID{Namespace: "public", Name: "t2"}
	require.ErrorIs(t, s.RequestResync(ctx, "p", []schema.TableID{t1}, false), store.ErrNotFound)
	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{}`)}, nil))
	e1, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.NoError(t, s.Commit(ctx, "p", e1, pos(10)))
	bound := store.Bind(s, "p", e1)
	for _, id := range []schema.TableID{t1, t2} {
		require.NoError(t, bound.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: id, RowsDone: 5, RowsEstimated: 5, Done: true, State: []byte{7}}))
	}
	require.NoError(t, s.SaveTableVersion(ctx, "p", schema.TableVersion{Table: schema.Table{ID: t1, Version: 1}, Pos: pos(1)}))

	require.NoError(t, s.RequestResync(ctx, "p", []schema.TableID{t1}, false))
	got, err := s.LoadSnapshotProgress(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, []sources.SnapshotProgress{{Table: t1, RowsEstimated: -1, Resync: true},
		{Table: t2, RowsDone: 5, RowsEstimated: 5, Done: true, State: []byte{7}}}, got)
	p, err := s.Load(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, pos(10), p, "a table's resync keeps the pipeline's offset")
	// the source starts it
	require.NoError(t, bound.SaveSnapshotProgress(ctx, sources.SnapshotProgress{Table: t1, State: []byte{8}}))
	got, _ = s.LoadSnapshotProgress(ctx, "p")
	require.False(t, got[0].Resync)

	require.NoError(t, s.RequestResync(ctx, "p", []schema.TableID{t2}, true))
	got, _ = s.LoadSnapshotProgress(ctx, "p")
	require.Equal(t, []sources.SnapshotProgress{{Table: t2, RowsEstimated: -1, Resync: true}}, got, "a reset forgets the other tables' progress")
	_, err = s.Load(ctx, "p")
	require.ErrorIs(t, err, offsets.ErrNotFound)
	vs, err := s.LoadTableVersions(ctx, "p")
	require.NoError(t, err)
	require.Empty(t, vs)
	e2, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.Greater(t, e2, e1, "the lease epoch keeps counting")
}

func testConnections(t *testing.T, s store.Store) {
	ctx := context.Background()
	cfg := []byte(`{"dsn":"postgres://u:hunter2@db/x"}`)
	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "src", Type: "postgres", Config: cfg}))
	c, err := s.GetConnection(ctx, "src")
	require.NoError(t, err)
	require.Equal(t, cfg, c.Config)
	require.Equal(t, "postgres", c.Type)
	require.False(t, c.CreatedAt.IsZero())

	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "src", Type: "postgres", Config: []byte(`{}`)}))
	c, _ = s.GetConnection(ctx, "src")
	require.Equal(t, `{}`, string(c.Config))
	require.NoError(t, s.PutConnection(ctx, store.Connection{Name: "dst", Type: "file", Config: []byte(`{}`)}))
	all, err := s.ListConnections(ctx)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, "dst", all[0].Name)

	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{}`)}, []string{"src", "dst"}))
	err = s.DeleteConnection(ctx, "src")
	require.ErrorIs(t, err, store.ErrConflict)
	require.ErrorContains(t, err, "used by pipelines p")
	require.NoError(t, s.DeletePipeline(ctx, "p"))
	require.NoError(t, s.DeleteConnection(ctx, "src"))
	_, err = s.GetConnection(ctx, "src")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteConnection(ctx, "src"), store.ErrNotFound)
}

func testPipelines(t *testing.T, s store.Store) {
	ctx := context.Background()
	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "orders", Spec: []byte(`{"a":1}`)}, nil))
	p, err := s.GetPipeline(ctx, "orders")
	require.NoError(t, err)
	require.Equal(t, int64(1), p.Generation)
	require.Equal(t, "created", p.State)
	require.False(t, p.Paused)

	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "orders", Spec: []byte(`{"a":1}`)}, nil))
	p, _ = s.GetPipeline(ctx, "orders")
	require.Equal(t, int64(1), p.Generation, "the same spec is not a new generation")
	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "orders", Spec: []byte(`{"a":2}`)}, nil))
	p, _ = s.GetPipeline(ctx, "orders")
	require.Equal(t, int64(2), p.Generation)

	require.NoError(t, s.SetPipelinePaused(ctx, "orders", true))
	require.NoError(t, s.SavePipelineState(ctx, "orders", "failed", "boom"))
	p, _ = s.GetPipeline(ctx, "orders")
	require.True(t, p.Paused)
	require.Equal(t, "failed", p.State)
	require.Equal(t, "boom", p.LastError)
	require.ErrorIs(t, s.SetPipelinePaused(ctx, "nope", true), store.ErrNotFound)

	e, _ := s.Acquire(ctx, "orders")
	require.NoError(t, s.Commit(ctx, "orders", e, pos(3)))
	list, err := s.ListPipelines(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)

	require.NoError(t, s.DeletePipeline(ctx, "orders"))
	_, err = s.GetPipeline(ctx, "orders")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.Load(ctx, "orders")
	require.ErrorIs(t, err, offsets.ErrNotFound, "deleting a pipeline deletes its offset")
	require.ErrorIs(t, s.DeletePipeline(ctx, "orders"), store.ErrNotFound)
}

func testTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	has, err := s.HasTokens(ctx)
	require.NoError(t, err)
	require.False(t, has)
	plain, tok, err := s.CreateToken(ctx, store.TokenSpec{Name: "ci", Role: store.RoleEditor})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(plain, store.TokenPrefix))
	require.Equal(t, store.RoleEditor, tok.Role)
	has, _ = s.HasTokens(ctx)
	require.True(t, has)

	got, err := s.VerifyToken(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, tok.ID, got.ID)
	require.Equal(t, store.RoleEditor, got.Role)
	require.False(t, got.LastUsedAt.IsZero())
	_, err = s.VerifyToken(ctx, plain+"x")
	require.ErrorIs(t, err, store.ErrNotFound)

	// expiry
	past, _, err := s.CreateToken(ctx, store.TokenSpec{Name: "old", Role: store.RoleViewer, ExpiresAt: time.Now().Add(-time.Second)})
	require.NoError(t, err)
	_, err = s.VerifyToken(ctx, past)
	require.ErrorIs(t, err, store.ErrTokenExpired)
	future, ft, err := s.CreateToken(ctx, store.TokenSpec{Name: "new", Role: store.RoleAdmin, ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	_, err = s.VerifyToken(ctx, future)
	require.NoError(t, err)
	g, err := s.GetToken(ctx, ft.ID)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), g.ExpiresAt, time.Minute)

	// names are printable; roles are known
	for _, bad := range []store.TokenSpec{{Name: "a\x1b[31mred", Role: store.RoleAdmin}, {Name: "two\nlines", Role: store.RoleAdmin}, {Name: "", Role: store.RoleAdmin}, {Name: "x", Role: "root"}} {
		_, _, err := s.CreateToken(ctx, bad)
		require.Error(t, err, "%q", bad.Name)
	}

	list, err := s.ListTokens(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, "ci", list[0].Name)
	require.NoError(t, s.DeleteToken(ctx, tok.ID))
	_, err = s.VerifyToken(ctx, plain)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteToken(ctx, tok.ID), store.ErrNotFound)
	_, err = s.GetToken(ctx, tok.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testAudit(t *testing.T, s store.Store) {
	ctx := context.Background()
	list, err := s.ListAudit(ctx, store.AuditQuery{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, list)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	for i := range 5 {
		require.NoError(t, s.RecordAudit(ctx, store.AuditEntry{At: t0.Add(time.Duration(i) * time.Minute), TokenID: "abc", TokenName: "ci",
			Action: "POST /api/v1/pipelines/{name}/pause", Target: fmt.Sprintf("pipeline p%d", i), Status: 200, Remote: "127.0.0.1:5555"}))
	}
	require.NoError(t, s.RecordAudit(ctx, store.AuditEntry{At: t0.Add(-500 * 24 * time.Hour), Action: "old", Status: 200}))
	require.NoError(t, s.RecordAudit(ctx, store.AuditEntry{At: t0.Add(10 * time.Minute), Action: "DELETE /api/v1/tokens/{id}", Target: "token x",
		Status: 409, Error: strings.Repeat("e", 5000)}))
	list, err = s.ListAudit(ctx, store.AuditQuery{Limit: 3})
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, 409, list[0].Status)
	require.Less(t, len(list[0].Error), 1100, "errors are cut")
	require.Equal(t, "pipeline p4", list[1].Target)
	require.Equal(t, t0.Add(4*time.Minute), list[1].At)
	require.Equal(t, "127.0.0.1:5555", list[1].Remote)
	list, err = s.ListAudit(ctx, store.AuditQuery{Limit: 100, Before: list[2].At})
	require.NoError(t, err)
	require.Len(t, list, 3, "pages go back in time; entries past the retention are gone")
	require.Equal(t, "pipeline p2", list[0].Target)
}

func testHolds(t *testing.T, s store.Store) {
	ctx := context.Background()
	tbl := schema.TableID{Namespace: "public", Name: "users"}
	e1, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	b := store.BindHolds(s, "p", e1)
	h := pipeline.Hold{Table: tbl, Status: pipeline.HoldPending, Reason: "column mail was renamed to email",
		Proposed: schema.Delta{Table: schema.Table{ID: tbl, Version: 2}, From: 1}, DDL: []string{`ALTER TABLE "public"."users" RENAME COLUMN "mail" TO "email"`}, Since: pos(5)}
	ch := func(n uint64) pipeline.HeldEntry {
		c := schema.Change{Op: schema.OpUpdate, Table: tbl, Pos: pos(n), After: schema.Row{{Name: "email", Value: schema.String("a@b.c")}}}
		return pipeline.HeldEntry{Table: tbl, Key: append(pos(n), 1), Change: &c}
	}
	d := h.Proposed
	entries := []pipeline.HeldEntry{{Table: tbl, Key: append(pos(5), 0), Delta: &d}, ch(5), ch(6)}
	require.NoError(t, b.Spool(ctx, []pipeline.Hold{h}, entries, nil, pos(6)))
	// a replay after a crash appends only what is new
	require.NoError(t, b.Spool(ctx, nil, []pipeline.HeldEntry{ch(6), ch(7)}, nil, pos(7)))

	list, err := s.ListHolds(ctx, "p")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, pipeline.HoldPending, list[0].Status)
	require.Equal(t, h.Reason, list[0].Reason)
	require.Equal(t, h.DDL, list[0].DDL)
	require.Equal(t, int64(3), list[0].Held)
	require.Equal(t, pos(7), list[0].Watermark)

	got, err := b.ReadHeld(ctx, tbl, 0, 10)
	require.NoError(t, err)
	require.Len(t, got, 4)
	require.NotNil(t, got[0].Delta)
	for i, want := range []uint64{5, 6, 7} {
		require.Equal(t, pos(want), got[i+1].Change.Pos)
		v, _ := got[i+1].Change.After.Get("email")
		require.Equal(t, "a@b.c", v.Text())
	}
	page, err := b.ReadHeld(ctx, tbl, got[1].Seq, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{got[2].Seq, got[3].Seq}, []int64{page[0].Seq, page[1].Seq})

	// the user decides; a stale run can no longer write
	require.NoError(t, s.ResolveHold(ctx, "p", tbl, pipeline.HoldApproved))
	require.ErrorIs(t, s.ResolveHold(ctx, "p", schema.TableID{Name: "nope"}, pipeline.HoldApproved), store.ErrNotFound)
	e2, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.ErrorIs(t, b.MarkDrained(ctx, tbl, 2), offsets.ErrFenced)
	b = store.BindHolds(s, "p", e2)
	require.NoError(t, b.MarkDrained(ctx, tbl, 2))
	list, err = s.ListHolds(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, pipeline.HoldApproved, list[0].Status)
	require.Equal(t, int64(2), list[0].Drained)
	require.False(t, list[0].ResolvedAt.IsZero())

	// rejected holds stay, their changes go
	require.NoError(t, b.FinishHold(ctx, tbl, true))
	got, err = b.ReadHeld(ctx, tbl, 0, 10)
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, b.Spool(ctx, nil, nil, map[schema.TableID]int64{tbl: 4}, nil))
	list, err = s.ListHolds(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, int64(4), list[0].Dropped)
	require.NoError(t, b.FinishHold(ctx, tbl, false))
	list, err = s.ListHolds(ctx, "p")
	require.NoError(t, err)
	require.Empty(t, list)
}

func testSkipped(t *testing.T, s store.Store) {
	ctx := context.Background()
	e, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	b := store.BindHolds(s, "p", e)
	tbl := schema.TableID{Namespace: "public", Name: "t"}
	require.NoError(t, b.RecordSkipped(ctx, []transforms.Skipped{{Table: tbl, Pos: pos(1), Transform: "cast", Error: "a"}, {Table: tbl, Pos: pos(2), Transform: "cast", Error: "b"}}))
	require.NoError(t, b.RecordSkipped(ctx, []transforms.Skipped{{Table: tbl, Pos: pos(3), Transform: "cast", Error: "c"}}))
	list, err := s.ListSkipped(ctx, "p", 2)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "c", list[0].Error, "newest first")
	require.Equal(t, offsets.Position(pos(2)), list[1].Pos)
	_, err = s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.ErrorIs(t, b.RecordSkipped(ctx, []transforms.Skipped{{Table: tbl, Transform: "x", Error: "y"}}), offsets.ErrFenced)
}

func testStats(t *testing.T, s store.Store) {
	ctx := context.Background()
	e1, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	b := store.BindStats(s, "p", e1)
	st, err := b.LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, pipeline.Stats{}, st, "nothing saved: zero counts")
	at := time.Date(2026, 5, 1, 10, 0, 0, 123456000, time.UTC)
	want := pipeline.Stats{AsOf: pos(7), Written: 42, Tables: map[string]*pipeline.TableStats{
		"public.users": {SnapshotRows: 10, Inserts: 20, Updates: 5, Deletes: 1, LastChange: at, LastWritten: at.Add(time.Second)}}}
	require.NoError(t, b.SaveStats(ctx, want))
	want.Written = 43
	require.NoError(t, b.SaveStats(ctx, want), "saved again: replaced")
	st, err = b.LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, want, st)

	e2, err := s.Acquire(ctx, "p")
	require.NoError(t, err)
	require.ErrorIs(t, b.SaveStats(ctx, pipeline.Stats{Written: 1}), offsets.ErrFenced, "a stale run cannot overwrite the counts")
	st, err = store.BindStats(s, "p", e2).LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(43), st.Written)

	// with the offsets: the counts are written by the commit, in its transaction
	both := store.BindOffsetsAndStats(s, "p", e2)
	require.NoError(t, both.SaveStats(ctx, pipeline.Stats{AsOf: pos(9), Written: 50}))
	st, err = both.LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(43), st.Written, "not before the commit")
	require.NoError(t, both.Commit(ctx, "p", e2, pos(9)))
	st, err = both.LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(50), st.Written)
	p, err := s.Load(ctx, "p")
	require.NoError(t, err)
	require.Equal(t, pos(9), p)
	stale := store.BindOffsetsAndStats(s, "p", e1)
	require.NoError(t, stale.SaveStats(ctx, pipeline.Stats{AsOf: pos(10), Written: 99}))
	require.ErrorIs(t, stale.Commit(ctx, "p", e1, pos(10)), offsets.ErrFenced)
	st, err = both.LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(50), st.Written, "a fenced commit writes neither")

	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{}`)}, nil))
	require.NoError(t, s.DeletePipeline(ctx, "p"))
	st, err = store.BindStats(s, "p", e2).LoadStats(ctx)
	require.NoError(t, err)
	require.Equal(t, pipeline.Stats{}, st, "deleting the pipeline deletes its counts")
}

func testEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	log := store.Events(s)
	at := time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC)
	for i := range 5 {
		e, err := log.AppendEvent(ctx, pipeline.Event{Pipeline: "p", At: at.Add(time.Duration(i) * time.Second), Kind: pipeline.EventState,
			Level: pipeline.LevelInfo, Message: fmt.Sprintf("event %d", i)})
		require.NoError(t, err)
		require.Equal(t, int64(i+1), e.Seq)
	}
	_, err := log.AppendEvent(ctx, pipeline.Event{Pipeline: "q", Kind: pipeline.EventSnapshot, Level: pipeline.LevelWarning, Table: "public.t", Message: "other"})
	require.NoError(t, err)
	list, err := log.ListEvents(ctx, "p", 0, 100)
	require.NoError(t, err)
	require.Len(t, list, 5)
	require.Equal(t, pipeline.Event{Seq: 1, Pipeline: "p", At: at.Truncate(time.Microsecond), Kind: pipeline.EventState, Level: pipeline.LevelInfo, Message: "event 0"}, list[0])
	list, err = log.ListEvents(ctx, "p", 3, 1)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "event 3", list[0].Message, "after a sequence number, oldest first, limited")
	list, err = log.ListEvents(ctx, "q", 0, 10)
	require.NoError(t, err)
	require.Equal(t, "public.t", list[0].Table)

	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{}`)}, nil))
	require.NoError(t, s.DeletePipeline(ctx, "p"))
	list, err = log.ListEvents(ctx, "p", 0, 100)
	require.NoError(t, err)
	require.Empty(t, list, "deleting the pipeline deletes its events")
}

func testVerifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	log := store.Verifications(s)
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range store.VerificationRetention + 5 {
		require.NoError(t, log.SaveVerification(ctx, "p", store.Verification{At: at.Add(time.Duration(i) * time.Minute), Report: []byte(fmt.Sprintf(`{"n": %d}`, i))}))
	}
	// a report saved again (with its repair) replaces the first
	last := at.Add(time.Duration(store.VerificationRetention+4) * time.Minute)
	require.NoError(t, log.SaveVerification(ctx, "p", store.Verification{At: last, Report: []byte(`{"n": "again"}`)}))
	require.NoError(t, log.SaveVerification(ctx, "q", store.Verification{At: at, Report: []byte(`{}`)}))
	list, err := log.ListVerifications(ctx, "p", 1000)
	require.NoError(t, err)
	require.Len(t, list, store.VerificationRetention, "the newest are kept")
	require.Equal(t, last, list[0].At)
	require.JSONEq(t, `{"n": "again"}`, string(list[0].Report))
	require.Equal(t, at.Add(5*time.Minute), list[len(list)-1].At)

	require.NoError(t, s.PutPipeline(ctx, store.Pipeline{Name: "p", Spec: []byte(`{}`)}, nil))
	require.NoError(t, s.DeletePipeline(ctx, "p"))
	list, err = log.ListVerifications(ctx, "p", 10)
	require.NoError(t, err)
	require.Empty(t, list, "deleting the pipeline deletes its reports")
	list, err = log.ListVerifications(ctx, "q", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testAlerts(t *testing.T, s store.Store) {
	ctx := context.Background()
	as := store.Alerts(s)
	a, err := as.LoadAlertRules(ctx)
	require.NoError(t, err)
	require.Empty(t, a.Rules)
	want := config.Alerts{EvaluationInterval: config.Duration(30 * time.Second), Rules: []config.AlertRule{{Name: "lag", Condition: "lag_seconds",
		Threshold: 300, For: config.Duration(5 * time.Minute), Channels: []string{"ops"}, Pipelines: []string{"orders"}, Severity: "critical"}}}
	require.NoError(t, as.SaveAlertRules(ctx, want))
	a, err = as.LoadAlertRules(ctx)
	require.NoError(t, err)
	require.Equal(t, want, a)

	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	firing := []alerts.Active{{Rule: "lag", Pipeline: "orders", State: "firing", Since: since, FiredAt: since, Value: "400s", Channels: []string{"ops"}}}
	require.NoError(t, as.SaveFiring(ctx, firing))
	got, err := as.LoadFiring(ctx)
	require.NoError(t, err)
	require.Equal(t, firing, got)
	require.NoError(t, as.SaveFiring(ctx, nil))
	got, err = as.LoadFiring(ctx)
	require.NoError(t, err)
	require.Empty(t, got)

	for i := range 3 {
		require.NoError(t, as.AppendAlertHistory(ctx, alerts.HistoryEntry{At: since.Add(time.Duration(i) * time.Minute), Rule: "lag", Pipeline: "orders",
			Status: notify.Firing, Channel: "ops", Delivered: i != 1, Attempts: i + 1, Error: map[bool]string{true: "502"}[i == 1], Summary: "s"}))
	}
	h, err := as.ListAlertHistory(ctx, 2)
	require.NoError(t, err)
	require.Len(t, h, 2)
	require.Equal(t, 3, h[0].Attempts, "newest first")
	require.False(t, h[1].Delivered)
	require.Equal(t, "502", h[1].Error)
}

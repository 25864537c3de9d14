package mysql

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/stretchr/testify/require"
)

// TestDDLMidStream changes the table between rows (a column added in the
// middle, one dropped, one retyped) while rows are written before and after:
// every row is decoded with the columns in force at its position.
func TestDDLMidStream(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, a int, b varchar(10), c int)")
	s := r.open()
	r.exec("INSERT INTO types VALUES (1, 10, 'x', 100)")
	r.exec("ALTER TABLE types ADD COLUMN m int AFTER a") // in the middle
	r.exec("INSERT INTO types VALUES (2, 20, 21, 'y', 200)")
	r.exec("ALTER TABLE types DROP COLUMN c")
	r.exec("INSERT INTO types VALUES (3, 30, 31, 'z')")
	r.exec("ALTER TABLE types MODIFY COLUMN a bigint")
	r.exec("INSERT INTO types VALUES (4, 40000000000, 41, 'w')")
	r.exec("UPDATE types SET b = 'v' WHERE id = 1")
	cs, ds := collect(t, s, 5)
	row := func(i int) string { return string(cs[i].After.AppendJSON(nil)) }
	require.Equal(t, `{"id":1,"a":10,"b":"x","c":100}`, row(0))
	require.Equal(t, `{"id":2,"a":20,"m":21,"b":"y","c":200}`, row(1))
	require.Equal(t, `{"id":3,"a":30,"m":31,"b":"z"}`, row(2))
	require.Equal(t, `{"id":4,"a":40000000000,"m":41,"b":"w"}`, row(3))
	require.Equal(t, `{"id":1,"a":10,"m":null,"b":"v"}`, row(4))
	require.Equal(t, []string{"create_table", "add_column m", "drop_column c", "alter_column_type a→a"}, steps(ds))
	for i := 1; i < len(cs); i++ {
		require.Greater(t, cs[i].Version, schema.Version(0))
	}
	require.Less(t, cs[0].Version, cs[1].Version)
}

// TestRestartAnnouncesTables: a run that registered the tables' shapes and then
// died before the batches carrying their deltas reached the sink (cdcd killed
// mid-snapshot) is followed by a run that must say again what its rows are
// encoded with, or a sink would be handed rows of a table it never created.
// The binlog moves on in between, so the new run sees the shapes at other
// positions than the ones they were recorded at.
func TestRestartAnnouncesTables(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, v int)", "CREATE TABLE pairs (id int PRIMARY KEY, w int)",
		"CREATE TABLE other (id int PRIMARY KEY)")
	for i := range 25 {
		r.exec("INSERT INTO types VALUES (?, ?)", i, i)
		r.exec("INSERT INTO pairs VALUES (?, ?)", i, i)
	}
	r.cfg.Tables = []string{"app.types", "app.pairs"}
	require.NoError(t, r.cfg.Validate())
	readBoth := func(s *Source) (announced map[schema.TableID]schema.Version) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		announced = map[schema.TableID]schema.Version{}
		seen := map[schema.TableID]bool{}
		for len(seen) < 2 {
			b, err := s.Read(ctx)
			require.NoError(t, err)
			for _, d := range b.Deltas {
				announced[d.Table.ID] = d.Table.Version
			}
			for _, c := range b.Changes {
				v, ok := announced[c.Table]
				require.True(t, ok && v == c.Version, "a change of %s version %d before this run announced that version", c.Table, c.Version)
				seen[c.Table] = true
			}
		}
		return announced
	}
	s1 := r.open()
	first := readBoth(s1)
	require.Len(t, first, 2)
	require.NoError(t, s1.Close(context.Background()))
	r.exec("INSERT INTO other VALUES (1)") // the binlog moves on; nothing was acknowledged

	reg, err := schema.NewRegistry(context.Background(), r.versions, "rig")
	require.NoError(t, err)
	s2 := New(r.cfg, sources.Deps{Pipeline: "rig", Schema: reg, Progress: r.prog, MaxChanges: 100, Epoch: 2})
	require.NoError(t, s2.Open(context.Background(), nil))
	defer s2.Close(context.Background())
	require.Equal(t, first, readBoth(s2), "the same versions, announced again")
}

// TestPurgedBinlogNeedsResync: a checkpoint in a purged binlog is a resync,
// with a message that says so.
func TestPurgedBinlogNeedsResync(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY)")
	r.cfg.Snapshot = "never"
	s := r.open()
	r.exec("INSERT INTO types VALUES (1)")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ckpt offsets.Position
	for ckpt == nil {
		b, err := s.Read(ctx)
		require.NoError(t, err)
		if len(b.Changes) > 0 {
			ckpt = b.Checkpoint
		}
	}
	require.NoError(t, s.Close(ctx))
	r.exec("INSERT INTO types VALUES (2)") // history after the checkpoint, about to be purged
	res, err := r.conn.Execute("SHOW MASTER STATUS")
	require.NoError(t, err)
	cur, _ := res.GetString(0, 0)
	r.exec("FLUSH BINARY LOGS")
	r.exec("FLUSH BINARY LOGS")
	res, err = r.conn.Execute("SHOW MASTER STATUS")
	require.NoError(t, err)
	newest, _ := res.GetString(0, 0)
	// the server keeps a binlog a dump thread still reads: retry until ours is gone
	require.Eventually(t, func() bool {
		r.exec("PURGE BINARY LOGS TO '" + newest + "'") // test-made name, not row data
		res, err := r.conn.Execute("SHOW BINARY LOGS")
		require.NoError(t, err)
		first, _ := res.GetString(0, 0)
		return first != cur
	}, 20*time.Second, 200*time.Millisecond, "the checkpoint's binlog was never purged")

	s2 := New(r.cfg, sources.Deps{Pipeline: "rig", Schema: r.reg, Progress: r.prog, MaxChanges: 100, Epoch: 3})
	err = s2.Open(ctx, ckpt)
	if err == nil {
		defer s2.Close(ctx)
		_, err = s2.Read(ctx)
	}
	require.Error(t, err)
	require.True(t, component.NeedsResync(err), "%v", err)
	require.ErrorContains(t, err, "resync")
}

// TestCheckListsEveryProblem breaks the server's settings and the table, and
// expects each problem named with what to change.
func TestCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY)", "CREATE TABLE nokey (v int)")
	require.NoError(t, New(r.cfg, sources.Deps{}).Check(context.Background()))
	r.exec("SET GLOBAL binlog_format = 'STATEMENT'")
	r.exec("SET GLOBAL binlog_row_image = 'MINIMAL'")
	r.exec("SET GLOBAL binlog_row_metadata = 'MINIMAL'")
	c := r.cfg
	c.Tables = []string{"app.types", "app.nokey", "app.missing"}
	c.ServerID = 1 // the server's own
	require.NoError(t, c.Validate())
	err := New(c, sources.Deps{}).Check(context.Background())
	for _, want := range []string{"binlog_format", "binlog_row_image", "binlog_row_metadata", "server_id 1", "app.nokey has no primary key", "app.missing does not exist"} {
		require.ErrorContains(t, err, want)
	}
	s := New(c, sources.Deps{Pipeline: "x", Schema: r.reg, Progress: &sourcetest.MemProgress{}})
	err = s.Open(context.Background(), nil)
	require.True(t, component.IsPermanent(err), "Open refuses the same problems: %v", err)
}

// TestRenamesFromDDL: a column rename (RENAME COLUMN, CHANGE) arrives as a
// RenameColumn delta, not a drop and an add; TRUNCATE follows the policy.
func TestRenamesFromDDL(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, a int, b int)")
	s := r.open()
	r.exec("INSERT INTO types VALUES (1, 1, 1)")
	r.exec("ALTER TABLE types RENAME COLUMN a TO a2")
	r.exec("INSERT INTO types VALUES (2, 2, 2)")
	r.exec("ALTER TABLE app.types CHANGE COLUMN b b2 bigint")
	r.exec("INSERT INTO types VALUES (3, 3, 3)")
	r.exec("TRUNCATE TABLE types")
	r.exec("INSERT INTO types VALUES (4, 4, 4)")
	cs, ds := collect(t, s, 5)
	require.Equal(t, []string{"create_table", "rename_column a→a2", "rename_column b→b2", "alter_column_type b2→b2"}, steps(ds))
	require.Equal(t, schema.OpTruncate, cs[3].Op)
	require.Equal(t, `{"id":4,"a2":4,"b2":4}`, string(cs[4].After.AppendJSON(nil)))
}

func TestDDLDisagreementHalts(t *testing.T) {
	t.Parallel()
	p := parser.New()
	eff, err := parseDDL(p, "ALTER TABLE t ADD COLUMN c int, DROP COLUMN d", "app")
	require.NoError(t, err)
	e := eff.expect[schema.TableID{Namespace: "app", Name: "t"}]
	require.NotNil(t, e)
	tbl := schema.Table{ID: schema.TableID{Namespace: "app", Name: "t"}, Columns: []schema.Column{{Name: "id"}, {Name: "d"}}}
	err = e.apply(&schema.Delta{Table: tbl})
	require.ErrorContains(t, err, "added column c is missing")
	require.ErrorContains(t, err, "dropped column d is still there")
	require.ErrorContains(t, err, "columns now: id, d")

	eff, err = parseDDL(p, "RENAME TABLE a TO b, other.x TO other.y; DROP TABLE app.gone; TRUNCATE app.t", "app")
	require.NoError(t, err)
	require.Equal(t, schema.TableID{Namespace: "app", Name: "b"}, eff.renamed[schema.TableID{Namespace: "app", Name: "a"}])
	require.Equal(t, []schema.TableID{{Namespace: "app", Name: "gone"}}, eff.dropped)
	require.Equal(t, []schema.TableID{{Namespace: "app", Name: "t"}}, eff.truncate)
}

// TestDropAndRenameTable: dropping or renaming a replicated table away is a
// DropTable delta; a table created again under the name continues its history
// (its columns as deltas from the last shape the name had).
func TestDropAndRenameTable(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, a int)")
	s := r.open()
	r.exec("INSERT INTO types VALUES (1, 1)")
	r.exec("RENAME TABLE types TO types_old")
	r.exec("CREATE TABLE types (id int PRIMARY KEY, b varchar(5))")
	r.exec("INSERT INTO types VALUES (2, 'x')")
	r.exec("DROP TABLE types")
	r.exec("CREATE TABLE types (id int PRIMARY KEY, b varchar(5))")
	r.exec("INSERT INTO types VALUES (3, 'y')")
	cs, ds := collect(t, s, 3)
	require.Equal(t, []string{"create_table", "drop_table", "drop_column a", "add_column b", "drop_table"}, steps(ds))
	require.Equal(t, `{"id":3,"b":"y"}`, string(cs[2].After.AppendJSON(nil)))
}

// TestStaleConnection: a server that goes silent (frozen, like a partition) is
// noticed after three heartbeat periods and reported as a retryable error.
func TestStaleConnection(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY)")
	s := r.open()
	r.exec("INSERT INTO types VALUES (1)")
	collect(t, s, 1)
	r.m.Freeze()
	defer r.m.Thaw()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, err = s.Read(ctx)
	}
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the silent connection was never noticed")
	require.False(t, component.IsPermanent(err), "%v", err)
	require.Less(t, time.Since(start), 15*time.Second)
	t.Logf("noticed after %v: %v", time.Since(start).Round(100*time.Millisecond), err)
}

// steps renders the deltas' steps: "op", "op column" or "op old→new".
func steps(ds []schema.Delta) []string {
	var out []string
	for _, d := range ds {
		for _, c := range d.Changes {
			switch {
			case c.Old != nil:
				out = append(out, fmt.Sprintf("%s %s→%s", c.Op, c.Old.Name, c.Column.Name))
			case c.Column.Name != "":
				out = append(out, fmt.Sprintf("%s %s", c.Op, c.Column.Name))
			default:
				out = append(out, c.Op.String())
			}
		}
	}
	return out
}

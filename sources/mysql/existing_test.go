package mysql

import (
	"context"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/offsets"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/stretchr/testify/require"
)

// addColumnsDDL adds columns of many types whose rows already there get a value
// the binlog never carries: DEFAULT literals and NOT NULL implicit defaults,
// plus ones cdcd cannot know.
const addColumnsDDL = `ALTER TABLE types
	ADD COLUMN c_int int NOT NULL DEFAULT -5, ADD COLUMN c_uint int unsigned DEFAULT 4000000000,
	ADD COLUMN c_big bigint DEFAULT 9223372036854775807, ADD COLUMN c_tiny tinyint DEFAULT TRUE,
	ADD COLUMN c_dec decimal(10,3) DEFAULT 1.5, ADD COLUMN c_dec0 decimal(5,0) DEFAULT -0, ADD COLUMN c_decs decimal(6,2) DEFAULT '-12.3',
	ADD COLUMN c_float float DEFAULT 1.1, ADD COLUMN c_double double DEFAULT 1e-300,
	ADD COLUMN c_char char(5) DEFAULT 'ab', ADD COLUMN c_vc varchar(20) DEFAULT 'it''s \\ ✓', ADD COLUMN c_vcnum varchar(8) DEFAULT 42,
	ADD COLUMN c_text text DEFAULT 'long', ADD COLUMN c_bin binary(4) DEFAULT 'a', ADD COLUMN c_vb varbinary(4) DEFAULT x'00ff',
	ADD COLUMN c_enum enum('Small','Big') DEFAULT 'big', ADD COLUMN c_set set('a','b','c') DEFAULT 'c,a',
	ADD COLUMN c_date date DEFAULT '2020-02-29', ADD COLUMN c_dt datetime(6) DEFAULT '2020-01-02 03:04:05.123456',
	ADD COLUMN c_time time DEFAULT '-12:00:00', ADD COLUMN c_time2 time(3) DEFAULT '01:02:03.5', ADD COLUMN c_year year DEFAULT 2024,
	ADD COLUMN c_bit bit(8) DEFAULT b'101', ADD COLUMN c_json json DEFAULT '{"a": [1, 2]}',
	ADD COLUMN n_int int NOT NULL, ADD COLUMN n_uint bigint unsigned NOT NULL, ADD COLUMN n_vc varchar(3) NOT NULL,
	ADD COLUMN n_enum enum('x','y') NOT NULL, ADD COLUMN n_set set('p','q') NOT NULL, ADD COLUMN n_dec decimal(4,2) NOT NULL,
	ADD COLUMN n_bin binary(2) NOT NULL, ADD COLUMN n_vb varbinary(2) NOT NULL, ADD COLUMN n_time time NOT NULL, ADD COLUMN n_float double NOT NULL,
	ADD COLUMN z_null int, ADD COLUMN z_defnull varchar(5) DEFAULT NULL,
	ADD COLUMN u_ts timestamp NULL DEFAULT CURRENT_TIMESTAMP, ADD COLUMN u_tslit timestamp NULL DEFAULT '2020-01-01 00:00:00',
	ADD COLUMN u_expr varchar(40) DEFAULT (uuid()), ADD COLUMN u_round decimal(4,1) DEFAULT 1.25`

// TestAddColumnDefaults checks the value each added column's older rows hold
// against the server itself: an UPDATE of an older row after the ALTER makes
// the binlog carry that row's values of the new columns, which must equal what
// cdcd derived from the DDL. Columns cdcd cannot know say why.
func TestAddColumnDefaults(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, v int)", "INSERT INTO types VALUES (1, 1)")
	s := r.open()
	collect(t, s, 1) // the snapshot
	r.exec(addColumnsDDL)
	r.exec("UPDATE types SET v = 2 WHERE id = 1")
	cs, ds := collect(t, s, 1)
	checkFills(t, ds, cs[0].After)
}

func checkFills(t *testing.T, ds []schema.Delta, row schema.Row) {
	t.Helper()
	var d *schema.Delta
	for i := range ds {
		if len(ds[i].Changes) > 0 && ds[i].Changes[0].Op == schema.AddColumn {
			d = &ds[i]
		}
	}
	require.NotNil(t, d, "a delta adds the columns")
	require.NotNil(t, d.Pos)
	known := 0
	for _, c := range d.Changes {
		require.Equal(t, schema.AddColumn, c.Op)
		got, _ := row.Get(c.Column.Name)
		e := c.Column.Existing
		switch c.Column.Name[0] {
		case 'u':
			require.NotNil(t, e, c.Column.Name)
			require.NotEmpty(t, e.Unknown, "%s: cdcd cannot know it", c.Column.Name)
		case 'z':
			require.Nil(t, e, c.Column.Name)
			require.True(t, got.IsNull())
		default:
			require.True(t, e.Known(), "%s: %+v", c.Column.Name, e)
			require.True(t, sinktest.Equal(got, e.Value), "%s: the server holds %s in the older row, cdcd derived %s", c.Column.Name, got.AppendJSON(nil), e.Value.AppendJSON(nil))
			known++
		}
	}
	require.Equal(t, 34, known)
}

// TestAddColumnDefaultsAcrossRestart: a run that stops after the ALTER's
// checkpoint and before the table's next row leaves the next run only the
// checkpoint; the columns' values for the older rows ride in it.
func TestAddColumnDefaultsAcrossRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, v int)", "INSERT INTO types VALUES (1, 1)")
	s := r.open()
	collect(t, s, 1)
	r.exec(addColumnsDDL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ck offsets.Position
	for ck == nil {
		b, err := s.Read(ctx)
		require.NoError(t, err)
		require.Empty(t, b.Changes)
		dc, err := decodeCheckpoint(b.Checkpoint)
		if b.Checkpoint != nil && err == nil && dc.pending != "" {
			ck = b.Checkpoint
		}
	}
	require.NoError(t, s.Close(context.Background()))

	r.exec("UPDATE types SET v = 2 WHERE id = 1")
	s2 := New(r.cfg, sources.Deps{Pipeline: "rig", Schema: r.reg, Progress: r.prog, MaxChanges: 100, Epoch: 2})
	require.NoError(t, s2.Open(context.Background(), ck))
	defer s2.Close(context.Background())
	cs, ds := collect(t, s2, 1)
	checkFills(t, ds, cs[0].After)
}

func TestExpectationsCompose(t *testing.T) {
	a := &expectation{Added: []string{"x", "y"}, Renames: map[string]string{"p": "q"}, Fills: map[string]fillSpec{"x": {Implicit: true}, "y": {Implicit: true}}}
	b := &expectation{Added: []string{"x2"}, Dropped: []string{"y"}, Renames: map[string]string{"x": "x1", "q": "r"}, Fills: map[string]fillSpec{"x2": {Unknown: "u"}}}
	c := a.then(b)
	require.ElementsMatch(t, []string{"x1", "x2"}, c.Added)
	require.Empty(t, c.Dropped, "y was added and dropped: never seen")
	require.Equal(t, map[string]string{"p": "r"}, c.Renames)
	require.Equal(t, map[string]fillSpec{"x1": {Implicit: true}, "x2": {Unknown: "u"}}, c.Fills)
}

func TestUnparsedAlter(t *testing.T) {
	for q, want := range map[string]schema.TableID{
		"ALTER ONLINE TABLE t ADD a int":                     {Namespace: "app", Name: "t"},
		"  alter ignore table `we``ird`.`x y` add b int":     {Namespace: "we`ird", Name: "x y"},
		"ALTER TABLE IF EXISTS other . t2 ADD COLUMN c int":  {Namespace: "other", Name: "t2"},
		"ALTER TABLE t3 ADD COLUMN a int DEFAULT (1+1)":      {Namespace: "app", Name: "t3"},
		"ALTER\nTABLE\n`db`.t4 ADD c int DEFAULT (rand()+1)": {Namespace: "db", Name: "t4"},
	} {
		got, ok := unparsedAlter(q, "app")
		require.True(t, ok, q)
		require.Equal(t, want, got, q)
	}
	_, ok := unparsedAlter("ALTER VIEW v AS SELECT 1", "app")
	require.False(t, ok)
}

// TestSnapshotResumedAfterAddColumnDefault: a column added with a DEFAULT
// while a snapshot was interrupted: the rows the first attempt copied hold
// the default at the source, so some delta must carry it as their fill.
func TestSnapshotResumedAfterAddColumnDefault(t *testing.T) {
	t.Parallel()
	r := newRig(t, "CREATE TABLE types (id int PRIMARY KEY, v int)",
		"INSERT INTO types SELECT seq, seq FROM seq_1_to_200")
	s := r.open()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// copy some chunks and ack them, as a pipeline would
	rows := 0
	var last offsets.Position
	for rows < 30 {
		b, err := s.Read(ctx)
		require.NoError(t, err)
		rows += len(b.Changes)
		if b.Checkpoint != nil {
			require.NoError(t, s.Ack(ctx, b.Checkpoint))
			last = b.Checkpoint
		}
	}
	require.NoError(t, s.Close(context.Background()))
	// while cdcd is down: changes in the old shape, the column, changes of it
	r.exec("UPDATE types SET v = v + 1000 WHERE id % 10 = 0")
	r.exec("ALTER TABLE types ADD COLUMN extra int DEFAULT -1")
	r.exec("UPDATE types SET extra = id WHERE id % 7 = 0")

	s2 := New(r.cfg, sources.Deps{Pipeline: "rig", Schema: r.reg, Progress: r.prog, MaxChanges: 100, Epoch: 2})
	require.NoError(t, s2.Open(context.Background(), last)) // as the engine resumes: from the committed checkpoint
	defer s2.Close(context.Background())
	var ds []schema.Delta
	updates := 0
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	for updates < 20+28 || s2.SourceStatus().Snapshotting {
		b, err := s2.Read(rctx)
		require.NoError(t, err, "%d updates read", updates)
		for _, c := range b.Changes {
			if c.Op == schema.OpUpdate {
				updates++
			}
		}
		ds = append(ds, b.Deltas...)
		if b.Checkpoint != nil {
			require.NoError(t, s2.Ack(rctx, b.Checkpoint))
		}
	}
	// the shapes only go forward: no version without the column after one
	// with it (the Postgres source's resumed snapshot once registered the
	// catalog's shape ahead of the stream, and the stream's older one after)
	all, err := r.versions.LoadTableVersions(context.Background(), "rig")
	require.NoError(t, err)
	seen := false
	for _, tv := range all {
		_, has := tv.Table.Column("extra")
		require.False(t, seen && !has, "version %d goes back to the shape without the column", tv.Table.Version)
		seen = seen || has
	}
	filled := false
	for _, d := range ds {
		for _, c := range d.Changes {
			if v, ok := c.Fill(); ok && c.Column.Name == "extra" {
				require.Equal(t, int64(-1), v.AsInt())
				filled = true
			}
		}
	}
	require.True(t, filled, "no delta gives the rows copied before the column its default: %+v", ds)
}

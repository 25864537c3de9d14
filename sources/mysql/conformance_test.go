package mysql

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { sourcetest.VerifyTestMain(m) }

type conformance struct {
	db       string
	maria    *testenv.MariaDB
	cfg      Config
	versions *schema.MemoryVersions
	progress *sourcetest.MemProgress
	conn     *client.Conn
}

func (c *conformance) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	_, err := c.conn.Execute(q, args...)
	require.NoError(t, err, q)
}

func (c *conformance) NewSource(t *testing.T) sources.Source {
	reg, err := schema.NewRegistry(context.Background(), c.versions, c.db)
	require.NoError(t, err)
	return New(c.cfg, sources.Deps{Pipeline: c.db, Schema: reg, Progress: c.progress, MaxChanges: 10, MaxWait: 5 * time.Millisecond,
		Epoch: uint64(time.Now().UnixNano())})
}

func (c *conformance) Table() schema.TableID           { return schema.TableID{Namespace: c.db, Name: "ct"} }
func (c *conformance) Progress() sources.ProgressStore { return c.progress }
func (c *conformance) Insert(t *testing.T, id, v int) {
	c.exec(t, "INSERT INTO ct (id, v) VALUES (?, ?)", id, v)
}
func (c *conformance) Update(t *testing.T, id, v int) {
	c.exec(t, "UPDATE ct SET v = ? WHERE id = ?", v, id)
}
func (c *conformance) Delete(t *testing.T, id int) { c.exec(t, "DELETE FROM ct WHERE id = ?", id) }
func (c *conformance) UpdateMany(t *testing.T, from, to, v int) {
	c.exec(t, "UPDATE ct SET v = ? WHERE id >= ? AND id < ?", v, from, to)
}
func (c *conformance) AddColumn(t *testing.T, name string) {
	c.exec(t, fmt.Sprintf("ALTER TABLE ct ADD COLUMN %s int", quoteIdent(name)))
}
func (c *conformance) AddColumnWithDefault(t *testing.T, name string, def int, volatile bool) {
	if volatile {
		c.exec(t, fmt.Sprintf("ALTER TABLE ct ADD COLUMN %s int DEFAULT (FLOOR(RAND() * 1000))", quoteIdent(name)))
		return
	}
	c.exec(t, fmt.Sprintf("ALTER TABLE ct ADD COLUMN %s int DEFAULT %d", quoteIdent(name), def))
}
func (c *conformance) Disconnect(t *testing.T) {
	res, err := c.conn.Execute("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
	require.NoError(t, err)
	for i := 0; i < res.RowNumber(); i++ {
		id, _ := res.GetInt(i, 0)
		_, _ = c.conn.Execute(fmt.Sprintf("KILL %d", id))
	}
}
func (c *conformance) AddTable(t *testing.T) schema.TableID {
	c.exec(t, "CREATE TABLE ct_added (id int PRIMARY KEY, v int)")
	c.exec(t, "INSERT INTO ct_added VALUES (1,1),(2,2),(3,3),(4,4),(5,5)")
	c.cfg.Tables = append(c.cfg.Tables, c.db+".ct_added")
	require.NoError(t, c.cfg.Validate())
	return schema.TableID{Namespace: c.db, Name: "ct_added"}
}
func (c *conformance) InsertAdded(t *testing.T, id, v int) {
	c.exec(t, "INSERT INTO ct_added (id, v) VALUES (?, ?)", id, v)
}

// TestConformance gives each test its own server: Disconnect kills the
// server's binlog dump threads.
func TestConformance(t *testing.T) {
	t.Parallel()
	sourcetest.Run(t, func(t *testing.T) sourcetest.Harness { return harnessOn(testenv.StartMariaDB(t))(t) })
}

func harnessOn(m *testenv.MariaDB) func(t *testing.T) sourcetest.Harness {
	var n atomic.Int32
	return func(t *testing.T) sourcetest.Harness {
		db := fmt.Sprintf("c%d", n.Add(1))
		conn, err := client.Connect(m.Addr(), "root", "", "")
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		_, err = conn.Execute("CREATE DATABASE " + db)
		require.NoError(t, err)
		require.NoError(t, conn.UseDB(db))
		_, err = conn.Execute("CREATE TABLE ct (id int PRIMARY KEY, v int)")
		require.NoError(t, err)
		cfg := Config{Addr: m.Addr(), User: "root", Tables: []string{db + ".ct"}, SnapshotChunkRows: 100, HeartbeatInterval: "1s"}.WithDefaults(db)
		require.NoError(t, cfg.Validate())
		return &conformance{db: db, maria: m, cfg: cfg, versions: &schema.MemoryVersions{}, progress: &sourcetest.MemProgress{}, conn: conn}
	}
}

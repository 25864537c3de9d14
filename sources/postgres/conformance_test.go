package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/sources/sourcetest"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

type conformance struct {
	h        *harness
	cfg      Config
	versions *schema.MemoryVersions
}

func (c *conformance) AddTable(t *testing.T) schema.TableID {
	c.h.exec(`CREATE TABLE ct_added (id int PRIMARY KEY, v int); INSERT INTO ct_added SELECT g, g FROM generate_series(1, 5) g`)
	c.cfg.Tables = append(c.cfg.Tables, "public.ct_added")
	require.NoError(t, c.cfg.Validate())
	return schema.TableID{Namespace: "public", Name: "ct_added"}
}

func (c *conformance) InsertAdded(t *testing.T, id, v int) {
	c.h.exec(`INSERT INTO ct_added (id, v) VALUES ($1, $2)`, id, v)
}

func (c *conformance) NewSource(t *testing.T) sources.Source {
	reg, err := schema.NewRegistry(context.Background(), c.versions, "p")
	require.NoError(t, err)
	return New(c.cfg, sources.Deps{Pipeline: "p", Schema: reg, Progress: c.h.progress, MaxChanges: 10, MaxWait: 5 * time.Millisecond})
}

func (c *conformance) Table() schema.TableID           { return schema.TableID{Namespace: "public", Name: "ct"} }
func (c *conformance) Progress() sources.ProgressStore { return c.h.progress }
func (c *conformance) Insert(t *testing.T, id, v int) {
	c.h.exec(`INSERT INTO ct (id, v) VALUES ($1, $2)`, id, v)
}
func (c *conformance) Update(t *testing.T, id, v int) {
	c.h.exec(`UPDATE ct SET v = $2 WHERE id = $1`, id, v)
}
func (c *conformance) Delete(t *testing.T, id int) { c.h.exec(`DELETE FROM ct WHERE id = $1`, id) }
func (c *conformance) UpdateMany(t *testing.T, from, to, v int) {
	c.h.exec(`UPDATE ct SET v = $3 WHERE id >= $1 AND id < $2`, from, to, v)
}
func (c *conformance) AddColumn(t *testing.T, name string) {
	c.h.exec(fmt.Sprintf(`ALTER TABLE ct ADD COLUMN %s int4`, pgx.Identifier{name}.Sanitize()))
}
func (c *conformance) AddColumnWithDefault(t *testing.T, name string, def int, volatile bool) {
	if volatile {
		c.h.exec(fmt.Sprintf(`ALTER TABLE ct ADD COLUMN %s int4 DEFAULT (random() * 1000)::int4`, pgx.Identifier{name}.Sanitize()))
		return
	}
	c.h.exec(fmt.Sprintf(`ALTER TABLE ct ADD COLUMN %s int4 DEFAULT %d`, pgx.Identifier{name}.Sanitize(), def))
}
func (c *conformance) Disconnect(t *testing.T) {
	c.h.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, c.cfg.Slot)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	var n atomic.Int32
	sourcetest.Run(t, func(t *testing.T) sourcetest.Harness {
		h := newHarness(t, pg, `CREATE TABLE ct (id int PRIMARY KEY, v int)`)
		name := fmt.Sprintf("c%d", n.Add(1))
		cfg := Config{DSN: h.dsn, Tables: []string{"public.ct"}, SnapshotChunkRows: 100, HeartbeatInterval: "1s",
			StatusInterval: "200ms", SlotPollInterval: "1s"}.WithDefaults(strings.ToLower(name))
		require.NoError(t, cfg.Validate())
		return &conformance{h: h, cfg: cfg, versions: &schema.MemoryVersions{}}
	})
}

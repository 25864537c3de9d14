package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestPostgresKillRestart(t *testing.T) {
	t.Parallel()
	pg := StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	require.NoError(t, err)
	var level string
	require.NoError(t, c.QueryRow(ctx, "SHOW wal_level").Scan(&level))
	require.Equal(t, "logical", level)
	_, err = c.Exec(ctx, "CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "SELECT pg_create_logical_replication_slot('s1', 'pgoutput')")
	require.NoError(t, err)
	c.Close(ctx)

	pg.Kill()
	_, err = pgx.Connect(ctx, pg.DSN("postgres"))
	require.Error(t, err, "a killed server accepts no connections")
	require.NoError(t, pg.Restart())

	c, err = pgx.Connect(ctx, pg.DSN("postgres"))
	require.NoError(t, err)
	defer c.Close(ctx)
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 1, n, "committed data survives the crash")
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name='s1'").Scan(&n))
	require.Equal(t, 1, n, "the slot survives the crash")
}

func TestMariaDBKillRestart(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t)
	m.Kill()
	require.False(t, m.proc.running())
	require.NoError(t, m.Restart())
	require.True(t, m.proc.running())
}

package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a private PostgreSQL server (wal_level=logical, trust auth for the
// superuser "postgres" on 127.0.0.1).
type Postgres struct {
	Port int
	Dir  string
	bin  string
	proc *process
}

// PostgresOption adjusts a server's settings (`-c name=value`).
type PostgresOption func(settings map[string]string)

// WithSetting sets one server setting.
func WithSetting(name, value string) PostgresOption {
	return func(s map[string]string) { s[name] = value }
}

// StartPostgres starts a private Postgres for t and stops it in t.Cleanup.
func StartPostgres(t testing.TB, opts ...PostgresOption) *Postgres {
	t.Helper()
	initdb, err := findBinary("/usr/lib/postgresql/*/bin/initdb", "initdb")
	if err != nil {
		unavailable(t, "postgres: %v", err)
	}
	bin := filepath.Dir(initdb)
	cred, uid, gid, err := serverUser("postgres")
	if err != nil {
		unavailable(t, "postgres: %v", err)
	}
	tmpl, err := templateDir("pg-"+filepath.Base(filepath.Dir(bin)), uid, gid, func(dir string) error {
		return runQuiet(cred, initdb, "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust",
			"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	})
	if err != nil {
		t.Fatalf("postgres template: %v", err)
	}
	dir := mkdirOwned(t, "cdcd-pg-", uid, gid)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := copyTree(tmpl, dir); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"listen_addresses": "127.0.0.1", "unix_socket_directories": dir,
		"wal_level": "logical", "max_replication_slots": "20", "max_wal_senders": "20",
		"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
		"max_connections": "100", "shared_buffers": "64MB",
		"log_min_messages": "warning",
	}
	for _, o := range opts {
		o(settings)
	}
	pg := &Postgres{Port: FreePort(t), Dir: dir, bin: bin}
	args := []string{"-D", filepath.Join(dir, "data"), "-p", strconv.Itoa(pg.Port)}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	pg.proc = &process{name: filepath.Join(bin, "postgres"), args: args, dir: dir, log: filepath.Join(dir, "server.log"), cred: cred}
	t.Cleanup(pg.Stop)
	if err := pg.start(); err != nil {
		t.Fatal(err)
	}
	return pg
}

func (pg *Postgres) start() error {
	if err := pg.proc.start(); err != nil {
		return err
	}
	return pg.proc.waitReady(func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, pg.DSN("postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
}

// DSN returns a URL for database db as the superuser.
func (pg *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, db)
}

// Bin returns the path of one of the server's client programs (pg_recvlogical…).
func (pg *Postgres) Bin(name string) string { return filepath.Join(pg.bin, name) }

// CreateDatabase creates a database and returns its DSN.
func (pg *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return pg.DSN(name)
}

// Kill SIGKILLs the server (a crash: no shutdown checkpoint).
func (pg *Postgres) Kill() { pg.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Restart starts the server again on the same data and port (crash recovery runs
// if it was killed) and waits until it accepts connections.
func (pg *Postgres) Restart() error {
	pg.proc.signal(syscall.SIGINT, 30*time.Second)
	return pg.start()
}

// Freeze stops the server and all its backends without closing connections
// (SIGSTOP): clients see a silent socket, as with a hung host. Thaw resumes it.
func (pg *Postgres) Freeze() { pg.proc.pause(true) }

// Thaw resumes a frozen server.
func (pg *Postgres) Thaw() { pg.proc.pause(false) }

// Addr is the server's host:port.
func (pg *Postgres) Addr() string { return fmt.Sprintf("127.0.0.1:%d", pg.Port) }

// Stop shuts the server down (fast mode); it is idempotent.
func (pg *Postgres) Stop() { pg.proc.signal(syscall.SIGINT, 30*time.Second) }

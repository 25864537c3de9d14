package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a private MariaDB server with ROW binlog, FULL row image, FULL row
// metadata and GTIDs; user root with no password on 127.0.0.1.
type MariaDB struct {
	Port     int
	Dir      string
	ServerID int
	proc     *process
	admin    string
}

// StartMariaDB starts a private MariaDB for t and stops it in t.Cleanup. args
// are extra server options (e.g. --sync-binlog=1 for a crash test: the default
// favours speed over surviving a server crash).
func StartMariaDB(t testing.TB, args ...string) *MariaDB {
	t.Helper()
	mariadbd, err := findBinary("/usr/sbin/mariadbd", "mariadbd")
	if err != nil {
		unavailable(t, "mariadb: %v", err)
	}
	installDB, err := findBinary("/usr/bin/mariadb-install-db", "mariadb-install-db")
	if err != nil {
		unavailable(t, "mariadb: %v", err)
	}
	admin, err := findBinary("/usr/bin/mariadb-admin", "mariadb-admin")
	if err != nil {
		unavailable(t, "mariadb: %v", err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	tmpl, err := templateDir("mariadb", uid, gid, func(dir string) error {
		return runQuiet(nil, installDB, "--no-defaults", "--user="+currentUser(), "--datadir="+filepath.Join(dir, "data"),
			"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve")
	})
	if err != nil {
		t.Fatalf("mariadb template: %v", err)
	}
	dir := mkdirOwned(t, "cdcd-mariadb-", uid, gid)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := copyTree(tmpl, dir); err != nil {
		t.Fatal(err)
	}
	m := &MariaDB{Port: FreePort(t), Dir: dir, ServerID: 1, admin: admin}
	// The server's temporary files (implicit temporary tables of
	// information_schema queries among them) live in its own directory: in the
	// shared /tmp another process's clean-up removed one mid-query in CI
	// ("Error on delete of '/tmp/#sql-temptable-…' (Errcode: 2)").
	tmpDir := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	srvArgs := []string{"--no-defaults", "--user=" + currentUser(), "--datadir=" + filepath.Join(dir, "data"),
		"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1", "--socket=" + m.socket(),
		"--pid-file=" + filepath.Join(dir, "mariadbd.pid"), "--tmpdir=" + tmpDir, "--log-error=" + filepath.Join(dir, "error.log"),
		"--log-bin=" + filepath.Join(dir, "data", "binlog"), "--binlog-format=ROW", "--binlog-row-image=FULL",
		"--binlog-row-metadata=FULL", "--server-id=" + strconv.Itoa(m.ServerID), "--skip-name-resolve",
		"--gtid-strict-mode=ON", "--log-slave-updates=ON",
		"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-buffer-pool-size=64M"}
	args = append(srvArgs, args...)
	m.proc = &process{name: mariadbd, args: args, dir: dir, log: filepath.Join(dir, "stdout.log")}
	t.Cleanup(m.Stop)
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
	return m
}

func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}

func (m *MariaDB) socket() string { return filepath.Join(m.Dir, "mariadbd.sock") }

func (m *MariaDB) start() error {
	if err := m.proc.start(); err != nil {
		return err
	}
	return m.proc.waitReady(func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", m.Addr())
		if err != nil {
			return err
		}
		c.Close()
		return runQuiet(nil, m.admin, "--no-defaults", "-uroot", "--socket="+m.socket(), "--connect-timeout=2", "ping")
	})
}

// Addr returns host:port.
func (m *MariaDB) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// Kill SIGKILLs the server.
func (m *MariaDB) Kill() { m.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Restart starts the server again on the same data and port.
func (m *MariaDB) Restart() error {
	m.proc.signal(syscall.SIGTERM, 30*time.Second)
	return m.start()
}

// Stop shuts the server down; it is idempotent.
func (m *MariaDB) Stop() { m.proc.signal(syscall.SIGTERM, 30*time.Second) }

// Freeze stops the server without closing its connections (SIGSTOP): clients
// see a silent socket, as with a network partition. Thaw resumes it.
func (m *MariaDB) Freeze() { m.proc.pause(true) }

// Thaw resumes a frozen server.
func (m *MariaDB) Thaw() { m.proc.pause(false) }

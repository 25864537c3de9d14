package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// fakesnowMain serves fakesnow (the Snowflake stand-in: the Snowflake HTTP
// protocol over DuckDB) with its databases kept in a directory, so that a
// killed server comes back with its data.
const fakesnowMain = `
import sys, uvicorn
import fakesnow.server as server
from fakesnow.instance import FakeSnow
server.shared_fs = FakeSnow(db_path=sys.argv[1])
uvicorn.run(server.app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
`

// Fakesnow is a private fakesnow server on 127.0.0.1 (any user, password or key
// logs in). Its limits are in docs/testing.md.
type Fakesnow struct {
	Port int
	Dir  string
	proc *process
}

// FakesnowPython returns the interpreter that has fakesnow: CDCD_FAKESNOW_PYTHON,
// or the virtualenv scripts/test creates in ~/.cache/cdcd/fakesnow.
func FakesnowPython() string {
	if p := os.Getenv("CDCD_FAKESNOW_PYTHON"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cdcd", "fakesnow", "bin", "python")
}

// StartFakesnow starts a private fakesnow server for t and stops it in t.Cleanup.
func StartFakesnow(t testing.TB) *Fakesnow {
	t.Helper()
	py := FakesnowPython()
	if _, err := os.Stat(py); err != nil {
		unavailable(t, "fakesnow: no interpreter at %s (scripts/test installs it; or set CDCD_FAKESNOW_PYTHON)", py)
	}
	dir := t.TempDir()
	check := exec.Command(py, "-c", "import fakesnow.server, uvicorn")
	check.Env = append(os.Environ(), "TMPDIR="+dir) // importing it makes a stage directory
	if err := check.Run(); err != nil {
		unavailable(t, "fakesnow: %s cannot import fakesnow's server: %v", py, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &Fakesnow{Port: FreePort(t), Dir: dir}
	// fakesnow keeps its internal stages in a new temporary directory per start:
	// under the test's, so that they go with it
	f.proc = &process{name: py, args: []string{"-c", fakesnowMain, filepath.Join(dir, "db"), fmt.Sprint(f.Port)}, dir: dir,
		log: filepath.Join(dir, "fakesnow.log"), env: []string{"TMPDIR=" + dir}}
	t.Cleanup(f.Stop)
	if err := f.start(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *Fakesnow) start() error {
	if err := f.proc.start(); err != nil {
		return err
	}
	return f.proc.waitReady(func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", f.Addr())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Addr returns host:port.
func (f *Fakesnow) Addr() string { return fmt.Sprintf("127.0.0.1:%d", f.Port) }

// Kill SIGKILLs the server.
func (f *Fakesnow) Kill() { f.proc.signal(syscall.SIGKILL, 10*time.Second) }

// Restart kills the server and starts it again on the same data and port. A
// killed fakesnow forgets its sessions, as a restarted service would.
func (f *Fakesnow) Restart() error {
	f.proc.signal(syscall.SIGKILL, 10*time.Second)
	return f.start()
}

// Stop ends the server; it is idempotent.
func (f *Fakesnow) Stop() { f.proc.signal(syscall.SIGKILL, 10*time.Second) }

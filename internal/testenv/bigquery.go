package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BigQueryEmulatorVersion is the goccy/bigquery-emulator release the tests use
// (scripts/test builds it from the Go module proxy and caches the binary).
const BigQueryEmulatorVersion = "v0.8.1"

// BigQueryEmulator is a private goccy/bigquery-emulator on 127.0.0.1 with its
// data in a file, so that a killed emulator comes back with its tables. It
// serves project Project, the REST API on Port and the Storage API (gRPC) on
// GRPCPort. Its limits are in docs/testing.md.
type BigQueryEmulator struct {
	Project        string
	Port, GRPCPort int
	Dir            string
	proc           *process
}

// BigQueryEmulatorBinary returns the emulator's path: CDCD_BIGQUERY_EMULATOR,
// or the binary scripts/test builds into ~/.cache/cdcd.
func BigQueryEmulatorBinary() string {
	if p := os.Getenv("CDCD_BIGQUERY_EMULATOR"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cdcd", "bigquery-emulator-"+BigQueryEmulatorVersion)
}

// StartBigQueryEmulator starts a private emulator for t and stops it in t.Cleanup.
func StartBigQueryEmulator(t testing.TB) *BigQueryEmulator {
	t.Helper()
	bin := BigQueryEmulatorBinary()
	if _, err := os.Stat(bin); err != nil {
		unavailable(t, "bigquery-emulator: no binary at %s (scripts/test builds it; or set CDCD_BIGQUERY_EMULATOR)", bin)
	}
	dir := t.TempDir()
	e := &BigQueryEmulator{Project: "test", Port: FreePort(t), GRPCPort: FreePort(t), Dir: dir}
	e.proc = &process{name: bin, dir: dir, log: filepath.Join(dir, "emulator.log"), args: []string{
		"--project=" + e.Project, "--host=127.0.0.1", fmt.Sprintf("--port=%d", e.Port), fmt.Sprintf("--grpc-port=%d", e.GRPCPort),
		"--database=" + filepath.Join(dir, "bigquery.db"), "--log-level=warn"}}
	t.Cleanup(e.Stop)
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *BigQueryEmulator) start() error {
	if err := e.proc.start(); err != nil {
		return err
	}
	return e.proc.waitReady(func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", e.GRPCAddr())
		if err != nil {
			return err
		}
		c.Close()
		return getOK(ctx, e.Endpoint()+"/projects/"+e.Project+"/datasets")
	})
}

// Endpoint is the REST API's base URL.
func (e *BigQueryEmulator) Endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", e.Port) }

// GRPCAddr is the Storage API's host:port.
func (e *BigQueryEmulator) GRPCAddr() string { return fmt.Sprintf("127.0.0.1:%d", e.GRPCPort) }

// Restart kills the emulator (SIGKILL) and starts it again on the same data and
// ports. Write streams not committed are gone, as they would be after a crash.
func (e *BigQueryEmulator) Restart() error {
	e.proc.signal(syscall.SIGKILL, 10*time.Second)
	return e.start()
}

// Stop ends the emulator; it is idempotent.
func (e *BigQueryEmulator) Stop() { e.proc.signal(syscall.SIGKILL, 10*time.Second) }

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/cdcd-dev/cdcd/sinks/file"
	"github.com/cdcd-dev/cdcd/sources/datagen"
	"github.com/stretchr/testify/require"
)

var binary string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithCDCD(m, ".", &binary)) }

// cli runs the binary and returns stdout; it fails the test on a non-zero exit
// unless wantCode says otherwise.
func cli(t *testing.T, env []string, wantCode int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	require.Equal(t, wantCode, code, "cdcd %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String() + stderr.String()
}

type server struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
	log  *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the test's reader.
// syncBuffer collects a process's output.
type syncBuffer = testenv.Output

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	port := testenv.FreePort(t)
	s := &server{url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{}), log: &syncBuffer{}}
	s.cmd = exec.Command(binary, append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, s.cmd.Start())
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 20*time.Millisecond, "server never became ready: %s", s.log)
	return s
}

func (s *server) stop(t *testing.T) {
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
		require.NoError(t, s.err, "graceful stop exits 0; log:\n%s", s.log)
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not stop; log:\n%s", s.log)
	}
}

func writeConfig(t *testing.T, dir string, changes int, rate int) string {
	path := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`
connections:
  - name: gen
    type: datagen
    config: {tables: 3, snapshot_rows: 300, keys: 500, seed: 42}
pipelines:
  - name: demo
    source: {connection: gen, config: {changes: %d, rate: %d, txn_size: 7}}
    sink: {type: file, config: {dir: %q}}
    batch: {max_changes: 500, max_wait: 20ms}
`, changes, rate, filepath.Join(dir, "out"))), 0o644))
	return path
}

func serveRoundTrip(t *testing.T, storeArgs ...string) {
	dir := t.TempDir()
	args := append([]string{"--data-dir", filepath.Join(dir, "data")}, storeArgs...)
	s := startServer(t, args...)
	env := []string{"CDCD_SERVER=" + s.url}
	cfg := writeConfig(t, dir, 2000, 0)

	require.Contains(t, cli(t, env, 0, "config", "check", "-f", cfg), "ok (1 connections, 1 pipelines)")
	out := cli(t, env, 0, "pipelines", "apply", "-f", cfg)
	require.Contains(t, out, "pipeline demo: applied")

	var list struct {
		Pipelines []struct {
			Name, State string
			Status      struct {
				Progress struct {
					ChangesWritten int `json:"changes_written"`
				}
			}
		}
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(cli(t, env, 0, "pipelines", "list", "-o", "json")), &list))
		return len(list.Pipelines) == 1 && list.Pipelines[0].Status.Progress.ChangesWritten == 3*300+2000
	}, 30*time.Second, 50*time.Millisecond)
	require.Contains(t, cli(t, env, 0, "pipelines", "list"), "demo  streaming")
	require.Contains(t, cli(t, env, 0, "pipelines", "get", "demo"), `"generation": 1`)
	require.Contains(t, cli(t, env, 0, "connections", "list"), "gen   datagen")
	require.Contains(t, cli(t, env, 0, "connections", "test", "gen"), "connection gen: ok")
	require.Contains(t, cli(t, env, 1, "connections", "delete", "gen"), "used by pipelines demo")

	require.Contains(t, cli(t, env, 0, "pipelines", "pause", "demo"), "paused")
	require.Eventually(t, func() bool { return strings.Contains(cli(t, env, 0, "pipelines", "list"), "demo  paused") }, 10*time.Second, 20*time.Millisecond)
	require.Contains(t, cli(t, env, 0, "pipelines", "resume", "demo"), "resumed")
	require.Eventually(t, func() bool { return strings.Contains(cli(t, env, 0, "pipelines", "list"), "demo  streaming") }, 10*time.Second, 20*time.Millisecond)

	// Restart the server: the pipeline comes back from the store and resumes
	// where it was; the output stays exact.
	s.stop(t)
	s = startServer(t, args...)
	env = []string{"CDCD_SERVER=" + s.url}
	require.Eventually(t, func() bool { return strings.Contains(cli(t, env, 0, "pipelines", "list"), "demo  streaming") }, 10*time.Second, 20*time.Millisecond)
	requireFinal(t, filepath.Join(dir, "out"), 2000)

	// Tokens: once one exists, the CLI needs it.
	tok := strings.TrimSpace(strings.Split(cli(t, nil, 0, append([]string{"tokens", "create", "ops", "--role", "editor"}, args...)...), "\n")[0])
	require.True(t, strings.HasPrefix(tok, "cdcd_"))
	require.Contains(t, cli(t, env, 1, "pipelines", "list"), "401")
	env = append(env, "CDCD_TOKEN="+tok)
	cli(t, env, 0, "pipelines", "list")
	require.Contains(t, cli(t, env, 1, "audit"), "403", "an editor does not read the audit log")
	admin := strings.TrimSpace(strings.Split(cli(t, nil, 0, append([]string{"tokens", "create", "root", "--role", "admin"}, args...)...), "\n")[0])
	audit := cli(t, []string{"CDCD_SERVER=" + s.url, "CDCD_TOKEN=" + admin}, 0, "audit")
	require.Regexp(t, `POST /api/v1/apply\s+connection gen, pipeline demo\s+200`, audit)
	require.Contains(t, audit, "cdcd tokens create")
	require.Contains(t, cli(t, nil, 0, append([]string{"tokens", "list"}, args...)...), "editor")

	require.Contains(t, cli(t, env, 0, "pipelines", "delete", "demo"), "deleted")
	require.NotContains(t, cli(t, env, 0, "pipelines", "list"), "demo")
	require.Contains(t, cli(t, env, 1, "pipelines", "get", "demo"), "404")
	require.Contains(t, cli(t, env, 0, "connections", "delete", "gen"), "deleted")
	s.stop(t)
}

func requireFinal(t *testing.T, dir string, changes int) {
	t.Helper()
	want := datagen.Final(datagen.Config{Tables: 3, SnapshotRows: 300, Keys: 500, Seed: 42, TxnSize: 7, Changes: int64(changes)}, 500)
	var state map[string]map[string]string
	// wait for the whole final state, not just the row counts: every key exists
	// long before the last change of each has been applied
	eventually := func() bool {
		var err error
		state, err = file.State(dir)
		require.NoError(t, err) // also fails on any duplicate or reordered line
		for id, rows := range want {
			if len(state[id.String()]) != len(rows) {
				return false
			}
			for k, r := range rows {
				if state[id.String()][fmt.Sprintf(`{"id":%d}`, k)] != string(r.AppendJSON(nil)) {
					return false
				}
			}
		}
		return true
	}
	for deadline := time.Now().Add(60 * time.Second); !eventually() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for id, rows := range want {
		for k, r := range rows {
			key := fmt.Sprintf(`{"id":%d}`, k)
			require.Equal(t, string(r.AppendJSON(nil)), state[id.String()][key], "%s %s", id, key)
		}
	}
}

func TestServeCLIRoundTripSQLite(t *testing.T) {
	t.Parallel()
	serveRoundTrip(t)
}

func TestServeCLIRoundTripPostgresStore(t *testing.T) {
	t.Parallel()
	pg := testenv.StartPostgres(t)
	dsn := pg.CreateDatabase(t, "cdcd_meta")
	serveRoundTrip(t, "--store-url", dsn)
}

// TestRunSurvivesSIGKILL runs `cdcd run -f` as a process, SIGKILLs it at random
// points during the snapshot and the stream, restarts it each time, and checks the
// file sink ends exactly equal to the source: nothing lost, nothing twice.
func TestRunSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	const changes = 40_000
	cfg := writeConfig(t, dir, changes, 20_000)
	data := filepath.Join(dir, "data")
	kills := 0
	for range 6 {
		var log bytes.Buffer
		cmd := exec.Command(binary, "run", "-f", cfg, "--data-dir", data)
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		time.Sleep(time.Duration(50+rng.IntN(300)) * time.Millisecond) // a random point to crash at
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		kills++
	}
	// A final run to completion, then a graceful stop.
	var log bytes.Buffer
	cmd := exec.Command(binary, "run", "-f", cfg, "--data-dir", data)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	requireFinal(t, filepath.Join(dir, "out"), changes)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "log:\n%s", log.String())
	// the counts are exact across the kills, and the last run reports them
	require.Regexp(t, `pipeline stopped.* state=stopped changes_written=`+strconv.Itoa(3*300+changes)+` `, log.String())
	t.Logf("%d SIGKILLs, output exact", kills)
}

func TestConfigCheckListsProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("pipelines:\n  - name: Bad\n    source: {type: nope}\n    sink: {type: file}\n"+
		"    transforms:\n      - {type: filter, config: {keep: 'op =='}}\n      - {type: mask, config: {columns: [email], key: short}}\n"), 0o644))
	out := cli(t, nil, 2, "config", "check", "-f", path)
	require.Contains(t, out, "pipelines[Bad].transforms[0]")
	require.Contains(t, out, "expression")
	require.Contains(t, out, "pipelines[Bad].transforms[1]")
	require.Contains(t, out, "16 bytes")
	require.Contains(t, out, "pipelines[Bad].name: must match")
	require.Contains(t, out, `pipelines[Bad].source.type: "nope" is not a source type`)
	require.Contains(t, out, "pipelines[Bad].sink.config: dir: required")
	require.Contains(t, cli(t, nil, 0, "version"), "cdcd ")
}

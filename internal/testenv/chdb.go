package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// ChDB is the current ClickHouse engine (chdb, from PyPI) in a helper process
// with its own data directory: it runs statements, answers queries and loads
// blocks in ClickHouse's Native format, which is what clickhouse-go sends over
// the wire. It is not a server: tests use it to check SQL and encodings a sink
// produces against today's ClickHouse semantics.
type ChDB struct {
	mu   sync.Mutex
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	dir  string
	file int
}

// chdbHelper reads one JSON request per line and answers one JSON line.
const chdbHelper = `
import sys, json, chdb.session as cs
s = cs.Session(sys.argv[1])
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "query":
            r = s.query(req["sql"], "JSONCompact", params=req.get("params") or None)
            out = json.loads(r.bytes() or b'{"data": []}')
            print(json.dumps({"rows": out.get("data", []), "meta": out.get("meta", [])}), flush=True)
        else:
            s.query(req["sql"])
            print(json.dumps({}), flush=True)
    except Exception as e:
        print(json.dumps({"error": str(e)}), flush=True)
`

// ChDBPython returns the Python interpreter that has chdb: CDCD_CHDB_PYTHON, or
// the virtualenv scripts/test creates in ~/.cache/cdcd/chdb.
func ChDBPython() string {
	if p := os.Getenv("CDCD_CHDB_PYTHON"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "cdcd", "chdb", "bin", "python")
}

// StartChDB starts a chdb helper for t and stops it in t.Cleanup.
func StartChDB(t testing.TB) *ChDB {
	t.Helper()
	py := ChDBPython()
	if _, err := os.Stat(py); err != nil {
		unavailable(t, "chdb: no interpreter at %s (scripts/test installs it; or set CDCD_CHDB_PYTHON)", py)
	}
	if err := exec.Command(py, "-c", "import chdb").Run(); err != nil {
		unavailable(t, "chdb: %s cannot import chdb: %v", py, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(py, "-c", chdbHelper, filepath.Join(dir, "db"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chdb helper: %v", err)
	}
	c := &ChDB{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), dir: dir}
	t.Cleanup(c.stop)
	return c
}

func (c *ChDB) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return
	}
	c.in.Close()
	_ = c.cmd.Wait()
	c.cmd = nil
}

type chdbReply struct {
	Rows  [][]any `json:"rows"`
	Error string  `json:"error"`
}

func (c *ChDB) call(op, sql string) (chdbReply, error) { return c.callParams(op, sql, nil) }

func (c *ChDB) callParams(op, sql string, params map[string]string) (chdbReply, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return chdbReply{}, errors.New("chdb helper stopped")
	}
	b, _ := json.Marshal(map[string]any{"op": op, "sql": sql, "params": params})
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return chdbReply{}, err
	}
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return chdbReply{}, fmt.Errorf("chdb helper: %w", err)
	}
	var r chdbReply
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return chdbReply{}, fmt.Errorf("chdb helper reply %q: %w", line, err)
	}
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

// Exec runs a statement.
func (c *ChDB) Exec(sql string) error {
	_, err := c.call("exec", sql)
	return err
}

// Query runs a query and returns its rows, values as JSON decodes them
// (numbers as json.Number).
func (c *ChDB) Query(sql string) ([][]any, error) {
	r, err := c.call("query", sql)
	return r.Rows, err
}

// QueryParams runs a query with server-side parameters ({name:Type} in sql).
func (c *ChDB) QueryParams(sql string, params map[string]string) ([][]any, error) {
	r, err := c.callParams("query", sql, params)
	return r.Rows, err
}

// InsertNative loads a block in Native format into table's columns, with
// settings (e.g. insert_deduplication_token = 'x') if not empty.
func (c *ChDB) InsertNative(table string, columns string, native []byte, settings string) error {
	c.mu.Lock()
	c.file++
	path := filepath.Join(c.dir, fmt.Sprintf("block-%d.native", c.file))
	c.mu.Unlock()
	if err := os.WriteFile(path, native, 0o644); err != nil {
		return err
	}
	defer os.Remove(path)
	if settings != "" {
		settings = " SETTINGS " + settings
	}
	return c.Exec(fmt.Sprintf("INSERT INTO %s (%s)%s SELECT %s FROM file('%s', 'Native')", table, columns, settings, columns, path))
}

package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/api"
	"github.com/cdcd-dev/cdcd/internal/testenv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"
)

// minExamples is how many test cases Schemathesis must run per operation that
// takes any input (an operation without parameters or body is one request).
const minExamples = 50

// TestSchemathesis runs Schemathesis, every check on, against the OpenAPI
// document a running `cdcd serve` serves: in open mode (no token exists; the
// operation that creates a token is left out, as it ends open mode) and with
// an admin token. No server error, no response outside the document, no
// schema-violating request accepted; at least minExamples cases per operation
// with inputs (operations the first pass reached less are run again on their
// own: Schemathesis spreads its fuzzing by how many operations consume an
// operation's output).
func TestSchemathesis(t *testing.T) {
	t.Parallel()
	st := testenv.Schemathesis(t)
	withInputs := operationsWithInputs(t)
	for _, mode := range []string{"open", "admin"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			// the event streams never end (a fuzzer would wait out its timeout
			// on every case): api's TestEvents and the e2e tests cover them,
			// the pipeline's parameters are listEvents', which is fuzzed, and
			// every pipeline's stream has none
			const stream = "GET /api/v1/pipelines/{name}/events/stream"
			args := []string{"--exclude-name", stream, "--exclude-name", "GET /api/v1/events/stream"}
			if mode == "admin" {
				tok := strings.TrimSpace(strings.Split(cli(t, nil, 0, "tokens", "create", "fuzz", "--role", "admin", "--data-dir", data), "\n")[0])
				args = append(args, "-H", "Authorization: Bearer "+tok)
			} else {
				args = append(args, "--exclude-name", "POST /api/v1/tokens")
			}
			s := startServer(t, "--data-dir", data, "--log-level", "warn")
			counts := map[string]int{}
			runSchemathesis(t, st, s, filepath.Join(dir, "pass1"), counts, args...)
			var again []string
			for _, op := range withInputs {
				if counts[op] < minExamples && (mode == "admin" || op != "POST /api/v1/tokens") && op != stream {
					again = append(again, "--include-name", op)
				}
			}
			if len(again) > 0 { // links lead out of this subset: no stateful phase
				runSchemathesis(t, st, s, filepath.Join(dir, "pass2"), counts, append(append(args, "--phases", "coverage,fuzzing"), again...)...)
			}
			for _, op := range withInputs {
				if (mode == "open" && op == "POST /api/v1/tokens") || op == stream {
					continue
				}
				require.GreaterOrEqual(t, counts[op], minExamples, "%s: test cases", op)
			}
			t.Logf("test cases per operation: %v", counts)
			require.NotContains(t, s.log.String(), "handler panic")
		})
	}
}

func runSchemathesis(t *testing.T, st string, s *server, report string, counts map[string]int, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg, err := filepath.Abs("../../test/schemathesis/schemathesis.toml")
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, st, append([]string{"--config-file", cfg, "run", s.url + "/api/v1/openapi.json",
		"--checks", "all", "--max-examples", "100", "--seed", fmt.Sprint(time.Now().UnixNano() % 1_000_000),
		"--report", "ndjson", "--report-dir", report, "--no-color"}, args...)...)
	cmd.Dir, cmd.Env = t.TempDir(), append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// logged, not in the assertion's message: testify cannot show a line
		// over 64 KiB, and a fuzzed request can be longer
		t.Logf("schemathesis found problems:\n%s", out)
		t.Logf("server log (tail):\n%s", s.log.Tail(32<<10))
		t.Fatalf("schemathesis: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(report, "*.ndjson"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	f, err := os.Open(files[0])
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var ev struct {
			ScenarioFinished *struct {
				Recorder *struct {
					Label string                     `json:"label"`
					Cases map[string]json.RawMessage `json:"cases"`
				} `json:"recorder"`
			}
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev))
		if r := ev.ScenarioFinished; r != nil && r.Recorder != nil {
			counts[r.Recorder.Label] += len(r.Recorder.Cases)
		}
	}
	require.NoError(t, sc.Err())
}

// operationsWithInputs lists the operations of the document that take a
// parameter or a body, as "METHOD /path".
func operationsWithInputs(t *testing.T) []string {
	b, err := api.OpenAPI()
	require.NoError(t, err)
	doc, err := openapi3.NewLoader().LoadFromData(b)
	require.NoError(t, err)
	var out []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if len(item.Parameters) > 0 || len(op.Parameters) > 0 || op.RequestBody != nil {
				out = append(out, method+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

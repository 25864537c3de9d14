package file

import (
	"encoding/json"
	"testing"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sinks/sinktest"
	"github.com/cdcd-dev/cdcd/test/typematrix"
	"github.com/stretchr/testify/require"
)

// TestTypeMatrix runs every source type, with edge values, through the file
// sink on both paths (test/typematrix), read back with State.
func TestTypeMatrix(t *testing.T) {
	typematrix.Run(t, "file", func(t *testing.T) sinktest.Harness { return &matrixHarness{dir: t.TempDir()} })
}

// matrixHarness is a directory of JSON lines, read back with State.
type matrixHarness struct{ dir string }

func (h *matrixHarness) NewSink(_ *testing.T, o sinktest.Options) sinks.Sink {
	return New(Config{Dir: h.dir}, sinks.Deps{Pipeline: "sinktest", Metrics: o.Metrics})
}

func (h *matrixHarness) Skip(string) string { return "" }

func (h *matrixHarness) State(t *testing.T, table schema.Table) map[string]sinktest.Stored {
	st, err := State(h.dir)
	require.NoError(t, err)
	out := map[string]sinktest.Stored{}
	for key, row := range st[table.ID.String()] {
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(row), &fields))
		var stored sinktest.Stored
		for _, c := range table.Columns {
			raw, ok := fields[c.Name]
			v := schema.Null()
			if ok {
				v, err = sinktest.ParseJSON(c.Type, raw)
				require.NoError(t, err, "column %s: %s", c.Name, raw)
			}
			stored.Row = append(stored.Row, schema.Field{Name: c.Name, Value: v})
		}
		out[key] = stored
	}
	return out
}

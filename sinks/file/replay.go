package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Record is one line of a data file.
type Record struct {
	Pos     string          `json:"pos"`
	Op      string          `json:"op"`
	Table   string          `json:"table"`
	Version uint64          `json:"version"`
	TxID    string          `json:"tx,omitempty"`
	TS      string          `json:"ts,omitempty"`
	Key     json.RawMessage `json:"key"`
	Before  json.RawMessage `json:"before,omitempty"`
	After   json.RawMessage `json:"after,omitempty"`
}

// unchangedMarker is how a column the source did not send (unchanged TOAST) is written.
const unchangedMarker = `{"$unchanged":true}`

// mergeUnchanged returns after with every unchanged-marked column taken from prev,
// as a consumer of the log must apply it: the marker never replaces a value.
func mergeUnchanged(prev string, after json.RawMessage) string {
	if !bytes.Contains(after, []byte(unchangedMarker)) {
		return string(after)
	}
	var old map[string]json.RawMessage
	_ = json.Unmarshal([]byte(prev), &old)
	var cols []struct {
		k string
		v json.RawMessage
	}
	dec := json.NewDecoder(bytes.NewReader(after))
	if _, err := dec.Token(); err != nil {
		return string(after)
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return string(after)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return string(after)
		}
		if string(v) == unchangedMarker {
			v = old[k.(string)] // absent before: stays unknown (null)
			if v == nil {
				v = json.RawMessage("null")
			}
		}
		cols = append(cols, struct {
			k string
			v json.RawMessage
		}{k.(string), v})
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(c.k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(c.v)
	}
	b.WriteByte('}')
	return b.String()
}

// State replays every data file in dir and returns, per table, the latest row of
// each live key (key JSON → after JSON); deleted keys are absent, and columns
// marked unchanged keep their previous value. It also checks
// that positions strictly increase within each file: a duplicate or reordered line
// is an error. Tools and tests use it to compare a sink's output with its source.
func State(dir string) (map[string]map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, ".schema.jsonl") {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		last := ""
		for n := 1; sc.Scan(); n++ {
			var r Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", p, n, err)
			}
			// Hex preserves the byte order of positions, which is their order.
			if r.Pos <= last {
				f.Close()
				return nil, fmt.Errorf("%s:%d: position %s does not follow %s (duplicate or reordered change)", p, n, r.Pos, last)
			}
			last = r.Pos
			rows := out[r.Table]
			if rows == nil {
				rows = map[string]string{}
				out[r.Table] = rows
			}
			switch r.Op {
			case "d":
				delete(rows, string(r.Key))
			case "t":
				clear(rows)
			default:
				rows[string(r.Key)] = mergeUnchanged(rows[string(r.Key)], r.After)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

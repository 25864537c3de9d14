package file

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// Since is a sweep's ("s") position its table's resync began at: rows last
	// written before it are gone from the source.
	Since string `json:"since,omitempty"`
}

// unchangedMarker is how a column the source did not send (unchanged TOAST) is written.
const unchangedMarker = `{"$unchanged":true}`

// field is one member of a JSON object, in order.
type field struct {
	k string
	v json.RawMessage
}

// fields reads a JSON object's members in order.
func fields(obj []byte) ([]field, bool) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []field
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, field{k.(string), v})
	}
	return out, true
}

func render(fs []field) string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(f.k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(f.v)
	}
	b.WriteByte('}')
	return b.String()
}

// mergeUnchanged returns after with every unchanged-marked column taken from prev,
// as a consumer of the log must apply it: the marker never replaces a value.
func mergeUnchanged(prev string, after json.RawMessage) string {
	if !bytes.Contains(after, []byte(unchangedMarker)) {
		return string(after)
	}
	var old map[string]json.RawMessage
	_ = json.Unmarshal([]byte(prev), &old)
	fs, ok := fields(after)
	if !ok {
		return string(after)
	}
	for i, f := range fs {
		if string(f.v) == unchangedMarker {
			v := old[f.k] // absent before: stays unknown (null)
			if v == nil {
				v = json.RawMessage("null")
			}
			fs[i].v = v
		}
	}
	return render(fs)
}

// fill is a schema file's delta that adds columns: every row written before
// pos holds the column's value for the rows already there, or NULL.
type fill struct {
	pos  string
	cols []field
}

// readFills reads a schema file's fills, in position order.
func readFills(path string) ([]fill, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []fill
	for _, line := range bytes.Split(b, []byte("\n")) {
		var d struct {
			Pos     string `json:"pos"`
			Changes []struct {
				Op     string `json:"op"`
				Column struct {
					Name     string `json:"name"`
					Existing *struct {
						Value json.RawMessage `json:"value"`
					} `json:"existing"`
				} `json:"column"`
			} `json:"changes"`
		}
		if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &d) != nil || d.Pos == "" {
			continue
		}
		f := fill{pos: d.Pos}
		for _, c := range d.Changes {
			if c.Op != "add_column" {
				continue
			}
			v := json.RawMessage("null") // no value for the rows already there: NULL
			if e := c.Column.Existing; e != nil && len(e.Value) > 0 {
				v = e.Value
			}
			f.cols = append(f.cols, field{c.Column.Name, v})
		}
		if len(f.cols) > 0 {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b fill) int { return strings.Compare(a.pos, b.pos) })
	return out, nil
}

// apply sets f's columns in every row.
func (f fill) apply(rows map[string]string) {
	for k, row := range rows {
		fs, ok := fields([]byte(row))
		if !ok {
			continue
		}
		for _, c := range f.cols {
			if i := slices.IndexFunc(fs, func(x field) bool { return x.k == c.k }); i >= 0 {
				fs[i].v = c.v
			} else {
				fs = append(fs, c)
			}
		}
		rows[k] = render(fs)
	}
}

// State replays every data file in dir and returns, per table, the latest row of
// each live key (key JSON → after JSON); deleted keys are absent (a sweep
// line, "s", deletes the keys last written before its "since"), columns
// marked unchanged keep their previous value, and a column added with a value
// for the rows already there (its schema file's delta, "existing") gives it to
// the rows written before the delta's position. It also checks
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
		fills, err := readFills(strings.TrimSuffix(p, ".jsonl") + ".schema.jsonl")
		if err != nil {
			f.Close()
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		last, table := "", ""
		at := map[string]string{} // key → position of its last write
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
			last, table = r.Pos, r.Table
			rows := out[r.Table]
			if rows == nil {
				rows = map[string]string{}
				out[r.Table] = rows
			}
			for len(fills) > 0 && fills[0].pos <= r.Pos {
				fills[0].apply(rows) // the rows written before the delta
				fills = fills[1:]
			}
			switch r.Op {
			case "d":
				delete(rows, string(r.Key))
				delete(at, string(r.Key))
			case "t":
				clear(rows)
				clear(at)
			case "s":
				for k, p := range at {
					if p < r.Since {
						delete(rows, k)
						delete(at, k)
					}
				}
			default:
				rows[string(r.Key)] = mergeUnchanged(rows[string(r.Key)], r.After)
				at[string(r.Key)] = r.Pos
			}
		}
		err = sc.Err()
		f.Close()
		for _, fl := range fills {
			if rows := out[table]; rows != nil {
				fl.apply(rows)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return out, nil
}

package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Both the snapshot (a text-format query) and the stream (pgoutput, text format)
// hand cdcd the server's text output of every value, produced under the same
// session settings (sessionParams), and decode it with decodeText. So the same row
// yields identical Values in both paths, whatever its types.

// sessionParams are set on every connection cdcd opens, so that text output is
// the same for the walsender and for snapshot queries.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

// Built-in type OIDs (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidChar        = 18
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidXID         = 28
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidInterval    = 1186
	oidTimeTZ      = 1266
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)

// pgType is what cdcd knows about one type OID.
type pgType struct {
	OID      uint32
	Name     string // pg_type.typname (format_type for display)
	Kind     byte   // typtype: b base, d domain, e enum, c composite, r range, m multirange, p pseudo
	Base     uint32 // domains: the base type
	Elem     uint32 // arrays: the element type
	Category byte   // typcategory: A array, S string, …
	Delim    byte   // array element delimiter
}

// typeCache resolves type OIDs from pg_type, loading unknown ones on demand
// (enums, domains and extension types have per-database OIDs).
type typeCache struct {
	mu    sync.Mutex
	types map[uint32]*pgType
}

func newTypeCache() *typeCache { return &typeCache{types: map[uint32]*pgType{}} }

// load fetches the given OIDs (and, transitively, their base and element types).
func (c *typeCache) load(ctx context.Context, pool *pgxpool.Pool, oids ...uint32) error {
	for len(oids) > 0 {
		var missing []uint32
		c.mu.Lock()
		for _, o := range oids {
			if _, ok := c.types[o]; !ok && o != 0 {
				missing = append(missing, o)
			}
		}
		c.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		rows, err := pool.Query(ctx, `SELECT oid, typname, typtype, typbasetype, typelem, typcategory, typdelim
			FROM pg_catalog.pg_type WHERE oid = ANY($1)`, missing)
		if err != nil {
			return fmt.Errorf("load types: %w", err)
		}
		oids = oids[:0]
		for rows.Next() {
			var t pgType
			var kind, cat, delim string
			if err := rows.Scan(&t.OID, &t.Name, &kind, &t.Base, &t.Elem, &cat, &delim); err != nil {
				rows.Close()
				return err
			}
			t.Kind, t.Category, t.Delim = kind[0], cat[0], delim[0]
			c.mu.Lock()
			c.types[t.OID] = &t
			c.mu.Unlock()
			if t.Base != 0 {
				oids = append(oids, t.Base)
			}
			if t.Elem != 0 && t.Category == 'A' {
				oids = append(oids, t.Elem)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func (c *typeCache) get(oid uint32) *pgType {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[oid]
}

// resolve follows domains to their base type.
func (c *typeCache) resolve(oid uint32) *pgType {
	t := c.get(oid)
	for i := 0; t != nil && t.Kind == 'd' && i < 16; i++ {
		t = c.get(t.Base)
	}
	return t
}

// columnType describes a column for the schema model.
func (c *typeCache) columnType(oid uint32, typmod int32) schema.Type {
	t := c.get(oid)
	name := fmt.Sprint(oid)
	if t != nil {
		name = t.Name
	}
	out := schema.Type{Name: name}
	base := c.resolve(oid)
	if base == nil {
		out.Kind = schema.KindUnknown
		return out
	}
	out.Kind = kindOf(base)
	if base.Category == 'A' {
		et := c.columnType(base.Elem, -1)
		out.Elem = &et
	}
	if typmod >= 0 {
		switch base.OID {
		case oidNumeric:
			out.Precision, out.Scale = int(((typmod-4)>>16)&0xffff), int((typmod-4)&0xffff)
		case oidVarchar, oidBPChar:
			out.Length = int(typmod - 4)
		case oidTimestamp, oidTimestampTZ, oidTime, oidTimeTZ:
			out.Precision = int(typmod)
		}
	}
	return out
}

func kindOf(t *pgType) schema.Kind {
	switch t.OID {
	case oidBool:
		return schema.KindBool
	case oidInt2, oidInt4, oidInt8, oidOID, oidXID:
		return schema.KindInt
	case oidFloat4, oidFloat8:
		return schema.KindFloat
	case oidNumeric:
		return schema.KindDecimal
	case oidText, oidVarchar, oidBPChar, oidName, oidChar, oidUUID:
		return schema.KindString
	case oidBytea:
		return schema.KindBytes
	case oidDate:
		return schema.KindDate
	case oidTimestamp:
		return schema.KindDateTime
	case oidTimestampTZ:
		return schema.KindTimestamp
	case oidTime:
		return schema.KindTime
	case oidJSON, oidJSONB:
		return schema.KindJSON
	}
	switch {
	case t.Category == 'A':
		return schema.KindArray
	case t.Kind == 'e':
		return schema.KindString // enum labels
	case t.Category == 'S':
		return schema.KindString // citext and other string types
	}
	return schema.KindUnknown
}

// decodeText decodes the server's text output of a value of type oid.
func (c *typeCache) decodeText(oid uint32, src []byte) (schema.Value, error) {
	t := c.resolve(oid)
	if t == nil {
		return schema.Unknown(fmt.Sprint(oid), string(src)), nil
	}
	if t.Category == 'A' && t.Elem != 0 {
		return c.decodeArray(t, string(src))
	}
	s := string(src)
	switch kindOf(t) {
	case schema.KindBool:
		switch s {
		case "t":
			return schema.Bool(true), nil
		case "f":
			return schema.Bool(false), nil
		}
	case schema.KindInt:
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return schema.Int(i), nil
		}
	case schema.KindFloat:
		f, err := strconv.ParseFloat(s, 64) // accepts NaN, Infinity, -Infinity
		if err == nil {
			return schema.Float(f), nil
		}
	case schema.KindDecimal:
		return schema.Decimal(s)
	case schema.KindString:
		return schema.String(s), nil
	case schema.KindBytes:
		if b, ok := strings.CutPrefix(s, `\x`); ok {
			raw, err := hex.DecodeString(b)
			if err == nil {
				return schema.Bytes(raw), nil
			}
		}
	case schema.KindJSON:
		return schema.JSON(s), nil
	case schema.KindDate:
		if d, err := time.Parse("2006-01-02", s); err == nil {
			return schema.Date(d.Year(), d.Month(), d.Day()), nil
		}
		return schema.Unknown(t.Name, s), nil // infinity, BC dates: kept exactly as text
	case schema.KindDateTime:
		if ts, err := time.Parse("2006-01-02 15:04:05.999999", s); err == nil {
			return schema.DateTime(ts), nil
		}
		return schema.Unknown(t.Name, s), nil
	case schema.KindTimestamp:
		if ts, err := time.Parse("2006-01-02 15:04:05.999999-07", s); err == nil {
			return schema.Timestamp(ts), nil
		}
		if ts, err := time.Parse("2006-01-02 15:04:05.999999-07:00", s); err == nil {
			return schema.Timestamp(ts), nil
		}
		return schema.Unknown(t.Name, s), nil
	case schema.KindTime:
		if tt, err := time.Parse("15:04:05.999999", s); err == nil {
			return schema.TimeOfDay(int64(tt.Hour())*3600e6 + int64(tt.Minute())*60e6 + int64(tt.Second())*1e6 + int64(tt.Nanosecond()/1000)), nil
		}
		if s == "24:00:00" {
			return schema.TimeOfDay(24 * 3600e6), nil
		}
	default:
		return schema.Unknown(t.Name, s), nil
	}
	return schema.Value{}, fmt.Errorf("cannot decode %q as %s", truncate(s, 40), t.Name)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decodeArray parses an array literal: {a,b}, {{1,2},{3,4}}, quoted elements with
// backslash escapes, NULL, and an optional dimension prefix ([0:1]={…}).
func (c *typeCache) decodeArray(t *pgType, s string) (schema.Value, error) {
	if strings.HasPrefix(s, "[") {
		// Postgres writes the bounds only when one does not start at 1
		// ('[0:2]={1,2,3}'): an array value has no bounds, so it keeps its
		// exact text, which a Postgres array column takes as it is and every
		// other column refuses by its policy (found: the bounds were dropped)
		return schema.Unknown(t.Name, s), nil
	}
	delim := t.Delim
	if delim == 0 {
		delim = ','
	}
	p := arrayParser{s: s, delim: delim}
	v, err := p.parse(func(text string, null bool) (schema.Value, error) {
		if null {
			return schema.Null(), nil
		}
		return c.decodeText(t.Elem, []byte(text))
	})
	if err != nil {
		return schema.Value{}, fmt.Errorf("array %s: %w", t.Name, err)
	}
	if p.i != len(p.s) {
		return schema.Value{}, fmt.Errorf("array %s: trailing text after position %d", t.Name, p.i)
	}
	return v, nil
}

type arrayParser struct {
	s     string
	i     int
	delim byte
}

func (p *arrayParser) parse(elem func(text string, null bool) (schema.Value, error)) (schema.Value, error) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return schema.Value{}, fmt.Errorf("expected '{' at %d", p.i)
	}
	p.i++
	var out []schema.Value
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return schema.Array(), nil
	}
	for {
		if p.i >= len(p.s) {
			return schema.Value{}, fmt.Errorf("unterminated array")
		}
		switch p.s[p.i] {
		case '{':
			v, err := p.parse(elem)
			if err != nil {
				return schema.Value{}, err
			}
			out = append(out, v)
		case '"':
			p.i++
			var b strings.Builder
			for {
				if p.i >= len(p.s) {
					return schema.Value{}, fmt.Errorf("unterminated quoted element")
				}
				ch := p.s[p.i]
				if ch == '\\' && p.i+1 < len(p.s) {
					b.WriteByte(p.s[p.i+1])
					p.i += 2
					continue
				}
				p.i++
				if ch == '"' {
					break
				}
				b.WriteByte(ch)
			}
			v, err := elem(b.String(), false)
			if err != nil {
				return schema.Value{}, err
			}
			out = append(out, v)
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != p.delim && p.s[p.i] != '}' {
				p.i++
			}
			text := strings.TrimSpace(p.s[start:p.i])
			v, err := elem(text, strings.EqualFold(text, "NULL"))
			if err != nil {
				return schema.Value{}, err
			}
			out = append(out, v)
		}
		if p.i >= len(p.s) {
			return schema.Value{}, fmt.Errorf("unterminated array")
		}
		switch p.s[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return schema.Array(out...), nil
		default:
			return schema.Value{}, fmt.Errorf("unexpected %q at %d", p.s[p.i], p.i)
		}
	}
}

// decodeRow decodes one text-format result row of t's columns (in order). An
// error names the column, never the value.
func (tc *typeCache) decodeRow(t *tableInfo, raw [][]byte) (schema.Row, error) {
	r := make(schema.Row, len(t.Columns))
	for i, c := range t.Columns {
		r[i].Name = c.Name
		if raw[i] == nil {
			continue
		}
		v, err := tc.decodeText(c.Type, raw[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		r[i].Value = v
	}
	return r, nil
}

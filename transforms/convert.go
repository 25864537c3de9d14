package transforms

// Declared types and the conversions between value kinds, shared by the
// transforms that convert values (cast, flatten) and by the preview.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/schema"
)

var typeRE = regexp.MustCompile(`^([a-z][a-z0-9 ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?$`)

// ParseType reads a declared type.
func ParseType(s string) (schema.Type, error) {
	m := typeRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if m == nil {
		return schema.Type{}, fmt.Errorf("type %q: want a name with an optional (n) or (p,s)", s)
	}
	p, _ := strconv.Atoi(m[2])
	sc, _ := strconv.Atoi(m[3])
	t := func(k schema.Kind, name string) (schema.Type, error) {
		return schema.Type{Kind: k, Name: name}, nil
	}
	switch m[1] {
	case "int2", "smallint":
		return t(schema.KindInt, "int2")
	case "int4", "integer":
		return t(schema.KindInt, "int4")
	case "int8", "int", "bigint":
		return t(schema.KindInt, "int8")
	case "float4", "real":
		return t(schema.KindFloat, "float4")
	case "float8", "float", "double", "double precision":
		return t(schema.KindFloat, "float8")
	case "decimal", "numeric":
		if sc > p && p > 0 || p > 1000 {
			return schema.Type{}, fmt.Errorf("type %q: need 0 < precision ≤ 1000 and scale ≤ precision", s)
		}
		return schema.Type{Kind: schema.KindDecimal, Name: "numeric", Precision: p, Scale: sc}, nil
	case "text", "string":
		return t(schema.KindString, "text")
	case "varchar":
		if p <= 0 {
			return schema.Type{}, fmt.Errorf("type %q: varchar needs a length, e.g. varchar(255)", s)
		}
		return schema.Type{Kind: schema.KindString, Name: "varchar", Length: p}, nil
	case "bool", "boolean":
		return t(schema.KindBool, "bool")
	case "timestamptz", "timestamp":
		return t(schema.KindTimestamp, "timestamptz")
	case "datetime", "timestamp without time zone":
		return t(schema.KindDateTime, "timestamp")
	case "date":
		return t(schema.KindDate, "date")
	case "json", "jsonb":
		return t(schema.KindJSON, "jsonb")
	case "bytes", "bytea":
		return t(schema.KindBytes, "bytea")
	}
	return schema.Type{}, fmt.Errorf("type %q: unknown (known: int2, int4, int8, float4, float8, decimal(p,s), text, varchar(n), bool, timestamptz, datetime, date, json, bytes)", s)
}

var intRange = map[string][2]int64{
	"int2": {math.MinInt16, math.MaxInt16}, "int4": {math.MinInt32, math.MaxInt32}, "int8": {math.MinInt64, math.MaxInt64},
}

// errNo is a conversion that cannot be made; it says why without the value.
func errNo(from schema.Kind, to schema.Type, why string) error {
	return fmt.Errorf("a %s value does not convert to %s: %s", from, to, why)
}

// Convert converts v to type to. NULL and the unchanged marker pass through.
// The error never carries the value.
func Convert(v schema.Value, to schema.Type) (schema.Value, error) {
	k := v.Kind()
	if k == schema.KindNull || k == schema.KindUnchanged {
		return v, nil
	}
	switch to.Kind {
	case schema.KindInt:
		return toInt(v, to)
	case schema.KindFloat:
		return toFloat(v, to)
	case schema.KindDecimal:
		return toDecimal(v, to)
	case schema.KindString:
		s, err := text(v, to)
		if err != nil {
			return schema.Value{}, err
		}
		if to.Length > 0 && utf8.RuneCountInString(s) > to.Length {
			return schema.Value{}, errNo(k, to, "longer than the declared length")
		}
		return schema.String(s), nil
	case schema.KindBool:
		return toBool(v, to)
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		return toTime(v, to)
	case schema.KindJSON:
		switch k {
		case schema.KindJSON:
			return v, nil
		case schema.KindString:
			if !json.Valid([]byte(v.Text())) {
				return schema.Value{}, errNo(k, to, "not a JSON document")
			}
			return schema.JSON(v.Text()), nil
		}
		return schema.JSON(string(v.AppendJSON(nil))), nil
	case schema.KindBytes:
		switch k {
		case schema.KindBytes:
			return v, nil
		case schema.KindString:
			return schema.Bytes([]byte(v.Text())), nil
		}
		return schema.Value{}, errNo(k, to, "only text and bytes convert to bytes")
	}
	return schema.Value{}, errNo(k, to, "unsupported target")
}

func toInt(v schema.Value, to schema.Type) (schema.Value, error) {
	var n int64
	switch v.Kind() {
	case schema.KindInt:
		n = v.AsInt()
	case schema.KindUint:
		if v.AsUint() > math.MaxInt64 {
			return schema.Value{}, errNo(v.Kind(), to, "out of range")
		}
		n = int64(v.AsUint())
	case schema.KindBool:
		if v.AsBool() {
			n = 1
		}
	case schema.KindFloat:
		f := v.AsFloat()
		if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return schema.Value{}, errNo(v.Kind(), to, "not a whole number in range")
		}
		n = int64(f)
	case schema.KindString, schema.KindDecimal:
		s := strings.TrimSpace(v.Text())
		if i := strings.IndexByte(s, '.'); i >= 0 && strings.Trim(s[i+1:], "0") == "" {
			s = s[:i] // 12.000 is the whole number 12
		}
		var err error
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return schema.Value{}, errNo(v.Kind(), to, "not a whole number in range")
		}
	default:
		return schema.Value{}, errNo(v.Kind(), to, "not a number")
	}
	if r, ok := intRange[to.Name]; ok && (n < r[0] || n > r[1]) {
		return schema.Value{}, errNo(v.Kind(), to, "out of range")
	}
	return schema.Int(n), nil
}

func toFloat(v schema.Value, to schema.Type) (schema.Value, error) {
	switch v.Kind() {
	case schema.KindFloat:
		return v, nil
	case schema.KindInt:
		return schema.Float(float64(v.AsInt())), nil
	case schema.KindUint:
		return schema.Float(float64(v.AsUint())), nil
	case schema.KindString, schema.KindDecimal:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Text()), 64)
		if err != nil {
			return schema.Value{}, errNo(v.Kind(), to, "not a number")
		}
		return schema.Float(f), nil
	}
	return schema.Value{}, errNo(v.Kind(), to, "not a number")
}

func toDecimal(v schema.Value, to schema.Type) (schema.Value, error) {
	var s string
	switch v.Kind() {
	case schema.KindDecimal, schema.KindString:
		s = strings.TrimSpace(v.Text())
	case schema.KindInt:
		s = strconv.FormatInt(v.AsInt(), 10)
	case schema.KindUint:
		s = strconv.FormatUint(v.AsUint(), 10)
	case schema.KindFloat:
		f := v.AsFloat()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return schema.Value{}, errNo(v.Kind(), to, "not a finite number")
		}
		s = strconv.FormatFloat(f, 'f', -1, 64)
	default:
		return schema.Value{}, errNo(v.Kind(), to, "not a number")
	}
	d, err := schema.Decimal(s)
	if err != nil {
		return schema.Value{}, errNo(v.Kind(), to, "not a decimal number")
	}
	if to.Precision > 0 {
		ints, fracs := schema.DecimalDigits(s)
		if ints > to.Precision-to.Scale || fracs > to.Scale {
			return schema.Value{}, errNo(v.Kind(), to, "more digits than the declared precision and scale")
		}
	}
	return d, nil
}

func text(v schema.Value, to schema.Type) (string, error) {
	switch v.Kind() {
	case schema.KindString, schema.KindDecimal, schema.KindJSON, schema.KindUnknown:
		return v.Text(), nil
	case schema.KindBytes:
		if !utf8.Valid(v.AsBytes()) {
			return base64.StdEncoding.EncodeToString(v.AsBytes()), nil
		}
		return string(v.AsBytes()), nil
	}
	b := v.AppendJSON(nil) // numbers, bools, times: their JSON text, unquoted
	if s, err := strconv.Unquote(string(b)); err == nil {
		return s, nil
	}
	return string(b), nil
}

func toBool(v schema.Value, to schema.Type) (schema.Value, error) {
	switch v.Kind() {
	case schema.KindBool:
		return v, nil
	case schema.KindInt, schema.KindUint:
		if v.AsUint() <= 1 {
			return schema.Bool(v.AsUint() == 1), nil
		}
	case schema.KindString:
		switch strings.ToLower(strings.TrimSpace(v.Text())) {
		case "true", "t", "yes", "y", "1", "on":
			return schema.Bool(true), nil
		case "false", "f", "no", "n", "0", "off":
			return schema.Bool(false), nil
		}
	}
	return schema.Value{}, errNo(v.Kind(), to, "not a boolean (true/false, t/f, yes/no, 1/0)")
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"}

func toTime(v schema.Value, to schema.Type) (schema.Value, error) {
	var t time.Time
	switch v.Kind() {
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		t = v.AsTime()
	case schema.KindString:
		s := strings.TrimSpace(v.Text())
		var err error
		for _, l := range timeLayouts {
			if t, err = time.Parse(l, s); err == nil {
				break
			}
		}
		if err != nil {
			return schema.Value{}, errNo(v.Kind(), to, "not a date or time in ISO 8601 form")
		}
	default:
		return schema.Value{}, errNo(v.Kind(), to, "not a date or time")
	}
	switch to.Kind {
	case schema.KindTimestamp:
		return schema.Timestamp(t), nil
	case schema.KindDateTime:
		return schema.DateTime(t.UTC()), nil
	}
	y, m, d := t.UTC().Date()
	return schema.Date(y, m, d), nil
}

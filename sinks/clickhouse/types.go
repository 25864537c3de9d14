package clickhouse

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
)

// features are what the server supports, by version.
type features struct {
	major, minor int
	dateTime64   bool // 20.1 (and now64)
	date32       bool // 21.9
	boolType     bool // 21.12
	decimal256   bool // 20.8: Decimal up to 76 digits
	isDeleted    bool // 23.2: ReplacingMergeTree(ver, is_deleted)
	ifNotExists  bool // ADD COLUMN IF NOT EXISTS (19.x)
	dedupToken   bool // 22.2: insert_deduplication_token (with non_replicated_deduplication_window)
	jsonType     bool // 25.3: the JSON type
	ttl          bool // 19.6: table TTL
}

func featuresOf(major, minor int) features {
	at := func(ma, mi int) bool { return major > ma || (major == ma && minor >= mi) }
	return features{major: major, minor: minor,
		dateTime64: at(20, 1), date32: at(21, 9), boolType: at(21, 12), decimal256: at(20, 8),
		isDeleted: at(23, 2), ifNotExists: at(19, 3), dedupToken: at(22, 2), jsonType: at(25, 3), ttl: at(19, 6)}
}

// colType is a destination column's ClickHouse type and how values are encoded for it.
type colType struct {
	sql      string // the full type, e.g. Nullable(Decimal(12, 2))
	base     string // without Nullable/LowCardinality: Int32, Decimal(12, 2), DateTime64(6, 'UTC'), String, Array(Nullable(Int32))
	nullable bool
	elem     *colType // arrays
	p, s     int      // decimals
}

// mysqlInts maps MySQL integer names to ClickHouse integers.
var mysqlInts = map[string]string{
	"tinyint": "Int8", "smallint": "Int16", "mediumint": "Int32", "int": "Int32", "integer": "Int32", "bigint": "Int64", "year": "Int16",
	"tinyint unsigned": "UInt8", "smallint unsigned": "UInt16", "mediumint unsigned": "UInt32", "int unsigned": "UInt32",
	"integer unsigned": "UInt32", "bigint unsigned": "UInt64",
	"int2": "Int16", "int4": "Int32", "int8": "Int64", "oid": "Int64",
}

// DestType returns the ClickHouse type of a source column: the mapping table of
// docs/type-mappings.md. An error means the column cannot be mapped under the
// chosen policies (a decimal wider than the server's with wide_decimal: error).
func (s *Sink) DestType(t schema.Type, nullable bool) (colType, error) {
	f := s.feat
	base, err := s.baseType(t, f)
	if err != nil {
		return colType{}, err
	}
	ct := colType{base: base, sql: base}
	if t.Kind == schema.KindArray {
		var et colType
		if t.Elem != nil {
			if et, err = s.DestType(*t.Elem, true); err != nil {
				return colType{}, err
			}
		} else {
			et = colType{base: "String", sql: "Nullable(String)", nullable: true}
		}
		ct.elem = &et
		ct.base = "Array(" + et.sql + ")"
		ct.sql = ct.base // arrays are never Nullable: NULL is written as []
		return ct, nil
	}
	if strings.HasPrefix(base, "Decimal(") {
		fmt.Sscanf(base, "Decimal(%d, %d)", &ct.p, &ct.s)
	}
	if nullable {
		ct.nullable = true
		ct.sql = "Nullable(" + base + ")"
	}
	return ct, nil
}

func (s *Sink) baseType(t schema.Type, f features) (string, error) {
	name := strings.ToLower(t.Name)
	switch t.Kind {
	case schema.KindBool:
		if f.boolType {
			return "Bool", nil
		}
		return "UInt8", nil
	case schema.KindInt, schema.KindUint:
		if ch, ok := mysqlInts[name]; ok && (t.Kind == schema.KindUint) == strings.HasPrefix(ch, "U") {
			return ch, nil
		}
		if t.Kind == schema.KindUint {
			return "UInt64", nil
		}
		return "Int64", nil
	case schema.KindFloat:
		if name == "float4" || name == "float" || name == "real" {
			return "Float32", nil
		}
		return "Float64", nil
	case schema.KindDecimal:
		limit := 38
		switch {
		case f.decimal256:
			limit = 76
		case !f.dateTime64:
			// before 20.1 Decimal128 prints wrong digits (measured on 18.16:
			// toString of Decimal(38, 10) garbles the leading digits): keep
			// wide decimals exact as text there
			limit = 18
		}
		if t.Precision > 0 && t.Precision <= limit {
			return fmt.Sprintf("Decimal(%d, %d)", t.Precision, t.Scale), nil
		}
		if s.cfg.WideDecimal == "error" {
			return "", fmt.Errorf("decimal type %s is wider than ClickHouse's Decimal (%d digits) or has no precision; set wide_decimal: string to store it as exact text", t, limit)
		}
		return "String", nil
	case schema.KindString:
		if name == "uuid" {
			return "UUID", nil
		}
		return "String", nil
	case schema.KindTimestamp, schema.KindDateTime:
		if f.dateTime64 {
			return "DateTime64(6, 'UTC')", nil
		}
		return "String", nil // exact ISO 8601 text: the server has no sub-second DateTime
	case schema.KindDate:
		if f.date32 {
			return "Date32", nil
		}
		return "Date", nil
	case schema.KindJSON:
		if s.cfg.JSON == "json" {
			if !f.jsonType {
				return "", fmt.Errorf("json: json needs ClickHouse 25.3 or later (the server runs %d.%d); use json: string", f.major, f.minor)
			}
			return "JSON", nil
		}
		return "String", nil
	case schema.KindArray:
		return "Array", nil // completed by DestType
	}
	return "String", nil // bytes, time of day, unknown: exact text or bytes
}

// Ranges of the date types, for the unrepresentable check.
var (
	dateMin, dateMax     = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2149, 6, 6, 0, 0, 0, 0, time.UTC)
	date32Min, date32Max = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2299, 12, 31, 0, 0, 0, 0, time.UTC)
	// DateTime64 holds 1900–2299, but clickhouse-go (ch-go's ToDateTime64)
	// encodes it through time.UnixNano, which wraps after 2262-04-11: a
	// 2299 instant arrived as 1715 (found by the type matrix). The range is
	// what the encoder carries exactly.
	dateTime64Min, dateTime64Max = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, math.MaxInt64).UTC().Truncate(time.Microsecond)
	intRange                     = map[string][2]int64{"Int8": {math.MinInt8, math.MaxInt8}, "Int16": {math.MinInt16, math.MaxInt16}, "Int32": {math.MinInt32, math.MaxInt32}, "Int64": {math.MinInt64, math.MaxInt64}}
	uintMax                      = map[string]uint64{"UInt8": math.MaxUint8, "UInt16": math.MaxUint16, "UInt32": math.MaxUint32, "UInt64": math.MaxUint64}
)

// encode converts v to what clickhouse-go appends for a column of type ct, or
// returns why the column cannot hold it exactly.
func encode(ct colType, v schema.Value) (any, string) {
	if v.IsNull() || v.Kind() == schema.KindUnchanged {
		if ct.elem != nil {
			return []any{}, ""
		}
		if ct.nullable {
			return nil, ""
		}
		return zero(ct.base), ""
	}
	if ct.elem != nil {
		if v.Kind() != schema.KindArray {
			return nil, "is not an array"
		}
		elems := v.Elems()
		out := make([]any, len(elems))
		for i, e := range elems {
			if e.Kind() == schema.KindArray {
				return nil, "is a multi-dimensional array; the column holds one dimension"
			}
			x, p := encode(*ct.elem, e)
			if p != "" {
				return nil, "has an element that " + p
			}
			out[i] = x
		}
		return out, ""
	}
	b := ct.base
	switch {
	case b == "Bool":
		return v.AsBool(), ""
	case b == "UInt8" && v.Kind() == schema.KindBool:
		if v.AsBool() {
			return uint8(1), ""
		}
		return uint8(0), ""
	case intRange[b] != [2]int64{}:
		r := intRange[b]
		var i int64
		switch v.Kind() {
		case schema.KindInt:
			i = v.AsInt()
		case schema.KindUint:
			if v.AsUint() > math.MaxInt64 {
				return nil, "is outside the range of " + b
			}
			i = int64(v.AsUint())
		default:
			return nil, "is a " + v.Kind().String() + ", not an integer"
		}
		if i < r[0] || i > r[1] {
			return nil, "is outside the range of " + b
		}
		switch b {
		case "Int8":
			return int8(i), ""
		case "Int16":
			return int16(i), ""
		case "Int32":
			return int32(i), ""
		}
		return i, ""
	case uintMax[b] != 0:
		var u uint64
		switch v.Kind() {
		case schema.KindUint:
			u = v.AsUint()
		case schema.KindInt:
			if v.AsInt() < 0 {
				return nil, "is negative; " + b + " holds none"
			}
			u = uint64(v.AsInt())
		default:
			return nil, "is a " + v.Kind().String() + ", not an integer"
		}
		if u > uintMax[b] {
			return nil, "is outside the range of " + b
		}
		switch b {
		case "UInt8":
			return uint8(u), ""
		case "UInt16":
			return uint16(u), ""
		case "UInt32":
			return uint32(u), ""
		}
		return u, ""
	case (b == "Float32" || b == "Float64") && v.Kind() != schema.KindFloat:
		return nil, "is a " + v.Kind().String() + ", not a float"
	case b == "Float32":
		return float32(v.AsFloat()), ""
	case b == "Float64":
		return v.AsFloat(), ""
	case strings.HasPrefix(b, "Decimal("):
		text := v.Text()
		switch v.Kind() {
		case schema.KindInt:
			text = strconv.FormatInt(v.AsInt(), 10)
		case schema.KindUint:
			text = strconv.FormatUint(v.AsUint(), 10)
		}
		if p := decimalProblem(text, ct.p, ct.s); p != "" {
			return nil, p
		}
		return text, ""
	case b == "UUID":
		return v.Text(), ""
	case (strings.HasPrefix(b, "DateTime64") || b == "Date32" || b == "Date") && !isTime(v.Kind()):
		// Postgres infinity, -infinity, BC dates and years past 9999 come as
		// their text: no date ClickHouse holds (AsTime would be the epoch)
		return nil, "is not a date or time ClickHouse holds (infinity, a BC date or a year past 9999)"
	case strings.HasPrefix(b, "DateTime64"):
		t := v.AsTime().UTC()
		if t.Before(dateTime64Min) || t.After(dateTime64Max) {
			return nil, "is outside the DateTime64 range the sink writes exactly (1900-01-01 to 2262-04-11 23:47:16.854775)"
		}
		return t, ""
	case b == "Date32" || b == "Date":
		t := v.AsTime().UTC()
		lo, hi := date32Min, date32Max
		if b == "Date" {
			lo, hi = dateMin, dateMax
		}
		if t.Before(lo) || t.After(hi) {
			return nil, fmt.Sprintf("is outside %s's range (%s to %s)", b, lo.Format("2006-01-02"), hi.Format("2006-01-02"))
		}
		return t, ""
	}
	// String (and JSON): the value's exact text
	return textOf(v), ""
}

// isTime reports whether k is a kind of instant, date or time of day.
func isTime(k schema.Kind) bool {
	switch k {
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		return true
	}
	return false
}

// textOf is a value's exact text for a String column.
func textOf(v schema.Value) string {
	switch v.Kind() {
	case schema.KindBytes:
		return string(v.AsBytes())
	case schema.KindTimestamp:
		return v.AsTime().UTC().Format("2006-01-02T15:04:05.999999Z")
	case schema.KindDateTime:
		return v.AsTime().Format("2006-01-02T15:04:05.999999")
	case schema.KindDate:
		return v.AsTime().Format("2006-01-02")
	case schema.KindTime:
		us := v.AsMicros()
		return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3600e6, us/60e6%60, us/1e6%60, us%1e6)
	case schema.KindInt:
		return strconv.FormatInt(v.AsInt(), 10)
	case schema.KindUint:
		return strconv.FormatUint(v.AsUint(), 10)
	case schema.KindFloat:
		return strconv.FormatFloat(v.AsFloat(), 'g', -1, 64)
	case schema.KindBool:
		return strconv.FormatBool(v.AsBool())
	case schema.KindArray:
		return string(v.AppendJSON(nil))
	}
	return v.Text()
}

// zero is the value a non-nullable column holds for a tombstone.
func zero(base string) any {
	switch {
	case base == "Bool":
		return false
	case base == "Int8":
		return int8(0)
	case base == "Int16":
		return int16(0)
	case base == "Int32":
		return int32(0)
	case base == "Int64":
		return int64(0)
	case base == "UInt8":
		return uint8(0)
	case base == "UInt16":
		return uint16(0)
	case base == "UInt32":
		return uint32(0)
	case base == "UInt64":
		return uint64(0)
	case base == "Float32":
		return float32(0)
	case base == "Float64":
		return float64(0)
	case strings.HasPrefix(base, "Decimal("):
		return "0"
	case base == "UUID":
		return "00000000-0000-0000-0000-000000000000"
	case strings.HasPrefix(base, "DateTime64"), base == "Date32":
		return date32Min
	case base == "Date":
		return dateMin
	}
	return ""
}

// decimalProblem checks text against Decimal(p,s): NaN and infinities do not
// exist in ClickHouse decimals, and digits beyond p-s or s would be lost.
func decimalProblem(text string, p, s int) string {
	switch strings.TrimLeft(text, "+-") {
	case "NaN", "Infinity", "inf", "Inf":
		return "is " + text + ", which Decimal cannot hold"
	}
	intDigits, fracDigits := schema.DecimalDigits(text)
	if intDigits > p-s {
		return fmt.Sprintf("has %d integer digits; Decimal(%d, %d) holds %d", intDigits, p, s, p-s)
	}
	if fracDigits > s {
		return fmt.Sprintf("has %d fraction digits; Decimal(%d, %d) holds %d", fracDigits, p, s, s)
	}
	return ""
}

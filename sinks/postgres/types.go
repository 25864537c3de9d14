package postgres

import (
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/schema"
)

// pgBuiltin lists the Postgres type names (pg_type.typname) a Postgres source
// reports that the sink recreates as they are, so that Postgres → Postgres keeps
// exact types. The value is the SQL spelling; typmods are added from the Type.
var pgBuiltin = map[string]string{
	"bool": "boolean", "int2": "smallint", "int4": "integer", "int8": "bigint",
	"float4": "real", "float8": "double precision", "numeric": "numeric",
	"text": "text", "varchar": "varchar", "bpchar": "char", "name": "name", "char": `"char"`,
	"bytea": "bytea", "date": "date", "timestamp": "timestamp", "timestamptz": "timestamptz",
	"time": "time", "timetz": "timetz", "interval": "interval",
	"json": "json", "jsonb": "jsonb", "uuid": "uuid", "xml": "xml",
	"inet": "inet", "cidr": "cidr", "macaddr": "macaddr", "macaddr8": "macaddr8", "money": "money",
	"bit": "varbit", "varbit": "varbit", // a bit(n) length is not in the schema: varbit holds any
	"point": "point", "line": "line", "lseg": "lseg", "box": "box", "path": "path", "polygon": "polygon", "circle": "circle",
	"tsvector": "tsvector", "tsquery": "tsquery", "oid": "oid", "pg_lsn": "pg_lsn",
	"int4range": "int4range", "int8range": "int8range", "numrange": "numrange",
	"tsrange": "tsrange", "tstzrange": "tstzrange", "daterange": "daterange",
	"int4multirange": "int4multirange", "int8multirange": "int8multirange", "nummultirange": "nummultirange",
	"tsmultirange": "tsmultirange", "tstzmultirange": "tstzmultirange", "datemultirange": "datemultirange",
}

// mysqlInts maps MySQL integer type names to the smallest Postgres integer that
// holds every value (unsigned ones one size up; BIGINT UNSIGNED needs numeric).
var mysqlInts = map[string]string{
	"tinyint": "smallint", "smallint": "smallint", "mediumint": "integer", "int": "integer", "integer": "integer", "bigint": "bigint",
	"tinyint unsigned": "smallint", "smallint unsigned": "integer", "mediumint unsigned": "integer", "int unsigned": "bigint",
	"integer unsigned": "bigint", "bigint unsigned": "numeric(20,0)", "year": "smallint",
}

// DestType returns the Postgres column type for a source column type. Every
// Type maps to something: what has no closer match is stored as text (the
// value's text form), never refused. docs/type-mappings.md has the table.
func DestType(t schema.Type) string {
	name := strings.ToLower(t.Name)
	if t.Kind == schema.KindArray {
		if t.Elem == nil {
			return "text[]"
		}
		return DestType(*t.Elem) + "[]"
	}
	if sql, ok := pgBuiltin[name]; ok && kindFits(t.Kind, name) {
		switch name {
		case "numeric":
			return numericType(t)
		case "char":
			if t.Length > 0 { // MySQL CHAR(n); Postgres's "char" has no length
				return fmt.Sprintf("varchar(%d)", t.Length)
			}
		case "varchar", "bpchar":
			if t.Length > 0 {
				return fmt.Sprintf("%s(%d)", sql, t.Length)
			}
			if name == "bpchar" {
				return "text" // bpchar without length is blank-padded text of any length
			}
		case "timestamp", "timestamptz", "time", "timetz":
			if t.Precision > 0 && t.Precision < 6 {
				return fmt.Sprintf("%s(%d)", sql, t.Precision)
			}
		}
		return sql
	}
	switch t.Kind {
	case schema.KindBool:
		return "boolean"
	case schema.KindInt:
		if sql, ok := mysqlInts[name]; ok {
			return sql
		}
		return "bigint"
	case schema.KindUint:
		if sql, ok := mysqlInts[name]; ok {
			return sql
		}
		return "numeric(20,0)"
	case schema.KindFloat:
		if name == "float" || name == "real" || name == "float unsigned" {
			return "real"
		}
		return "double precision"
	case schema.KindDecimal:
		return numericType(t)
	case schema.KindString:
		if (name == "varchar" || name == "char") && t.Length > 0 {
			return fmt.Sprintf("varchar(%d)", t.Length)
		}
		return "text"
	case schema.KindBytes:
		return "bytea"
	case schema.KindTimestamp:
		return "timestamptz"
	case schema.KindDateTime:
		return "timestamp"
	case schema.KindDate:
		return "date"
	case schema.KindTime:
		return "time"
	case schema.KindJSON:
		return "jsonb"
	}
	return "text" // KindUnknown and user-defined types (enums, domains, composites): their text form
}

// kindFits reports whether a builtin type name agrees with the value kind, so a
// MySQL "int" (not a Postgres name) or an odd report never picks a wrong type.
func kindFits(k schema.Kind, name string) bool {
	switch k {
	case schema.KindUnknown:
		return true
	case schema.KindString:
		switch name {
		case "text", "varchar", "bpchar", "name", "char", "uuid":
			return true
		}
		return false
	}
	switch name {
	case "bool":
		return k == schema.KindBool
	case "int2", "int4", "int8", "oid":
		return k == schema.KindInt
	case "float4", "float8":
		return k == schema.KindFloat
	case "numeric":
		return k == schema.KindDecimal
	case "bytea":
		return k == schema.KindBytes
	case "date":
		return k == schema.KindDate
	case "timestamp":
		return k == schema.KindDateTime
	case "timestamptz":
		return k == schema.KindTimestamp
	case "time":
		return k == schema.KindTime
	case "json", "jsonb":
		return k == schema.KindJSON
	}
	return false
}

func numericType(t schema.Type) string {
	switch {
	case t.Precision > 0 && t.Precision <= 1000:
		return fmt.Sprintf("numeric(%d,%d)", t.Precision, t.Scale)
	default:
		return "numeric"
	}
}

// colSpec is what the sink knows about a destination column's limits, read from
// the catalog: it decides whether a value can be stored exactly.
type colSpec struct {
	typname   string // pg_type.typname of the column (of the element for arrays)
	array     bool
	precision int // numeric(p,s), timestamp(p); 0: unconstrained
	scale     int
	length    int // varchar(n), char(n); 0: unbounded
}

// specFrom derives a colSpec from pg_type.typname and pg_attribute.atttypmod.
func specFrom(typname string, elem string, typmod int32) colSpec {
	s := colSpec{typname: typname}
	if elem != "" {
		s.typname, s.array = elem, true
	}
	if typmod >= 0 {
		switch s.typname {
		case "numeric":
			s.precision, s.scale = int((typmod-4)>>16&0xffff), int((typmod-4)&0xffff)
		case "varchar", "bpchar":
			s.length = int(typmod - 4)
		case "timestamp", "timestamptz", "time", "timetz":
			s.precision = int(typmod)
		}
	}
	return s
}

// problem returns why v cannot be stored exactly in a column of spec s, or "".
// It looks only at limits Postgres would enforce with an error or silently
// bend (rounding a numeric's extra scale): a kind that does not match the column
// at all is left for Postgres to reject with its own message.
func (s colSpec) problem(v schema.Value) string {
	switch v.Kind() {
	case schema.KindNull, schema.KindUnchanged:
		return ""
	case schema.KindArray:
		for _, e := range v.Elems() {
			if p := s.elemProblem(e); p != "" {
				return p
			}
		}
		return ""
	}
	if s.array {
		return ""
	}
	return s.elemProblem(v)
}

func (s colSpec) elemProblem(v schema.Value) string {
	if v.Kind() == schema.KindUnknown && s.typname == "time" && !timeOfDay(v.Text()) {
		// MySQL's TIME runs from -838:59:59 to 838:59:59 and comes as its text
		// when it is not a time of day; COPY would fail the whole batch
		return "is not a time of day (a MySQL TIME below 00:00 or past 24:00), which Postgres time does not hold"
	}
	switch v.Kind() {
	case schema.KindString, schema.KindJSON, schema.KindUnknown:
		t := v.Text()
		if strings.IndexByte(t, 0) >= 0 {
			return "contains a NUL byte, which Postgres text cannot hold"
		}
		if !utf8.ValidString(t) {
			return "is not valid UTF-8"
		}
		if s.length > 0 && utf8.RuneCountInString(t) > s.length && (s.typname == "varchar" || s.typname == "bpchar") {
			return fmt.Sprintf("is %d characters long, more than %s(%d) holds", utf8.RuneCountInString(t), s.typname, s.length)
		}
	case schema.KindInt, schema.KindUint, schema.KindDecimal, schema.KindFloat:
		return s.numberProblem(v)
	case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		if y := v.AsTime().Year(); y > 294276 || y < -4712 {
			return fmt.Sprintf("year %d is outside Postgres's range (4713 BC to 294276 AD)", y)
		}
	}
	return ""
}

// timeOfDay reports whether text is a time Postgres's time holds: 00:00:00
// to 24:00:00.
func timeOfDay(text string) bool {
	hms, frac, _ := strings.Cut(text, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 || strings.HasPrefix(text, "-") {
		return false
	}
	h, err := strconv.Atoi(parts[0])
	if err != nil || h > 24 {
		return false
	}
	return h < 24 || (parts[1] == "00" && parts[2] == "00" && strings.Trim(frac, "0") == "")
}

func (s colSpec) numberProblem(v schema.Value) string {
	var lo, hi int64
	switch s.typname {
	case "int2":
		lo, hi = math.MinInt16, math.MaxInt16
	case "int4":
		lo, hi = math.MinInt32, math.MaxInt32
	case "int8":
		lo, hi = math.MinInt64, math.MaxInt64
	case "numeric":
		return s.decimalProblem(v)
	default:
		return ""
	}
	switch v.Kind() {
	case schema.KindInt:
		if i := v.AsInt(); i < lo || i > hi {
			return fmt.Sprintf("is outside the range of %s", s.typname)
		}
	case schema.KindUint:
		if u := v.AsUint(); u > uint64(hi) {
			return fmt.Sprintf("is outside the range of %s", s.typname)
		}
	}
	return ""
}

// decimalProblem checks a number against numeric(p,s): at most p-s integer
// digits and s fraction digits (Postgres would round extra fraction digits
// away: not an exact copy). Unconstrained numeric holds every finite value, NaN
// and ±Infinity.
func (s colSpec) decimalProblem(v schema.Value) string {
	var text string
	switch v.Kind() {
	case schema.KindInt:
		text = strconv.FormatInt(v.AsInt(), 10)
	case schema.KindUint:
		text = strconv.FormatUint(v.AsUint(), 10)
	case schema.KindFloat:
		f := v.AsFloat()
		if math.IsNaN(f) {
			text = "NaN"
		} else if math.IsInf(f, 0) {
			text = "Infinity"
		} else {
			text = strconv.FormatFloat(f, 'f', -1, 64)
		}
	default:
		text = v.Text()
	}
	if s.precision == 0 {
		return ""
	}
	switch strings.TrimPrefix(text, "-") {
	case "NaN":
		return ""
	case "Infinity", "inf", "Inf":
		return fmt.Sprintf("is infinite; numeric(%d,%d) cannot hold it", s.precision, s.scale)
	}
	intDigits, fracDigits := schema.DecimalDigits(text)
	if intDigits > s.precision-s.scale {
		return fmt.Sprintf("has %d integer digits; numeric(%d,%d) holds %d", intDigits, s.precision, s.scale, s.precision-s.scale)
	}
	if fracDigits > s.scale {
		return fmt.Sprintf("has %d fraction digits; numeric(%d,%d) would round it to %d", fracDigits, s.precision, s.scale, s.scale)
	}
	return ""
}

// appendCopyText appends v in Postgres's COPY text format (escaped, \N for NULL).
func appendCopyText(dst []byte, v schema.Value) []byte {
	switch v.Kind() {
	case schema.KindNull, schema.KindUnchanged:
		return append(dst, `\N`...)
	case schema.KindArray:
		return appendCopyEscaped(dst, appendArrayLiteral(nil, v))
	case schema.KindBytes:
		dst = append(dst, `\\x`...)
		return hex.AppendEncode(dst, v.AsBytes())
	case schema.KindString, schema.KindJSON, schema.KindUnknown:
		return appendCopyEscapedString(dst, v.Text())
	}
	// the text forms of the other kinds hold nothing COPY escapes
	return appendText(dst, v)
}

// appendText appends v's text form as Postgres's input functions accept it.
func appendText(dst []byte, v schema.Value) []byte {
	switch v.Kind() {
	case schema.KindBool:
		if v.AsBool() {
			return append(dst, 't')
		}
		return append(dst, 'f')
	case schema.KindInt:
		return strconv.AppendInt(dst, v.AsInt(), 10)
	case schema.KindUint:
		return strconv.AppendUint(dst, v.AsUint(), 10)
	case schema.KindFloat:
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			return append(dst, "NaN"...)
		case math.IsInf(f, 1):
			return append(dst, "Infinity"...)
		case math.IsInf(f, -1):
			return append(dst, "-Infinity"...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case schema.KindTimestamp:
		return appendTimestamp(dst, v.AsTime().UTC(), true)
	case schema.KindDateTime:
		return appendTimestamp(dst, v.AsTime(), false)
	case schema.KindDate:
		return appendDate(dst, v.AsTime())
	case schema.KindTime:
		us := v.AsMicros()
		return fmt.Appendf(dst, "%02d:%02d:%02d.%06d", us/3600e6, us/60e6%60, us/1e6%60, us%1e6)
	case schema.KindBytes:
		dst = append(dst, `\x`...)
		return hex.AppendEncode(dst, v.AsBytes())
	case schema.KindArray:
		return appendArrayLiteral(dst, v)
	}
	return append(dst, v.Text()...) // string, decimal, json, unknown
}

// appendDate writes YYYY-MM-DD, with " BC" for years before 1 (Postgres has no
// year 0: astronomical year 0 is 1 BC).
func appendDate(dst []byte, t time.Time) []byte {
	y, bc := t.Year(), false
	if y <= 0 {
		y, bc = 1-y, true
	}
	dst = fmt.Appendf(dst, "%04d-%02d-%02d", y, int(t.Month()), t.Day())
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

func appendTimestamp(dst []byte, t time.Time, zone bool) []byte {
	y := t.Year()
	bc := y <= 0
	if bc {
		y = 1 - y // the date is written as a BC year; " BC" must follow the time
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(t.Month()), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, t.Day(), 2)
	dst = append(dst, ' ')
	dst = appendPadded(dst, t.Hour(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Minute(), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, t.Second(), 2)
	if ns := t.Nanosecond(); ns != 0 {
		dst = append(dst, '.')
		dst = appendPadded(dst, ns/1000, 6) // Postgres keeps microseconds
	}
	if zone {
		dst = append(dst, "+00"...)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst
}

// appendPadded appends n (≥ 0) in decimal with at least width digits.
func appendPadded(dst []byte, n, width int) []byte {
	var b [20]byte
	i := len(b)
	for n >= 10 || width > 1 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	i--
	b[i] = byte('0' + n)
	return append(dst, b[i:]...)
}

// appendArrayLiteral writes an array literal: {a,"b c",NULL,{1,2}}. Every
// element is double-quoted (with \ and " escaped) so that no element text can
// change the literal's structure.
func appendArrayLiteral(dst []byte, v schema.Value) []byte {
	dst = append(dst, '{')
	for i, e := range v.Elems() {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch e.Kind() {
		case schema.KindNull, schema.KindUnchanged:
			dst = append(dst, "NULL"...)
		case schema.KindArray:
			dst = appendArrayLiteral(dst, e)
		default:
			dst = append(dst, '"')
			for _, b := range appendText(nil, e) {
				if b == '"' || b == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, b)
			}
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

// appendCopyEscaped escapes text for COPY's text format.
func appendCopyEscaped(dst, text []byte) []byte {
	return appendCopyEscapedString(dst, string(text))
}

func appendCopyEscapedString(dst []byte, text string) []byte {
	for len(text) > 0 {
		i := strings.IndexAny(text, "\\\n\r\t")
		if i < 0 {
			return append(dst, text...)
		}
		dst = append(dst, text[:i]...)
		switch text[i] {
		case '\\':
			dst = append(dst, `\\`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		}
		text = text[i+1:]
	}
	return dst
}

package snowflake

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
)

// colType is a Snowflake column type as the sink creates and reads it.
type colType struct {
	base        string // NUMBER, FLOAT, TEXT, BINARY, BOOLEAN, DATE, TIME, TIMESTAMP_TZ, TIMESTAMP_NTZ, VARIANT, ARRAY
	prec, scale int    // NUMBER only
}

// Size limits of Snowflake values (the documented defaults).
const (
	maxText   = 16 << 20 // VARCHAR: 16 MiB
	maxBinary = 8 << 20  // BINARY: 8 MiB
)

// DestType maps a source type to its Snowflake column type (docs/type-mapping.md).
func DestType(t schema.Type) string { return destType(t).sql() }

func destType(t schema.Type) colType {
	switch t.Kind {
	case schema.KindBool:
		return colType{base: "BOOLEAN"}
	case schema.KindInt, schema.KindUint:
		return colType{base: "NUMBER", prec: 38}
	case schema.KindFloat:
		return colType{base: "FLOAT"}
	case schema.KindDecimal:
		if t.Precision >= 1 && t.Precision <= 38 && t.Scale >= 0 && t.Scale <= t.Precision {
			return colType{base: "NUMBER", prec: t.Precision, scale: t.Scale}
		}
		// unbounded or wider than NUMBER: kept exactly as text
		return colType{base: "TEXT"}
	case schema.KindBytes:
		return colType{base: "BINARY"}
	case schema.KindTimestamp:
		return colType{base: "TIMESTAMP_TZ"}
	case schema.KindDateTime:
		return colType{base: "TIMESTAMP_NTZ"}
	case schema.KindDate:
		return colType{base: "DATE"}
	case schema.KindTime:
		return colType{base: "TIME"}
	case schema.KindJSON:
		return colType{base: "VARIANT"}
	case schema.KindArray:
		return colType{base: "ARRAY"}
	}
	return colType{base: "TEXT"} // strings, enums, uuid, and types cdcd has no kind for, as text
}

func (c colType) sql() string {
	switch c.base {
	case "NUMBER":
		return fmt.Sprintf("NUMBER(%d,%d)", c.prec, c.scale)
	case "TEXT":
		return "VARCHAR"
	case "TIME":
		return "TIME(6)"
	case "TIMESTAMP_TZ", "TIMESTAMP_NTZ":
		return c.base + "(6)"
	}
	return c.base
}

// raw is the type of the column in the raw table: semi-structured values are
// loaded as JSON text and parsed in the MERGE.
func (c colType) raw() colType {
	if c.semi() {
		return colType{base: "TEXT"}
	}
	return c
}

func (c colType) semi() bool { return c.base == "VARIANT" || c.base == "ARRAY" || c.base == "OBJECT" }

// parseInfoType reads INFORMATION_SCHEMA.COLUMNS' DATA_TYPE (with precision and scale).
func parseInfoType(dataType string, prec, scale int) colType {
	b := strings.ToUpper(strings.TrimSpace(dataType))
	if i := strings.IndexByte(b, '('); i >= 0 {
		b = b[:i]
	}
	switch b {
	case "NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT", "FIXED":
		if prec == 0 {
			prec = 38
		}
		return colType{base: "NUMBER", prec: prec, scale: scale}
	case "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL":
		return colType{base: "FLOAT"}
	case "TEXT", "VARCHAR", "STRING", "CHAR", "CHARACTER":
		return colType{base: "TEXT"}
	case "BINARY", "VARBINARY":
		return colType{base: "BINARY"}
	case "BOOLEAN":
		return colType{base: "BOOLEAN"}
	case "DATE":
		return colType{base: "DATE"}
	case "TIME":
		return colType{base: "TIME"}
	case "TIMESTAMP_TZ", "TIMESTAMP_LTZ":
		return colType{base: "TIMESTAMP_TZ"}
	case "TIMESTAMP_NTZ", "TIMESTAMP", "DATETIME":
		return colType{base: "TIMESTAMP_NTZ"}
	case "VARIANT", "OBJECT", "ARRAY":
		return colType{base: b}
	}
	return colType{base: b}
}

// arrowType is the Parquet (Arrow) type a raw column is written as.
func (c colType) arrowType() arrow.DataType {
	switch c.base {
	case "NUMBER":
		return &arrow.Decimal128Type{Precision: int32(c.prec), Scale: int32(c.scale)}
	case "FLOAT":
		return arrow.PrimitiveTypes.Float64
	case "BINARY":
		return arrow.BinaryTypes.Binary
	case "BOOLEAN":
		return arrow.FixedWidthTypes.Boolean
	case "DATE":
		return arrow.FixedWidthTypes.Date32
	case "TIME":
		return arrow.FixedWidthTypes.Time64us
	case "TIMESTAMP_TZ":
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case "TIMESTAMP_NTZ":
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	return arrow.BinaryTypes.String
}

// appendValue appends v to the raw-table builder of a column of type c (for
// VARIANT, OBJECT and ARRAY a string builder: their JSON text, parsed in the
// MERGE). It returns why the column cannot hold v (never the value itself), or
// "". It takes the column's own type, not the raw one: the checks of
// semi-structured values need it (found by the type matrix: with the raw type
// an array's text with bounds reached PARSE_JSON and failed the MERGE).
func appendValue(b array.Builder, c colType, v schema.Value) string {
	if v.IsNull() {
		b.AppendNull()
		return ""
	}
	switch c.base {
	case "NUMBER":
		var n decimal128.Num
		var err error
		switch v.Kind() {
		case schema.KindInt:
			n = decimal128.FromI64(v.AsInt()).Mul(decimal128.GetScaleMultiplier(c.scale))
		case schema.KindUint:
			n = decimal128.FromU64(v.AsUint()).Mul(decimal128.GetScaleMultiplier(c.scale))
		case schema.KindDecimal:
			switch v.Text() {
			case "NaN", "Infinity", "-Infinity":
				return fmt.Sprintf("NUMBER(%d,%d) has no %s", c.prec, c.scale, v.Text())
			}
			n, err = decimal128.FromString(v.Text(), int32(c.prec), int32(c.scale))
			if err == nil && !exact(v.Text(), c.scale) {
				return fmt.Sprintf("the value has more than %d fractional digits for NUMBER(%d,%d)", c.scale, c.prec, c.scale)
			}
		case schema.KindBool:
			if v.AsBool() {
				n = decimal128.FromI64(1).Mul(decimal128.GetScaleMultiplier(c.scale))
			}
		default:
			return fmt.Sprintf("a %s value does not fit NUMBER", v.Kind())
		}
		if err != nil || !n.FitsInPrecision(int32(c.prec)) {
			return fmt.Sprintf("the value is out of range for NUMBER(%d,%d)", c.prec, c.scale)
		}
		b.(*array.Decimal128Builder).Append(n)
	case "FLOAT":
		switch v.Kind() {
		case schema.KindFloat:
			b.(*array.Float64Builder).Append(v.AsFloat())
		case schema.KindInt:
			b.(*array.Float64Builder).Append(float64(v.AsInt()))
		case schema.KindDecimal:
			f, err := strconv.ParseFloat(v.Text(), 64)
			if err != nil && !math.IsInf(f, 0) {
				return "not a number"
			}
			b.(*array.Float64Builder).Append(f)
		default:
			return fmt.Sprintf("a %s value does not fit FLOAT", v.Kind())
		}
	case "BOOLEAN":
		if v.Kind() != schema.KindBool {
			return fmt.Sprintf("a %s value does not fit BOOLEAN", v.Kind())
		}
		b.(*array.BooleanBuilder).Append(v.AsBool())
	case "BINARY":
		if v.Size() > maxBinary {
			return fmt.Sprintf("%d bytes exceed BINARY's 8 MiB", v.Size())
		}
		b.(*array.BinaryBuilder).Append(v.AsBytes())
	case "DATE":
		if v.Kind() != schema.KindDate && v.Kind() != schema.KindDateTime && v.Kind() != schema.KindTimestamp {
			return fmt.Sprintf("a %s value does not fit DATE", v.Kind())
		}
		t := v.AsTime()
		b.(*array.Date32Builder).Append(arrow.Date32(civilDays(t)))
	case "TIME":
		if v.Kind() != schema.KindTime {
			return fmt.Sprintf("a %s value does not fit TIME", v.Kind())
		}
		if us := v.AsMicros(); us < 0 || us >= 86400e6 {
			return "the time of day is outside 00:00:00 to 23:59:59.999999 (24:00:00 has no TIME)"
		}
		b.(*array.Time64Builder).Append(arrow.Time64(v.AsMicros()))
	case "TIMESTAMP_TZ", "TIMESTAMP_NTZ":
		switch v.Kind() {
		case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		default:
			return fmt.Sprintf("a %s value does not fit %s", v.Kind(), c.base)
		}
		t := v.AsTime()
		if t.Year() < 1 || t.Year() > 9999 {
			return fmt.Sprintf("year %d is outside %s's 1 to 9999", t.Year(), c.base)
		}
		b.(*array.TimestampBuilder).Append(arrow.Timestamp(t.UnixMicro()))
	default: // TEXT, and JSON text for VARIANT and ARRAY
		s := warehouse.Text(v)
		if len(s) > maxText {
			return fmt.Sprintf("%d bytes exceed VARCHAR's 16 MiB", len(s))
		}
		if c.semi() && v.Kind() != schema.KindJSON && v.Kind() != schema.KindArray {
			return fmt.Sprintf("a %s value does not fit %s", v.Kind(), c.base)
		}
		if c.semi() && v.Kind() == schema.KindJSON {
			// PARSE_JSON refuses duplicate keys; a number NUMBER(38) or
			// DOUBLE does not hold exactly would be rounded
			if p := warehouse.JSONProblem(s, warehouse.JSONRules{NoDuplicateKeys: true, IntDigits: 38}); p != "" {
				return p
			}
		}
		b.(*array.StringBuilder).Append(s)
	}
	return ""
}

// exact reports whether decimal text has at most scale fractional digits
// (ignoring trailing zeros), so that FromString did not round.
func exact(s string, scale int) bool {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		return true // exponent form: the source never sends it
	}
	_, frac, ok := strings.Cut(s, ".")
	if !ok {
		return true
	}
	return len(strings.TrimRight(frac, "0")) <= scale
}

// civilDays is the day number of t's calendar date since 1970-01-01 (a
// Duration would overflow beyond 292 years).
func civilDays(t time.Time) int32 {
	return int32(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

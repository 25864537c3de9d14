package bigquery

import (
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks/warehouse"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/descriptorpb"
)

// colType is a BigQuery column type (its GoogleSQL name). The sink creates
// unparameterized types, so a column is its base type.
type colType string

const (
	tBool       colType = "BOOL"
	tInt        colType = "INT64"
	tFloat      colType = "FLOAT64"
	tNumeric    colType = "NUMERIC"    // 38 digits, scale 9
	tBigNumeric colType = "BIGNUMERIC" // 76 digits, scale 38
	tString     colType = "STRING"
	tBytes      colType = "BYTES"
	tTimestamp  colType = "TIMESTAMP"
	tDateTime   colType = "DATETIME"
	tDate       colType = "DATE"
	tTime       colType = "TIME"
	tJSON       colType = "JSON"
)

// DestType maps a source type to its BigQuery column type (docs/type-mappings.md).
func DestType(t schema.Type) string { return string(destType(t)) }

func destType(t schema.Type) colType {
	switch t.Kind {
	case schema.KindBool:
		return tBool
	case schema.KindInt:
		return tInt
	case schema.KindUint:
		// 8- to 32-bit unsigned integers fit INT64; a 64-bit one needs NUMERIC
		n := strings.ToLower(t.Name)
		for _, p := range []string{"tinyint", "smallint", "mediumint", "int ", "int(", "year"} {
			if strings.HasPrefix(n, p) || n == "int" {
				return tInt
			}
		}
		return tNumeric
	case schema.KindFloat:
		return tFloat
	case schema.KindDecimal:
		p, s := t.Precision, t.Scale
		switch {
		case p < 1 || s < 0 || s > p:
			return tString // unbounded: kept exactly as text (NaN, any scale)
		case s <= 9 && p-s <= 29:
			return tNumeric
		case s <= 38 && p-s <= 38:
			return tBigNumeric
		}
		return tString
	case schema.KindBytes:
		return tBytes
	case schema.KindTimestamp:
		return tTimestamp
	case schema.KindDateTime:
		return tDateTime
	case schema.KindDate:
		return tDate
	case schema.KindTime:
		return tTime
	case schema.KindJSON, schema.KindArray:
		// arrays as JSON: a BigQuery ARRAY cannot hold a NULL element, and reads
		// a NULL array back as an empty one
		return tJSON
	}
	return tString // strings, enums, uuid, and types cdcd has no kind for, as text
}

// fieldType maps the REST API's schema type names to colType.
func fieldType(f *bigquery.FieldSchema) colType {
	switch f.Type {
	case bigquery.BooleanFieldType:
		return tBool
	case bigquery.IntegerFieldType:
		return tInt
	case bigquery.FloatFieldType:
		return tFloat
	case bigquery.NumericFieldType:
		return tNumeric
	case bigquery.BigNumericFieldType:
		return tBigNumeric
	case bigquery.BytesFieldType:
		return tBytes
	case bigquery.TimestampFieldType:
		return tTimestamp
	case bigquery.DateTimeFieldType:
		return tDateTime
	case bigquery.DateFieldType:
		return tDate
	case bigquery.TimeFieldType:
		return tTime
	case bigquery.JSONFieldType:
		return tJSON
	case bigquery.StringFieldType:
		return tString
	}
	return colType(f.Type) // RECORD, GEOGRAPHY, …: not one the sink writes
}

func (c colType) fieldType() bigquery.FieldType {
	switch c {
	case tBool:
		return bigquery.BooleanFieldType
	case tInt:
		return bigquery.IntegerFieldType
	case tFloat:
		return bigquery.FloatFieldType
	case tNumeric:
		return bigquery.NumericFieldType
	case tBigNumeric:
		return bigquery.BigNumericFieldType
	case tBytes:
		return bigquery.BytesFieldType
	case tTimestamp:
		return bigquery.TimestampFieldType
	case tDateTime:
		return bigquery.DateTimeFieldType
	case tDate:
		return bigquery.DateFieldType
	case tTime:
		return bigquery.TimeFieldType
	case tJSON:
		return bigquery.JSONFieldType
	}
	return bigquery.StringFieldType
}

// wire is the raw table's type for a column of type c: what the Storage Write
// API takes as a plain protobuf scalar everywhere. The staging query turns it
// into c (expr).
func (c colType) wire() colType {
	switch c {
	case tBool, tInt, tFloat, tBytes:
		return c
	case tTimestamp:
		return tInt // microseconds since the epoch
	}
	return tString
}

// expr converts raw column r (of type c.wire()) to c in the staging query.
func (c colType) expr(r string) string {
	switch c {
	case tNumeric, tBigNumeric, tDateTime, tDate, tTime:
		return fmt.Sprintf("CAST(%s AS %s)", r, c)
	case tTimestamp:
		return "TIMESTAMP_MICROS(" + r + ")"
	case tJSON:
		return "PARSE_JSON(" + r + ")"
	}
	return r
}

func (c colType) protoType() descriptorpb.FieldDescriptorProto_Type {
	switch c {
	case tBool:
		return descriptorpb.FieldDescriptorProto_TYPE_BOOL
	case tInt:
		return descriptorpb.FieldDescriptorProto_TYPE_INT64
	case tFloat:
		return descriptorpb.FieldDescriptorProto_TYPE_DOUBLE
	case tBytes:
		return descriptorpb.FieldDescriptorProto_TYPE_BYTES
	}
	return descriptorpb.FieldDescriptorProto_TYPE_STRING
}

// widens reports whether BigQuery changes a column of type from to type to in
// place (ALTER COLUMN SET DATA TYPE: a coercible widening).
func widens(from, to colType) bool {
	switch from {
	case tInt:
		return to == tNumeric || to == tBigNumeric || to == tFloat
	case tNumeric:
		return to == tBigNumeric || to == tFloat
	case tBigNumeric:
		return to == tFloat
	}
	return false
}

// Limits of BigQuery values.
var (
	numericMax    = new(big.Int).Exp(big.NewInt(10), big.NewInt(29), nil) // integer part of NUMERIC
	bigNumericMax = new(big.Int).Exp(big.NewInt(10), big.NewInt(38), nil) // of BIGNUMERIC
	minTime       = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime       = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// appendValue appends v as protobuf field num of a raw column of type c (whose
// wire type is c.wire()). It returns why the column cannot hold v (never the
// value itself), or "". maxSize caps one value's bytes.
func appendValue(b []byte, num protowire.Number, c colType, v schema.Value, maxSize int) ([]byte, string) {
	if v.IsNull() {
		return b, "" // an absent field is NULL
	}
	switch c {
	case tBool:
		if v.Kind() != schema.KindBool {
			return b, fmt.Sprintf("a %s value does not fit BOOL", v.Kind())
		}
		return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), protowire.EncodeBool(v.AsBool())), ""
	case tInt:
		var i int64
		switch v.Kind() {
		case schema.KindInt:
			i = v.AsInt()
		case schema.KindUint:
			if v.AsUint() > math.MaxInt64 {
				return b, "the value is out of range for INT64"
			}
			i = int64(v.AsUint())
		default:
			return b, fmt.Sprintf("a %s value does not fit INT64", v.Kind())
		}
		return appendInt(b, num, i), ""
	case tFloat:
		var f float64
		switch v.Kind() {
		case schema.KindFloat:
			f = v.AsFloat()
		case schema.KindInt:
			f = float64(v.AsInt())
		case schema.KindUint:
			f = float64(v.AsUint())
		default:
			return b, fmt.Sprintf("a %s value does not fit FLOAT64", v.Kind())
		}
		return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), math.Float64bits(f)), ""
	case tNumeric, tBigNumeric:
		text, problem := decimalText(c, v)
		if problem != "" {
			return b, problem
		}
		return appendString(b, num, text), ""
	case tBytes:
		if v.Kind() != schema.KindBytes {
			return b, fmt.Sprintf("a %s value does not fit BYTES", v.Kind())
		}
		if v.Size() > maxSize {
			return b, fmt.Sprintf("%d bytes exceed one Storage Write API request (request_bytes)", v.Size())
		}
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v.AsBytes()), ""
	case tTimestamp, tDateTime, tDate:
		switch v.Kind() {
		case schema.KindTimestamp, schema.KindDateTime, schema.KindDate:
		default:
			return b, fmt.Sprintf("a %s value does not fit %s", v.Kind(), c)
		}
		t := v.AsTime().UTC()
		if t.Before(minTime) || !t.Before(maxTime) {
			return b, fmt.Sprintf("year %d is outside %s's 1 to 9999", v.AsTime().Year(), c)
		}
		switch c {
		case tTimestamp:
			return appendInt(b, num, t.UnixMicro()), ""
		case tDateTime:
			return appendString(b, num, t.Format("2006-01-02 15:04:05.999999")), ""
		}
		return appendString(b, num, t.Format("2006-01-02")), ""
	case tTime:
		if v.Kind() != schema.KindTime {
			return b, fmt.Sprintf("a %s value does not fit TIME", v.Kind())
		}
		us := v.AsMicros()
		if us < 0 || us >= 86400e6 {
			return b, "the time of day is outside 00:00:00 to 23:59:59.999999 (24:00:00 has no TIME)"
		}
		return appendString(b, num, time.UnixMicro(us).UTC().Format("15:04:05.999999")), ""
	}
	// STRING, and the JSON text of JSON columns
	s := warehouse.Text(v)
	if len(s) > maxSize {
		return b, fmt.Sprintf("%d bytes exceed one Storage Write API request (request_bytes)", len(s))
	}
	if c == tJSON && v.Kind() != schema.KindJSON && v.Kind() != schema.KindArray {
		return b, fmt.Sprintf("a %s value does not fit JSON", v.Kind())
	}
	if c == tJSON {
		// PARSE_JSON (wide_number_mode 'exact') refuses a number INT64,
		// UINT64 or FLOAT64 does not hold exactly, and would stop every batch
		if p := warehouse.JSONProblem(s, warehouse.JSONRules{}); p != "" {
			return b, p
		}
	}
	return appendString(b, num, s), ""
}

func appendInt(b []byte, num protowire.Number, i int64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), uint64(i))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// decimalText renders v for a NUMERIC or BIGNUMERIC column, or says why the
// column cannot hold it exactly.
func decimalText(c colType, v schema.Value) (string, string) {
	var text string
	switch v.Kind() {
	case schema.KindInt, schema.KindUint:
		text = v.String()
	case schema.KindDecimal:
		text = v.Text()
	default:
		return "", fmt.Sprintf("a %s value does not fit %s", v.Kind(), c)
	}
	switch text {
	case "NaN", "Infinity", "-Infinity":
		return "", fmt.Sprintf("%s has no %s", c, text)
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return "", fmt.Sprintf("not a number for %s", c)
	}
	limit, scale := numericMax, 9
	if c == tBigNumeric {
		limit, scale = bigNumericMax, 38
	}
	if _, frac, ok := strings.Cut(text, "."); ok && len(strings.TrimRight(frac, "0")) > scale {
		return "", fmt.Sprintf("the value has more than %d fractional digits for %s", scale, c)
	}
	ip := new(big.Int).Quo(r.Num(), r.Denom())
	if ip.CmpAbs(limit) >= 0 {
		return "", fmt.Sprintf("the value is out of range for %s", c)
	}
	return text, ""
}

package schema

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a Value. The set is closed: sources map every wire type to
// one of these (the long tail to KindUnknown with its type name), and sinks map
// each kind to a destination type.
type Kind uint8

// The Value kinds.
const (
	KindNull      Kind = iota // SQL NULL
	KindBool                  // bool
	KindInt                   // int64
	KindUint                  // uint64 (MySQL unsigned BIGINT)
	KindFloat                 // float64 (real, double); NaN and ±Inf allowed
	KindString                // UTF-8 text
	KindBytes                 // binary
	KindTimestamp             // an instant (timestamptz, MySQL TIMESTAMP), kept in UTC
	KindDateTime              // a wall-clock date-time without zone (timestamp, DATETIME)
	KindDate                  // a calendar date
	KindTime                  // a time of day, microsecond precision
	KindDecimal               // an exact decimal, as text; "NaN", "Infinity", "-Infinity" allowed
	KindJSON                  // a JSON document, as text
	KindArray                 // a list of Values
	KindUnknown               // a value of a type cdcd has no kind for: type name and text
	KindUnchanged             // marker: the source did not send this column (unchanged TOAST); keep the stored value
)

var kindNames = [...]string{"null", "bool", "int", "uint", "float", "string", "bytes", "timestamp", "datetime", "date", "time", "decimal", "json", "array", "unknown", "unchanged"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the Kind named s (as printed by Kind.String).
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown value kind %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	*k = v
	return err
}

// Value is one column value. The zero Value is NULL. Values are immutable: the
// accessors return copies or strings, never shared mutable memory.
type Value struct {
	k Kind
	n uint64  // bool, int, uint, float bits, unix seconds, days since epoch, time-of-day micros
	m int32   // nanoseconds of a timestamp
	s string  // string, bytes, decimal, json, unknown text
	t string  // unknown: type name
	a []Value // array elements
}

// Null returns the NULL value.
func Null() Value { return Value{} }

// Unchanged returns the marker for a column the source did not send.
func Unchanged() Value { return Value{k: KindUnchanged} }

// Bool returns a bool value.
func Bool(b bool) Value {
	v := Value{k: KindBool}
	if b {
		v.n = 1
	}
	return v
}

// Int returns an int64 value.
func Int(i int64) Value { return Value{k: KindInt, n: uint64(i)} }

// Uint returns a uint64 value.
func Uint(u uint64) Value { return Value{k: KindUint, n: u} }

// Float returns a float64 value.
func Float(f float64) Value { return Value{k: KindFloat, n: math.Float64bits(f)} }

// String returns a text value.
func String(s string) Value { return Value{k: KindString, s: s} }

// Bytes returns a binary value; b is copied.
func Bytes(b []byte) Value { return Value{k: KindBytes, s: string(b)} }

// Timestamp returns an instant; it is kept in UTC.
func Timestamp(t time.Time) Value {
	return Value{k: KindTimestamp, n: uint64(t.Unix()), m: int32(t.Nanosecond())}
}

// DateTime returns a wall-clock date-time without zone; t's location is ignored and
// its wall-clock fields are kept.
func DateTime(t time.Time) Value {
	u := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	return Value{k: KindDateTime, n: uint64(u.Unix()), m: int32(u.Nanosecond())}
}

// Date returns a calendar date.
func Date(year int, month time.Month, day int) Value {
	d := time.Date(year, month, day, 0, 0, 0, 0, time.UTC)
	return Value{k: KindDate, n: uint64(d.Unix() / 86400)}
}

// TimeOfDay returns a time of day, in microseconds since midnight (0 ≤ micros ≤ 24h).
func TimeOfDay(micros int64) Value { return Value{k: KindTime, n: uint64(micros)} }

// isDecimal reports whether s matches [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?
// (a hand-written scanner: every numeric value of every source passes through it).
func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// ErrBadDecimal is returned by Decimal for text that is not a decimal number.
var ErrBadDecimal = errors.New("not a decimal number")

// Decimal returns an exact decimal from its text ("-12.3400", "1e5", "NaN",
// "Infinity", "-Infinity"). The text is kept as given.
func Decimal(text string) (Value, error) {
	switch text {
	case "NaN", "Infinity", "-Infinity":
		return Value{k: KindDecimal, s: text}, nil
	}
	if !isDecimal(text) {
		return Value{}, fmt.Errorf("%w: %q", ErrBadDecimal, text)
	}
	return Value{k: KindDecimal, s: text}, nil
}

// MustDecimal is Decimal for constants in tests and generators; it panics on bad text.
func MustDecimal(text string) Value {
	v, err := Decimal(text)
	if err != nil {
		panic(err)
	}
	return v
}

// JSON returns a JSON document from its text. The caller guarantees the text is
// valid JSON (sources get it from the database); sinks that embed it check again.
func JSON(text string) Value { return Value{k: KindJSON, s: text} }

// Array returns a list value; elems is copied.
func Array(elems ...Value) Value { return Value{k: KindArray, a: append([]Value(nil), elems...)} }

// Unknown returns a value of a source type cdcd has no kind for, as the source's
// text form and type name (e.g. "interval", "1 day 02:00:00").
func Unknown(typeName, text string) Value { return Value{k: KindUnknown, t: typeName, s: text} }

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.k }

// IsNull reports whether v is NULL.
func (v Value) IsNull() bool { return v.k == KindNull }

// AsBool returns the bool of a KindBool value.
func (v Value) AsBool() bool { return v.n != 0 }

// AsInt returns the int64 of a KindInt value.
func (v Value) AsInt() int64 { return int64(v.n) }

// AsUint returns the uint64 of a KindUint value.
func (v Value) AsUint() uint64 { return v.n }

// AsFloat returns the float64 of a KindFloat value.
func (v Value) AsFloat() float64 { return math.Float64frombits(v.n) }

// Text returns the text of a string, decimal, JSON or unknown value, and the raw
// bytes as a string for a bytes value.
func (v Value) Text() string { return v.s }

// AsBytes returns a copy of the bytes of a KindBytes value.
func (v Value) AsBytes() []byte { return []byte(v.s) }

// AsTime returns the instant of a timestamp, the wall clock of a datetime (in UTC)
// or midnight UTC of a date.
func (v Value) AsTime() time.Time {
	switch v.k {
	case KindDate:
		return time.Unix(int64(v.n)*86400, 0).UTC()
	default:
		return time.Unix(int64(v.n), int64(v.m)).UTC()
	}
}

// AsMicros returns the microseconds since midnight of a KindTime value.
func (v Value) AsMicros() int64 { return int64(v.n) }

// TypeName returns the source type name of a KindUnknown value.
func (v Value) TypeName() string { return v.t }

// Elems returns a copy of the elements of an array value.
func (v Value) Elems() []Value { return append([]Value(nil), v.a...) }

// Size estimates the memory v holds, in bytes; batching uses it for max_bytes.
func (v Value) Size() int {
	n := 48 + len(v.s) + len(v.t)
	for _, e := range v.a {
		n += e.Size()
	}
	return n
}

// Equal reports whether v and w are the same value (floats compare by bits, so a
// NaN equals itself).
func (v Value) Equal(w Value) bool {
	if v.k != w.k || v.n != w.n || v.m != w.m || v.s != w.s || v.t != w.t || len(v.a) != len(w.a) {
		return false
	}
	for i := range v.a {
		if !v.a[i].Equal(w.a[i]) {
			return false
		}
	}
	return true
}

// String renders v for debugging. Never log row values above Debug.
func (v Value) String() string {
	b, err := v.MarshalJSON()
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// MarshalJSON renders v as natural JSON: numbers as numbers (64-bit integers
// included), decimals as strings (exact), bytes as base64, timestamps as RFC 3339
// in UTC, dates as 2006-01-02, times as 15:04:05.999999, JSON inline when it is
// valid, NaN and infinities as strings, the unchanged marker as {"$unchanged":true}.
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// AppendJSON appends the JSON form of v (see MarshalJSON) to dst.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.k {
	case KindNull:
		return append(dst, "null"...)
	case KindBool:
		return strconv.AppendBool(dst, v.AsBool())
	case KindInt:
		return strconv.AppendInt(dst, v.AsInt(), 10)
	case KindUint:
		return strconv.AppendUint(dst, v.n, 10)
	case KindFloat:
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			return append(dst, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(dst, `"Infinity"`...)
		case math.IsInf(f, -1):
			return append(dst, `"-Infinity"`...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case KindString, KindDecimal, KindUnknown:
		return appendJSONString(dst, v.s)
	case KindBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, []byte(v.s))
		return append(dst, '"')
	case KindTimestamp:
		dst = append(dst, '"')
		dst = v.AsTime().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case KindDateTime:
		dst = append(dst, '"')
		dst = v.AsTime().AppendFormat(dst, "2006-01-02T15:04:05.999999999")
		return append(dst, '"')
	case KindDate:
		dst = append(dst, '"')
		dst = v.AsTime().AppendFormat(dst, "2006-01-02")
		return append(dst, '"')
	case KindTime:
		us := v.AsMicros()
		s := fmt.Sprintf("%02d:%02d:%02d", us/3600e6, us/60e6%60, us/1e6%60)
		if frac := us % 1e6; frac != 0 {
			s += "." + string(bytes.TrimRight([]byte(fmt.Sprintf("%06d", frac)), "0"))
		}
		return appendJSONString(dst, s)
	case KindJSON:
		if json.Valid([]byte(v.s)) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, []byte(v.s)); err == nil {
				return append(dst, buf.Bytes()...)
			}
		}
		return appendJSONString(dst, v.s)
	case KindArray:
		dst = append(dst, '[')
		for i, e := range v.a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.AppendJSON(dst)
		}
		return append(dst, ']')
	case KindUnchanged:
		return append(dst, `{"$unchanged":true}`...)
	}
	return append(dst, "null"...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // cannot fail for a string
	return append(dst, b...)
}

// DecimalDigits counts the significant integer digits and the fraction digits
// (without trailing zeros) of a plain or exponent decimal text, e.g. 3 and 2 for
// "-123.450", 4 and 0 for "1.5e3": what a destination's precision and scale must
// hold for the value to be stored exactly.
func DecimalDigits(text string) (intDigits, fracDigits int) {
	text = strings.TrimLeft(text, "+-")
	exp := 0
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		exp, _ = strconv.Atoi(text[i+1:])
		text = text[:i]
	}
	ip, fp, _ := strings.Cut(text, ".")
	digits := strings.TrimLeft(ip+fp, "0")
	point := len(ip) + exp // the decimal point's place within ip+fp
	lead := len(ip+fp) - len(digits)
	digits = strings.TrimRight(digits, "0")
	if digits == "" {
		return 0, 0
	}
	return max(point-lead, 0), max(lead+len(digits)-point, 0)
}

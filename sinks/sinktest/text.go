package sinktest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
)

// ParseText turns a destination's text rendering of a scalar value (what a
// harness selects as text) back into a Value of the column's kind, so that
// State can be compared with what was written. It accepts the renderings the
// harnesses meet: booleans as t/true/1, bytes as hex with or without \x,
// timestamps with a space or a T and with or without a zone, decimals with
// trailing zeros dropped (the column's scale is written back). Arrays are the
// harness's business: it calls ParseText per element.
//
// A text the column's kind cannot read (a destination that took a value of
// another kind in that column: a Postgres 'infinity' date, an array with
// bounds) reads as an unknown value of the column's type name, which compares
// equal only to the same text the source carried.
func ParseText(typ schema.Type, s string) (schema.Value, error) {
	v, err := parseText(typ, s)
	if err != nil {
		return schema.Unknown(typ.Name, s), nil
	}
	return v, nil
}

func parseText(typ schema.Type, s string) (schema.Value, error) {
	switch typ.Kind {
	case schema.KindBool:
		return schema.Bool(s == "t" || s == "true" || s == "1"), nil
	case schema.KindInt:
		i, err := strconv.ParseInt(s, 10, 64)
		return schema.Int(i), err
	case schema.KindUint:
		u, err := strconv.ParseUint(s, 10, 64)
		return schema.Uint(u), err
	case schema.KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if typ.Name == "float4" || typ.Name == "float" {
			// single precision, as sources carry it: the shortest decimal
			// that round-trips it
			f, _ = strconv.ParseFloat(strconv.FormatFloat(float64(float32(f)), 'g', -1, 32), 64)
		}
		if math.IsNaN(f) {
			f = math.NaN()
		}
		return schema.Float(f), err
	case schema.KindDecimal:
		if typ.Precision > 0 && typ.Scale > 0 && s != "NaN" {
			ip, fp, _ := strings.Cut(s, ".")
			for len(fp) < typ.Scale {
				fp += "0"
			}
			s = ip + "." + fp
		}
		return schema.Decimal(s)
	case schema.KindString:
		return schema.String(s), nil
	case schema.KindBytes:
		b, err := hex.DecodeString(strings.TrimPrefix(s, `\x`))
		return schema.Bytes(b), err
	case schema.KindTimestamp, schema.KindDateTime:
		var ts time.Time
		var err error
		for _, layout := range []string{"2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999", "2006-01-02T15:04:05.999999Z07:00", "2006-01-02T15:04:05.999999"} {
			if ts, err = time.Parse(layout, s); err == nil {
				break
			}
		}
		if typ.Kind == schema.KindTimestamp {
			return schema.Timestamp(ts), err
		}
		return schema.DateTime(ts), err
	case schema.KindDate:
		d, err := time.Parse("2006-01-02", s)
		return schema.Date(d.Year(), d.Month(), d.Day()), err
	case schema.KindTime:
		if s == "24:00:00" || s == "24:00:00.000000" {
			return schema.TimeOfDay(24 * 3600e6), nil
		}
		tt, err := time.Parse("15:04:05.999999", s)
		return schema.TimeOfDay(int64(tt.Hour())*3600e6 + int64(tt.Minute())*60e6 + int64(tt.Second())*1e6 + int64(tt.Nanosecond()/1000)), err
	case schema.KindJSON:
		return schema.JSON(s), nil
	}
	return schema.Unknown(typ.Name, s), nil
}

// ParseJSONArray turns a destination's JSON rendering of an array (what a
// harness selects for an array column stored as JSON or as a JSON-rendered
// ARRAY) back into an Array of typ's element kind: null elements are NULL,
// string elements are read with ParseText, other elements from their JSON text.
func ParseJSONArray(typ schema.Type, s string) (schema.Value, error) {
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(s), &elems); err != nil {
		return schema.Null(), fmt.Errorf("array %q: %w", s, err)
	}
	out := make([]schema.Value, 0, len(elems))
	for _, e := range elems {
		if string(e) == "null" {
			out = append(out, schema.Null())
			continue
		}
		if strings.HasPrefix(string(e), "[") { // a dimension of a multi-dimensional array
			v, err := ParseJSONArray(typ, string(e))
			if err != nil {
				return schema.Null(), err
			}
			out = append(out, v)
			continue
		}
		text := string(e)
		if strings.HasPrefix(text, `"`) {
			if err := json.Unmarshal(e, &text); err != nil {
				return schema.Null(), err
			}
		}
		if typ.Elem.Kind == schema.KindBytes { // base64 in a JSON array
			b, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return schema.Null(), fmt.Errorf("array %q: bytes element: %w", s, err)
			}
			out = append(out, schema.Bytes(b))
			continue
		}
		v, err := ParseText(*typ.Elem, text)
		if err != nil {
			return schema.Null(), err
		}
		out = append(out, v)
	}
	return schema.Array(out...), nil
}

// ParseArrayLiteral reads a Postgres array's text form ({a,"b c",NULL},
// nested braces for more dimensions, backslash escapes in quoted elements)
// into an Array of typ's element kind, each element read with ParseText. An
// unquoted NULL (any case) is NULL; a quoted "NULL" is the text. A literal
// with explicit bounds ([0:2]={…}) reads as an unknown value of typ's name.
func ParseArrayLiteral(typ schema.Type, s string) (schema.Value, error) {
	if strings.HasPrefix(s, "[") {
		return schema.Unknown(typ.Name, s), nil
	}
	p := &arrayLiteral{s: s}
	v, err := p.parse(typ)
	if err == nil && p.i != len(s) {
		err = fmt.Errorf("array %q: text after position %d", s, p.i)
	}
	return v, err
}

type arrayLiteral struct {
	s string
	i int
}

func (p *arrayLiteral) parse(typ schema.Type) (schema.Value, error) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return schema.Null(), fmt.Errorf("array %q: want { at %d", p.s, p.i)
	}
	p.i++
	var out []schema.Value
	for p.i < len(p.s) && p.s[p.i] != '}' {
		switch c := p.s[p.i]; {
		case c == '{':
			v, err := p.parse(typ)
			if err != nil {
				return schema.Null(), err
			}
			out = append(out, v)
		case c == '"':
			var b strings.Builder
			p.i++
			for p.i < len(p.s) && p.s[p.i] != '"' {
				if p.s[p.i] == '\\' && p.i+1 < len(p.s) {
					p.i++
				}
				b.WriteByte(p.s[p.i])
				p.i++
			}
			p.i++ // the closing quote
			v, err := ParseText(*typ.Elem, b.String())
			if err != nil {
				return schema.Null(), err
			}
			out = append(out, v)
		default:
			j := p.i
			for j < len(p.s) && p.s[j] != ',' && p.s[j] != '}' {
				j++
			}
			text := p.s[p.i:j]
			p.i = j
			v := schema.Null()
			if !strings.EqualFold(text, "NULL") {
				var err error
				if v, err = ParseText(*typ.Elem, text); err != nil {
					return schema.Null(), err
				}
			}
			out = append(out, v)
		}
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
		}
	}
	if p.i >= len(p.s) {
		return schema.Null(), fmt.Errorf("array %q: unterminated", p.s)
	}
	p.i++
	return schema.Array(out...), nil
}

// ParseJSON reads a value of typ from its JSON form (schema.Value.AppendJSON:
// what the file sink writes): numbers for integers and floats ("NaN" and the
// infinities as strings), decimals, times and unknown values as strings,
// bytes in base64, JSON inline, arrays element by element. A string the
// column's kind cannot read is an unknown value of the column's type name, as
// in ParseText.
func ParseJSON(typ schema.Type, raw json.RawMessage) (schema.Value, error) {
	text := string(raw)
	if text == "null" {
		return schema.Null(), nil
	}
	var str string
	isString := strings.HasPrefix(text, `"`)
	if isString {
		if err := json.Unmarshal(raw, &str); err != nil {
			return schema.Null(), err
		}
	}
	switch typ.Kind {
	case schema.KindJSON: // inline: sources only carry valid JSON
		return schema.JSON(text), nil
	case schema.KindArray:
		if isString {
			return schema.Unknown(typ.Name, str), nil
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return schema.Null(), err
		}
		out := make([]schema.Value, len(elems))
		for i, e := range elems {
			et := *typ.Elem
			if strings.HasPrefix(string(e), "[") {
				et = typ // a dimension of a multi-dimensional array
			}
			v, err := ParseJSON(et, e)
			if err != nil {
				return schema.Null(), err
			}
			out[i] = v
		}
		return schema.Array(out...), nil
	case schema.KindBool:
		return schema.Bool(text == "true"), nil
	case schema.KindInt:
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return schema.Int(i), nil
		}
	case schema.KindUint:
		if u, err := strconv.ParseUint(text, 10, 64); err == nil {
			return schema.Uint(u), nil
		}
	case schema.KindFloat:
		if isString {
			text = str // NaN, Infinity, -Infinity
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return schema.Float(f), nil
		}
	case schema.KindDecimal:
		if v, err := schema.Decimal(str); err == nil {
			return v, nil
		}
	case schema.KindString:
		return schema.String(str), nil
	case schema.KindBytes:
		if b, err := base64.StdEncoding.DecodeString(str); err == nil {
			return schema.Bytes(b), nil
		}
	case schema.KindTimestamp:
		if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
			return schema.Timestamp(t), nil
		}
	case schema.KindDateTime:
		if t, err := time.Parse("2006-01-02T15:04:05.999999999", str); err == nil {
			return schema.DateTime(t), nil
		}
	case schema.KindDate:
		if t, err := time.Parse("2006-01-02", str); err == nil {
			return schema.Date(t.Year(), t.Month(), t.Day()), nil
		}
	case schema.KindTime:
		return ParseText(typ, str)
	}
	if isString {
		return schema.Unknown(typ.Name, str), nil
	}
	return schema.Unknown(typ.Name, text), nil
}

// CanonicalJSON renders a JSON text so that two texts of the same JSON value
// render the same: object members sorted (duplicates kept), numbers as exact
// rationals (1e400, 1.0000000000000000000001 and 1.50 = 1.5 are all kept
// apart from their neighbours), strings with one escaping. false when the
// text is not JSON.
func CanonicalJSON(text string) (string, bool) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var b strings.Builder
	if err := canonical(dec, &b); err != nil {
		return "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", false
	}
	return b.String(), true
}

func canonical(dec *json.Decoder, b *strings.Builder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := canonical(dec, b); err != nil {
					return err
				}
			}
			b.WriteByte(']')
		case '{':
			var members []string
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				kb, _ := json.Marshal(k)
				var v strings.Builder
				if err := canonical(dec, &v); err != nil {
					return err
				}
				members = append(members, string(kb)+":"+v.String())
			}
			slices.Sort(members)
			b.WriteString("{" + strings.Join(members, ",") + "}")
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case json.Number:
		r, ok := new(big.Rat).SetString(string(t))
		if !ok {
			return fmt.Errorf("number %s", t)
		}
		b.WriteString(r.RatString())
	case string:
		sb, _ := json.Marshal(t)
		b.Write(sb)
	case bool:
		fmt.Fprint(b, t)
	case nil:
		b.WriteString("null")
	}
	return nil
}

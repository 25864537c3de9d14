package mysql

import (
	"math/big"
	"strconv"
	"strings"

	"github.com/cdcd-dev/cdcd/schema"
)

// existing turns what an ADD COLUMN said about the rows already in the table
// into the value they hold in column c (as the binlog would carry it), or why
// it cannot be known. nil is NULL.
func (d decoder) existing(c *colInfo, f fillSpec) (*schema.Existing, error) {
	switch {
	case f.Unknown != "":
		return &schema.Existing{Unknown: f.Unknown}, nil
	case f.Implicit:
		return d.implicit(c)
	case f.Literal == nil:
		return nil, nil
	}
	l := f.Literal
	unknown := func(why string) (*schema.Existing, error) {
		return &schema.Existing{Unknown: "its DEFAULT " + why}, nil
	}
	var v schema.Value
	var err error
	switch c.typ.Kind {
	case schema.KindInt, schema.KindUint:
		n, ok := l.integer()
		if !ok {
			return unknown("is not a whole number the server stores as it is written")
		}
		if c.typ.Kind == schema.KindUint {
			if n.Sign() < 0 || !n.IsUint64() {
				return unknown("is out of the column's range")
			}
			return &schema.Existing{Value: schema.Uint(n.Uint64())}, nil
		}
		if !n.IsInt64() {
			return unknown("is out of the column's range")
		}
		return &schema.Existing{Value: schema.Int(n.Int64())}, nil
	case schema.KindFloat:
		if !l.Number {
			return unknown("is not a number")
		}
		x, perr := strconv.ParseFloat(string(l.Bytes), 64)
		if perr != nil {
			return unknown("is not a number")
		}
		if c.dataType == "float" {
			// single precision, read back as the shortest decimal (as the binlog decoder does)
			x, _ = strconv.ParseFloat(strconv.FormatFloat(x, 'g', -1, 32), 64)
		}
		return &schema.Existing{Value: schema.Float(x)}, nil
	case schema.KindDecimal:
		text, ok := decimalAt(string(l.Bytes), c.typ.Scale)
		if !ok || l.Hex {
			return unknown("is not a decimal the column holds without rounding")
		}
		v, err = schema.Decimal(text)
	case schema.KindString:
		text := string(l.Bytes)
		switch c.dataType {
		case "enum":
			i := labelIndex(c.labels, text)
			if i < 0 {
				return unknown("is not one of the ENUM's members")
			}
			text = c.labels[i]
		case "set":
			if text, err = setValue(c.labels, text); err != nil {
				return unknown("is not a set of the SET's members")
			}
		}
		v = schema.String(text)
	case schema.KindBytes:
		if c.typ.Name == "geometry" {
			return unknown("is a geometry")
		}
		v, err = d.text(c, l.Bytes) // BINARY(n) pads with zero bytes, as the server does
	case schema.KindTimestamp:
		// a TIMESTAMP literal is read in the session's time zone, which the
		// binlog does not say for certain
		return unknown("is a TIMESTAMP literal, read in the time zone of the session that ran the ALTER")
	case schema.KindDate, schema.KindDateTime, schema.KindTime:
		if l.Number || l.Hex {
			return unknown("is a number for a date or time")
		}
		v, err = d.text(c, l.Bytes)
	case schema.KindJSON:
		v, err = d.text(c, l.Bytes)
	default:
		return unknown("is for a type cdcd does not read literals of")
	}
	if err != nil {
		return nil, err
	}
	if v.IsNull() {
		return nil, nil // a zero date under zero_dates: null (counted by the decoder)
	}
	return &schema.Existing{Value: v}, nil
}

// implicit is the value MySQL and MariaDB give the rows already in a table
// when a NOT NULL column without a DEFAULT is added: the type's implicit default.
func (d decoder) implicit(c *colInfo) (*schema.Existing, error) {
	var v schema.Value
	switch c.typ.Kind {
	case schema.KindInt:
		v = schema.Int(0)
	case schema.KindUint:
		v = schema.Uint(0)
	case schema.KindFloat:
		v = schema.Float(0)
	case schema.KindDecimal:
		text, _ := decimalAt("0", c.typ.Scale)
		v = schema.MustDecimal(text)
	case schema.KindString:
		if c.dataType == "enum" {
			if len(c.labels) == 0 {
				return &schema.Existing{Unknown: "a NOT NULL ENUM without a DEFAULT takes its first member, which the binlog does not name"}, nil
			}
			v = schema.String(c.labels[0])
		} else {
			v = schema.String("")
		}
	case schema.KindBytes:
		if c.typ.Name == "geometry" {
			return &schema.Existing{Unknown: "a NOT NULL geometry without a DEFAULT"}, nil
		}
		var err error
		if v, err = d.text(c, nil); err != nil { // BINARY(n): n zero bytes
			return nil, err
		}
	case schema.KindTime:
		v = schema.TimeOfDay(0)
	case schema.KindDate, schema.KindDateTime:
		var err error
		if v, err = d.zero(c); err != nil {
			return nil, err
		}
		if v.IsNull() {
			return nil, nil
		}
	default: // TIMESTAMP (explicit_defaults_for_timestamp decides), JSON
		return &schema.Existing{Unknown: "a NOT NULL " + strings.ToUpper(c.dataType) + " without a DEFAULT, whose implicit value depends on server settings"}, nil
	}
	return &schema.Existing{Value: v}, nil
}

// integer reads a literal as a whole number: digits, a hex or bit literal
// (big-endian bytes), or a decimal without a fraction.
func (l *literal) integer() (*big.Int, bool) {
	if l.Hex {
		return new(big.Int).SetBytes(l.Bytes), true
	}
	if !l.Number {
		return nil, false
	}
	text := string(l.Bytes)
	if whole, frac, ok := strings.Cut(text, "."); ok {
		if strings.Trim(frac, "0") != "" {
			return nil, false // the server would round it
		}
		text = whole
	}
	n, ok := new(big.Int).SetString(text, 10)
	return n, ok
}

// decimalAt writes a decimal literal as a DECIMAL(p,scale) column holds it
// (scale fraction digits, as the binlog renders it); false when the literal has
// more fraction digits than scale (the server rounds) or is not a plain decimal.
func decimalAt(text string, scale int) (string, bool) {
	body := strings.TrimPrefix(text, "-")
	neg := body != text
	whole, frac, _ := strings.Cut(body, ".")
	digits := func(s string) bool {
		return strings.Trim(s, "0123456789") == ""
	}
	if !digits(whole) || !digits(frac) || whole+frac == "" {
		return "", false
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > scale {
		return "", false
	}
	frac += strings.Repeat("0", scale-len(frac))
	if whole = strings.TrimLeft(whole, "0"); whole == "" {
		whole = "0"
	}
	out := whole
	if scale > 0 {
		out += "." + frac
	}
	if neg && strings.Trim(out, "0.") != "" {
		out = "-" + out
	}
	return out, true
}

func labelIndex(labels []string, s string) int {
	for i, l := range labels {
		if strings.EqualFold(l, s) {
			return i
		}
	}
	return -1
}

// setValue writes a SET literal as the server stores it: its members in the
// definition's order, each once.
func setValue(labels []string, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	has := make([]bool, len(labels))
	for _, m := range strings.Split(s, ",") {
		i := labelIndex(labels, m)
		if i < 0 {
			return "", strconv.ErrSyntax
		}
		has[i] = true
	}
	var out []string
	for i, ok := range has {
		if ok {
			out = append(out, labels[i])
		}
	}
	return strings.Join(out, ","), nil
}

package sinktest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
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
func ParseText(typ schema.Type, s string) (schema.Value, error) {
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
		if typ.Name == "float4" {
			f = float64(float32(f))
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
		text := string(e)
		if strings.HasPrefix(text, `"`) {
			if err := json.Unmarshal(e, &text); err != nil {
				return schema.Null(), err
			}
		}
		v, err := ParseText(*typ.Elem, text)
		if err != nil {
			return schema.Null(), err
		}
		out = append(out, v)
	}
	return schema.Array(out...), nil
}

package warehouse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// JSONRules are what a warehouse's JSON parser refuses, or changes silently.
type JSONRules struct {
	// NoDuplicateKeys: an object may not name a key twice (Snowflake's
	// PARSE_JSON refuses it by default; keeping either copy would be a guess).
	NoDuplicateKeys bool
	// IntDigits is how many digits an integer may have and stay exact; a
	// longer one, and any other number, must be a float64 that is exactly the
	// number written. 0: integers must fit 64 bits (BigQuery's int64 or
	// uint64; Snowflake keeps 38 digits in NUMBER).
	IntDigits int
}

// JSONProblem returns why the destination would not hold the JSON text
// exactly (without naming any value), or "" when it does.
func JSONProblem(text string, r JSONRules) string {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			return "is not valid JSON"
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch x := tok.(type) {
		case json.Delim:
			switch x {
			case '{':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{object: true, expectKey: true, keys: map[string]bool{}})
				continue
			case '[':
				if top != nil && top.object {
					top.expectKey = true
				}
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.object && top.expectKey {
				if r.NoDuplicateKeys && top.keys[x] {
					return "is JSON with a key repeated in one object, which the destination refuses"
				}
				top.keys[x] = true
				top.expectKey = false
				continue
			}
		case json.Number:
			if p := numberProblem(string(x), r.IntDigits); p != "" {
				return p
			}
		}
		if top != nil && top.object {
			top.expectKey = true
		}
	}
}

// numberProblem says why a JSON number would not be held exactly.
func numberProblem(s string, intDigits int) string {
	if !strings.ContainsAny(s, ".eE") {
		digits := strings.TrimLeft(strings.TrimPrefix(s, "-"), "0")
		if intDigits > 0 && len(digits) <= intDigits {
			return ""
		}
		if _, err := strconv.ParseInt(s, 10, 64); err == nil {
			return ""
		}
		if _, err := strconv.ParseUint(s, 10, 64); err == nil {
			return ""
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return "is JSON with a number beyond a float64's range"
	}
	want, ok := new(big.Rat).SetString(s)
	if !ok {
		return "is JSON with a number that does not parse"
	}
	got, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	if want.Cmp(got) != 0 {
		return fmt.Sprintf("is JSON with a number of more digits than a float64 holds (%d significant)", significant(s))
	}
	return ""
}

// significant counts a decimal's significant digits.
func significant(s string) int {
	mant, _, _ := strings.Cut(strings.ToLower(s), "e")
	d := bytes.Trim([]byte(strings.NewReplacer("-", "", "+", "", ".", "").Replace(mant)), "0")
	return len(d)
}

package warehouse

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestJSONProblem(t *testing.T) {
	t.Parallel()
	bq := JSONRules{}
	sf := JSONRules{NoDuplicateKeys: true, IntDigits: 38}
	for _, tc := range []struct {
		json   string
		r      JSONRules
		refuse bool
	}{
		{`{"a": 1, "b": [1, 2.5, "x", {"a": 0.1}], "c": null}`, sf, false},
		{`{"a": 1, "a": 2}`, sf, true},
		{`{"a": 1, "a": 2}`, bq, false},
		{`{"a": {"x": 1}, "b": {"x": 2}}`, sf, false},
		{`{"a": 1, "\u0061": 2}`, sf, true},
		{`[{"k": 1}, {"k": 1}]`, sf, false},
		{`{"huge": 1e400}`, bq, true},
		{`{"n": 18446744073709551615}`, bq, false},
		{`{"n": 18446744073709551617}`, bq, true},
		{`{"n": 18446744073709551617}`, sf, false},
		{`{"n": 123456789012345678901234567890123456789}`, sf, true},
		{`{"n": -9223372036854775808}`, bq, false},
		{`{"n": 1.0000000000000000000001}`, bq, true},
		{`{"n": 1.0000000000000000000001}`, sf, true},
		{`{"n": 0.1, "m": 1e-5, "k": -0, "e": 2.5E+3}`, bq, false},
		{`{"n": 3.141592653589793}`, bq, false},
		{`{"n": 3.14159265358979323846}`, bq, true},
		{`not json`, bq, true},
	} {
		p := JSONProblem(tc.json, tc.r)
		require.Equal(t, tc.refuse, p != "", "%s %+v: %q", tc.json, tc.r, p)
		require.NotContains(t, p, "1e400")
	}
}

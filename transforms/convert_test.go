package transforms

import (
	"math"
	"testing"
	"time"

	"github.com/cdcd-dev/cdcd/schema"
	"github.com/stretchr/testify/require"
)

func TestConvert(t *testing.T) {
	ty := func(s string) schema.Type {
		t.Helper()
		x, err := ParseType(s)
		require.NoError(t, err)
		return x
	}
	ok := []struct {
		in   schema.Value
		to   string
		want schema.Value
	}{
		{schema.String(" 42 "), "int4", schema.Int(42)},
		{schema.MustDecimal("12.000"), "int8", schema.Int(12)},
		{schema.Float(3), "int2", schema.Int(3)},
		{schema.Int(7), "decimal(5,2)", schema.MustDecimal("7")},
		{schema.String("1.25"), "numeric(3,2)", schema.MustDecimal("1.25")},
		{schema.Int(-5), "text", schema.String("-5")},
		{schema.MustDecimal("1.50"), "varchar(4)", schema.String("1.50")},
		{schema.String("yes"), "bool", schema.Bool(true)},
		{schema.Int(0), "bool", schema.Bool(false)},
		{schema.String("2026-11-25T01:02:03.5+01:00"), "timestamptz", schema.Timestamp(time.Date(2026, 11, 25, 0, 2, 3, 5e8, time.UTC))},
		{schema.String("2026-11-25 01:02:03"), "datetime", schema.DateTime(time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC))},
		{schema.Timestamp(time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)), "date", schema.Date(2026, 11, 25)},
		{schema.String(`{"a":1}`), "json", schema.JSON(`{"a":1}`)},
		{schema.Int(3), "json", schema.JSON(`3`)},
		{schema.String("ab"), "bytes", schema.Bytes([]byte("ab"))},
		{schema.Null(), "int8", schema.Null()},
		{schema.Unchanged(), "int8", schema.Unchanged()},
	}
	for _, c := range ok {
		got, err := Convert(c.in, ty(c.to))
		require.NoError(t, err, "%v -> %s", c.in, c.to)
		require.True(t, c.want.Equal(got), "%v -> %s: got %v, want %v", c.in, c.to, got, c.want)
	}
	bad := []struct {
		in schema.Value
		to string
	}{
		{schema.String("12abc-secret"), "int8"},
		{schema.Int(70000), "int2"},
		{schema.Float(1.5), "int8"},
		{schema.Float(math.NaN()), "decimal(10,2)"},
		{schema.MustDecimal("123.456"), "decimal(5,2)"},
		{schema.String("hello-secret"), "varchar(3)"},
		{schema.String("maybe-secret"), "bool"},
		{schema.String("yesterday-secret"), "date"},
		{schema.String("{not json-secret"), "json"},
		{schema.Bool(true), "bytes"},
	}
	for _, c := range bad {
		_, err := Convert(c.in, ty(c.to))
		require.Error(t, err, "%v -> %s", c.in, c.to)
		require.NotContains(t, err.Error(), "secret", "errors never carry the value")
	}
}

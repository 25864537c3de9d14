package offsets

import (
	"cmp"
	"testing"

	"github.com/stretchr/testify/require"
)

type tuple struct {
	a uint64
	s string
	b uint64
}

func (x tuple) encode() Position {
	var p []byte
	p = AppendUint(p, x.a)
	p = AppendString(p, x.s)
	p = AppendUint(p, x.b)
	return p
}

func (x tuple) compare(y tuple) int {
	return cmp.Or(cmp.Compare(x.a, y.a), cmp.Compare(x.s, y.s), cmp.Compare(x.b, y.b))
}

func decodeTuple(p Position) (tuple, error) {
	d := NewDecoder(p)
	x := tuple{a: d.Uint(), s: d.String(), b: d.Uint()}
	return x, d.Done()
}

func TestPositionTupleOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		x, y tuple
	}{
		{"first field", tuple{1, "z", 9}, tuple{2, "a", 0}},
		{"prefix string sorts first", tuple{1, "ab", 9}, tuple{1, "abc", 0}},
		{"nul byte in string", tuple{1, "a\x00", 9}, tuple{1, "a\x00\x00", 0}},
		{"nul vs 0x01", tuple{1, "a\x00", 9}, tuple{1, "a\x01", 0}},
		{"empty string", tuple{1, "", 5}, tuple{1, "\x00", 0}},
		{"last field", tuple{1, "a", 1}, tuple{1, "a", 2}},
		{"max uint", tuple{1<<64 - 2, "", 0}, tuple{1<<64 - 1, "", 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, -1, tc.x.compare(tc.y), "test case must be ordered")
			require.Equal(t, -1, tc.x.encode().Compare(tc.y.encode()))
			require.Equal(t, 1, tc.y.encode().Compare(tc.x.encode()))
			got, err := decodeTuple(tc.x.encode())
			require.NoError(t, err)
			require.Equal(t, tc.x, got)
		})
	}
}

func TestPositionDecodeErrors(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]Position{
		"empty":        {},
		"short uint":   {tagUint, 1, 2},
		"wrong tag":    AppendString(nil, "x"),
		"unterminated": {tagBytes, 'a', 0},
		"bad escape":   {tagBytes, 'a', 0, 7},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := NewDecoder(p)
			d.Uint()
			require.ErrorIs(t, d.Done(), ErrMalformed)
		})
	}
	t.Run("trailing", func(t *testing.T) {
		t.Parallel()
		d := NewDecoder(AppendUint(AppendUint(nil, 1), 2))
		d.Uint()
		require.ErrorIs(t, d.Done(), ErrMalformed)
	})
}

func TestPositionText(t *testing.T) {
	t.Parallel()
	p := tuple{7, "x\x00y", 3}.encode()
	txt, err := p.MarshalText()
	require.NoError(t, err)
	var q Position
	require.NoError(t, q.UnmarshalText(txt))
	require.Equal(t, p, q)
	require.Error(t, q.UnmarshalText([]byte("zz")))
}

// FuzzPositionTuple checks that the tuple encoding round-trips and that byte order
// equals tuple order, for any pair of tuples.
func FuzzPositionTuple(f *testing.F) {
	f.Add(uint64(1), "a", uint64(2), uint64(1), "a\x00", uint64(0))
	f.Add(uint64(0), "", uint64(0), uint64(0), "\x00\xff", uint64(1<<63))
	f.Add(uint64(5), "\x00\x01", uint64(9), uint64(5), "\x00", uint64(9))
	f.Fuzz(func(t *testing.T, a1 uint64, s1 string, b1 uint64, a2 uint64, s2 string, b2 uint64) {
		x, y := tuple{a1, s1, b1}, tuple{a2, s2, b2}
		px, py := x.encode(), y.encode()
		gx, err := decodeTuple(px)
		if err != nil || gx != x {
			t.Fatalf("round trip of %+v: got %+v, %v", x, gx, err)
		}
		if want, got := x.compare(y), px.Compare(py); want != got {
			t.Fatalf("order of %+v vs %+v: tuple %d, bytes %d", x, y, want, got)
		}
	})
}

// FuzzPositionDecode checks that decoding arbitrary bytes never panics and that
// whatever decodes cleanly re-encodes to the same bytes.
func FuzzPositionDecode(f *testing.F) {
	f.Add([]byte{tagUint, 0, 0, 0, 0, 0, 0, 0, 1, tagBytes, 'a', 0, 1, tagUint, 0, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{tagBytes, 0, 0xFF, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := decodeTuple(b)
		if err != nil {
			return
		}
		if got := x.encode(); got.Compare(b) != 0 {
			t.Fatalf("%x decoded to %+v but re-encodes to %x", b, x, got)
		}
	})
}

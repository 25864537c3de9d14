package schema

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// codecVersion is the first byte of an encoded change; bump it when the layout
// changes and keep decoding the old one. Version 2 appends Since.
const codecVersion = 2

// ErrCorrupt is returned when encoded bytes are not a change this codec wrote.
var ErrCorrupt = errors.New("corrupt encoded change")

// AppendChange appends a lossless binary encoding of c to dst: every Value keeps
// its kind and exact bits (decimals as text, NaN floats, unchanged markers), so
// DecodeChange returns an equal Change. Used where changes are kept outside
// memory, e.g. the changes of a table held by a schema-change policy.
func AppendChange(dst []byte, c *Change) []byte {
	dst = append(dst, codecVersion, byte(c.Op))
	dst = appendStr(dst, c.Table.Namespace)
	dst = appendStr(dst, c.Table.Name)
	dst = binary.AppendUvarint(dst, uint64(c.Version))
	dst = appendStr(dst, string(c.Pos))
	dst = appendStr(dst, c.TxID)
	if c.CommitTS.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = append(dst, 1)
		dst = binary.AppendVarint(dst, c.CommitTS.Unix())
		dst = binary.AppendUvarint(dst, uint64(c.CommitTS.Nanosecond()))
	}
	for _, r := range []Row{c.Key, c.Before, c.After} {
		dst = appendRow(dst, r)
	}
	return appendStr(dst, string(c.Since))
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendRow(dst []byte, r Row) []byte {
	if r == nil {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r))+1)
	for _, f := range r {
		dst = appendStr(dst, f.Name)
		dst = appendValue(dst, f.Value)
	}
	return dst
}

func appendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.k))
	dst = binary.AppendUvarint(dst, v.n)
	dst = binary.AppendVarint(dst, int64(v.m))
	dst = appendStr(dst, v.s)
	dst = appendStr(dst, v.t)
	dst = binary.AppendUvarint(dst, uint64(len(v.a)))
	for _, e := range v.a {
		dst = appendValue(dst, e)
	}
	return dst
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail("short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a zig-zag encoded uvarint.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string past the end")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) row() Row {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	n--
	if n > uint64(len(d.b)) { // every field takes at least one byte
		d.fail("row longer than its bytes")
		return nil
	}
	r := make(Row, 0, n)
	for range n {
		name := d.str()
		r = append(r, Field{Name: name, Value: d.value(0)})
	}
	return r
}

func (d *decoder) value(depth int) Value {
	if depth > 64 {
		d.fail("arrays nested too deep")
		return Value{}
	}
	var v Value
	v.k = Kind(d.byte())
	if v.k > KindUnchanged {
		d.fail("unknown kind")
		return Value{}
	}
	v.n = d.uvarint()
	v.m = int32(d.varint())
	v.s = d.str()
	v.t = d.str()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("array longer than its bytes")
		return Value{}
	}
	for range n {
		v.a = append(v.a, d.value(depth+1))
	}
	return v
}

// DecodeChange decodes what AppendChange wrote.
func DecodeChange(b []byte) (Change, error) {
	d := &decoder{b: b}
	v := d.byte()
	if v != 1 && v != codecVersion && d.err == nil {
		return Change{}, fmt.Errorf("%w: codec version %d", ErrCorrupt, v)
	}
	var c Change
	c.Op = Op(d.byte())
	c.Table.Namespace = d.str()
	c.Table.Name = d.str()
	c.Version = Version(d.uvarint())
	if p := d.str(); p != "" {
		c.Pos = []byte(p)
	}
	c.TxID = d.str()
	if d.byte() == 1 {
		sec := d.varint()
		c.CommitTS = time.Unix(sec, int64(d.uvarint())).UTC()
	}
	c.Key, c.Before, c.After = d.row(), d.row(), d.row()
	if v >= 2 {
		if p := d.str(); p != "" {
			c.Since = []byte(p)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return Change{}, d.err
	}
	return c, nil
}

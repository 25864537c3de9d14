package offsets

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Position is an opaque checkpoint produced by a source. Positions of one source are
// totally ordered by bytes.Compare; the zero-length Position means "no position yet"
// and sorts before every other.
type Position []byte

// Compare orders p and q: -1 if p < q, 0 if equal, +1 if p > q.
func (p Position) Compare(q Position) int { return bytes.Compare(p, q) }

// IsZero reports whether p is the empty position.
func (p Position) IsZero() bool { return len(p) == 0 }

// Clone returns a copy of p that does not share memory with it.
func (p Position) Clone() Position {
	if p == nil {
		return nil
	}
	return append(Position(nil), p...)
}

// String renders p as lower-case hex (the form used in logs and the API).
func (p Position) String() string { return hex.EncodeToString(p) }

// MarshalText implements encoding.TextMarshaler with the hex form.
func (p Position) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler for the hex form.
func (p *Position) UnmarshalText(b []byte) error {
	out, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("decode position %q: %w", b, err)
	}
	*p = out
	return nil
}

// Max returns the larger of p and q.
func Max(p, q Position) Position {
	if p.Compare(q) >= 0 {
		return p
	}
	return q
}

// The tuple encoding. Each element starts with a type tag so that a decoder can check
// what it reads; the tags are chosen so that elements of the same type at the same
// index compare like their values:
//   - uint64: tag 0x10, then 8 bytes big-endian.
//   - string/bytes: tag 0x20, then the bytes with 0x00 escaped as 0x00 0xFF, then the
//     terminator 0x00 0x01. A shorter string sorts first because 0x01 < any escaped
//     or plain byte that could follow at that place.
const (
	tagUint  = 0x10
	tagBytes = 0x20
)

// ErrMalformed is returned when a Position cannot be decoded as the tuple expected.
var ErrMalformed = errors.New("malformed position")

// AppendUint appends v to a tuple-encoded position.
func AppendUint(b []byte, v uint64) []byte {
	b = append(b, tagUint)
	return binary.BigEndian.AppendUint64(b, v)
}

// AppendString appends s to a tuple-encoded position.
func AppendString(b []byte, s string) []byte {
	b = append(b, tagBytes)
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xFF)
			continue
		}
		b = append(b, s[i])
	}
	return append(b, 0, 1)
}

// Decoder reads a tuple-encoded position element by element. The first error sticks:
// later calls return zero values, and Err reports it.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a Decoder over p. It does not copy p.
func NewDecoder(p Position) *Decoder { return &Decoder{b: p} }

// Uint reads a uint64 element.
func (d *Decoder) Uint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 9 || d.b[0] != tagUint {
		d.err = fmt.Errorf("%w: want uint at %x", ErrMalformed, d.b)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b[1:9])
	d.b = d.b[9:]
	return v
}

// String reads a string element.
func (d *Decoder) String() string {
	if d.err != nil {
		return ""
	}
	if len(d.b) < 1 || d.b[0] != tagBytes {
		d.err = fmt.Errorf("%w: want string at %x", ErrMalformed, d.b)
		return ""
	}
	var out []byte
	for i := 1; i < len(d.b); i++ {
		c := d.b[i]
		if c != 0 {
			out = append(out, c)
			continue
		}
		if i+1 >= len(d.b) {
			break
		}
		switch d.b[i+1] {
		case 0xFF:
			out = append(out, 0)
			i++
		case 0x01:
			d.b = d.b[i+2:]
			return string(out)
		default:
			d.err = fmt.Errorf("%w: bad escape 0x00 0x%02x", ErrMalformed, d.b[i+1])
			return ""
		}
	}
	d.err = fmt.Errorf("%w: unterminated string", ErrMalformed)
	return ""
}

// More reports whether elements remain to decode (and no decode failed).
func (d *Decoder) More() bool { return d.err == nil && len(d.b) > 0 }

// Done reports an error if elements remain undecoded or a decode failed.
func (d *Decoder) Done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return nil
}

// Err returns the first decode error.
func (d *Decoder) Err() error { return d.err }

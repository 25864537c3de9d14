package pipeline

import (
	"encoding/base64"
	"encoding/hex"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/schema"
)

// Row values never reach a log line or a stored error: a sink or driver error
// may quote the row it failed on (pgx quotes the value it could not encode,
// Postgres the text it could not parse, ClickHouse the field), and that error
// is what the supervisor logs and stores. The write stage therefore passes
// every sink error through valueSafe, which cuts it and hides, wherever it
// shows, any value of the batch in the forms drivers print them: as text, and
// bytes also in hex and base64. A value that was cut short in the message is
// hidden too, from its first minValue bytes on.

const (
	// minValue is the shortest value hidden: shorter ones (1, true, a two
	// letter code) would hide words of the message and carry little.
	minValue = 6
	// maxErrorText bounds the text of a sink error.
	maxErrorText = 4 << 10
	// hiddenValue replaces a value in an error.
	hiddenValue = "<value>"
)

// valueError is a sink error with the batch's values hidden from its text;
// errors.Is and errors.As see the error it wraps.
type valueError struct {
	msg string
	err error
}

func (e *valueError) Error() string { return e.msg }
func (e *valueError) Unwrap() error { return e.err }

// valueSafe returns err with every value of b hidden from its text, and cut
// to maxErrorText: its head and its tail.
func valueSafe(err error, b *schema.Batch) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if len(msg) > maxErrorText {
		// the head names the operation, the tail the cause (errors wrap
		// outward): keep both
		head, tail := maxErrorText*3/4, len(msg)-maxErrorText/4
		for head > 0 && !utf8.RuneStart(msg[head]) {
			head--
		}
		for tail < len(msg) && !utf8.RuneStart(msg[tail]) {
			tail++
		}
		msg = msg[:head] + " … (cut) … " + msg[tail:]
	}
	out := hideValues(msg, b)
	if out == err.Error() {
		return err
	}
	return &valueError{msg: out, err: err}
}

// hideValues replaces in msg every occurrence of a value of b, scanning msg
// once: values are indexed by their first minValue bytes.
func hideValues(msg string, b *schema.Batch) string {
	if len(msg) < minValue {
		return msg
	}
	index := map[string][]string{}
	add := func(s string) {
		if len(s) < minValue {
			return
		}
		k := s[:minValue]
		for _, o := range index[k] {
			if o == s {
				return
			}
		}
		index[k] = append(index[k], s)
	}
	var addValue func(v schema.Value)
	addValue = func(v schema.Value) {
		switch v.Kind() {
		case schema.KindNull, schema.KindUnchanged, schema.KindBool:
		case schema.KindBytes:
			raw := v.AsBytes()
			add(string(raw))
			add(hex.EncodeToString(raw))
			add(base64.StdEncoding.EncodeToString(raw))
		case schema.KindArray:
			for _, e := range v.Elems() {
				addValue(e)
			}
			add(string(v.AppendJSON(nil)))
		case schema.KindString, schema.KindJSON, schema.KindDecimal, schema.KindUnknown:
			add(v.Text())
		default:
			add(v.String())
		}
	}
	for i := range b.Changes {
		c := &b.Changes[i]
		for _, r := range []schema.Row{c.Key, c.Before, c.After} {
			for _, f := range r {
				addValue(f.Value)
			}
		}
	}
	if len(index) == 0 {
		return msg
	}
	var out []byte
	last := 0
	for i := 0; i+minValue <= len(msg); {
		n := 0
		for _, v := range index[msg[i:i+minValue]] {
			l := minValue
			for l < len(v) && i+l < len(msg) && msg[i+l] == v[l] {
				l++
			}
			if l == len(v) || i+l == len(msg) || l >= 2*minValue {
				n = max(n, l) // the whole value, one cut by the message's end, or a long prefix
			}
		}
		if n == 0 {
			i++
			continue
		}
		out = append(append(out, msg[last:i]...), hiddenValue...)
		i += n
		last = i
	}
	if out == nil {
		return msg
	}
	return string(append(out, msg[last:]...))
}

package redact

import (
	"context"
	"fmt"
	"log/slog"
)

// MaxLogValue bounds a string attribute of a log line: a longer one is cut,
// saying how much was cut, so that no record (an error quoting a huge value,
// say) floods the log.
const MaxLogValue = 4 << 10

// Handler is a slog.Handler that redacts before the handler it wraps sees a
// record: the message and every string or error attribute go through Text,
// attributes under secret-looking keys become Placeholder, and long strings are
// cut to MaxLogValue. It is safe for concurrent use if the wrapped handler is.
type Handler struct{ inner slog.Handler }

// NewHandler wraps h.
func NewHandler(h slog.Handler) *Handler { return &Handler{inner: h} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Cut(Text(r.Message), MaxLogValue), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = attr(a)
	}
	return &Handler{inner: h.inner.WithAttrs(out)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name)}
}

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, e := range g {
			out[i] = attr(e)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindString:
		return slog.String(a.Key, logString(a.Key, v.String()))
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, logString(a.Key, x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, logString(a.Key, x.String()))
		case []byte:
			return slog.String(a.Key, logString(a.Key, string(x)))
		}
	}
	if Key(a.Key) {
		return slog.String(a.Key, Placeholder)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// logString redacts a log attribute: whole under a secret-looking key, else
// as free text (an error quoting a URL ends the URL at white space).
func logString(key, s string) string {
	if Key(key) && !onlyRefs(s) {
		return Placeholder
	}
	return Cut(Text(s), MaxLogValue)
}

// Cut returns s cut to at most n bytes (on a UTF-8 boundary), saying how many
// were cut.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return fmt.Sprintf("%s… (%d more bytes cut)", s[:i], len(s)-i)
}

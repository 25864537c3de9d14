// Package mask is the PII masking transform. A masked column's clear value
// never leaves it: not to a sink, a log, an error message or a dead letter.
//
// Methods:
//   - hash: HMAC-SHA256 with a secret key (from config, ${ENV} or ${file:…}), in
//     hex or base64, optionally truncated: equal inputs give equal outputs (joins
//     still work) and the value cannot be recovered without the key;
//   - redact: NULL, or a constant;
//   - partial: keeps the first and last N characters, masks the rest with '*'
//     (card numbers: keep_last: 4);
//   - email: keeps the domain, masks the local part;
//   - tokenize: a deterministic, format-preserving pseudonym: every digit
//     becomes a digit and every ASCII letter a letter of the same case, other
//     characters stay, drawn from a stream seeded by the HMAC of the whole value
//     (so equal inputs give equal tokens, "4111-1111" keeps its shape, and the
//     value cannot be recovered). Tokens can collide, so it is refused on key
//     columns, like every method but hash.
package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Config configures the mask.
type Config struct {
	Columns []string `yaml:"columns" json:"columns"`
	// Method is hash (default), redact, partial, email or tokenize.
	Method string `yaml:"method" json:"method"`
	// Key is the HMAC key of hash and tokenize (at least 16 bytes; keep it in
	// ${ENV} or ${file:}).
	Key string `yaml:"key" json:"key"`
	// Encoding of hash: hex (default) or base64.
	Encoding string `yaml:"encoding" json:"encoding"`
	// Length truncates a hash to this many characters (0: whole).
	Length int `yaml:"length" json:"length"`
	// Replacement is redact's constant (unset: NULL).
	Replacement *string `yaml:"replacement" json:"replacement"`
	// KeepFirst and KeepLast are partial's kept characters.
	KeepFirst int `yaml:"keep_first" json:"keep_first"`
	KeepLast  int `yaml:"keep_last" json:"keep_last"`
}

// Mask is the transform.
type Mask struct {
	cfg  Config
	cols map[string]bool
	// scratch reused across calls (a chain applies from one goroutine): the
	// HMAC state keyed with cfg.Key, and the value and its encoding
	mac hash.Hash
	buf []byte
}

// New validates c; every problem is reported.
func New(c Config) (*Mask, error) {
	if c.Method == "" {
		c.Method = "hash"
	}
	if c.Encoding == "" {
		c.Encoding = "hex"
	}
	var errs []error
	if len(c.Columns) == 0 {
		errs = append(errs, errors.New("columns: list the columns to mask"))
	}
	if (c.Method == "hash" || c.Method == "tokenize") && len(c.Key) < 16 {
		errs = append(errs, fmt.Errorf("key: %s needs a secret key of at least 16 bytes (use ${MASK_KEY} or ${file:/path})", c.Method))
	}
	switch c.Method {
	case "hash":
		if c.Encoding != "hex" && c.Encoding != "base64" {
			errs = append(errs, fmt.Errorf("encoding: must be hex or base64, got %q", c.Encoding))
		}
		if c.Length < 0 || (c.Length > 0 && c.Length < 8) {
			errs = append(errs, errors.New("length: 0 (whole hash) or at least 8"))
		}
	case "redact", "email", "tokenize":
	case "partial":
		if c.KeepFirst < 0 || c.KeepLast < 0 {
			errs = append(errs, errors.New("keep_first, keep_last: must not be negative"))
		}
	default:
		errs = append(errs, fmt.Errorf("method: must be hash, redact, partial, email or tokenize, got %q", c.Method))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m := &Mask{cfg: c, cols: map[string]bool{}}
	m.mac = hmac.New(sha256.New, []byte(c.Key))
	for _, col := range c.Columns {
		m.cols[col] = true
	}
	return m, nil
}

// Factory returns the mask's factory.
func Factory() transforms.Factory {
	return transforms.Factory{
		Spec: func() any { return Config{Method: "hash", Encoding: "hex"} },
		New: component.Decoded(func(c Config, _ transforms.Deps) (transforms.Transform, error) {
			return New(c)
		}),
	}
}

// Schema turns masked columns into text (nullable); a masked key column is an
// error: rows would merge on masked keys.
func (m *Mask) Schema(in schema.Table) (schema.Table, error) {
	// a masked column that disappears is most likely renamed: its values would
	// flow in clear under the new name, so this is an error, not a no-op
	for _, c := range slices.Sorted(maps.Keys(m.cols)) {
		if _, ok := in.Column(c); !ok {
			return schema.Table{}, fmt.Errorf("column %s to mask is not in table %s (dropped or renamed at the source?): mask the new name, or scope the transform with tables", c, in.ID)
		}
	}
	out := in.Clone()
	for i, c := range out.Columns {
		if !m.cols[c.Name] {
			continue
		}
		for _, k := range in.PrimaryKey {
			if k == c.Name && m.cfg.Method != "hash" {
				return schema.Table{}, fmt.Errorf("column %s is part of the primary key: only method hash keeps keys distinct", c.Name)
			}
		}
		out.Columns[i].Type = schema.Type{Kind: schema.KindString, Name: "text"}
		if m.cfg.Method == "redact" {
			out.Columns[i].Nullable = true
		}
		if e := c.Existing; e.Known() {
			// the rows already there hold the default: it is masked like theirs
			out.Columns[i].Existing = &schema.Existing{Value: m.mask(e.Value)}
		}
	}
	return out, nil
}

// Apply masks the columns in every image of c. Images are copied first: a
// source may share memory between them.
func (m *Mask) Apply(c *schema.Change) (bool, error) {
	for _, r := range []*schema.Row{&c.Key, &c.Before, &c.After} {
		var out schema.Row
		for i, f := range *r {
			if !m.cols[f.Name] {
				continue
			}
			if out == nil {
				out = (*r).Clone()
			}
			out[i].Value = m.mask(f.Value)
		}
		if out != nil {
			*r = out
		}
	}
	return true, nil
}

func (m *Mask) mask(v schema.Value) schema.Value {
	if v.IsNull() || v.Kind() == schema.KindUnchanged {
		return v
	}
	var text string
	switch v.Kind() {
	case schema.KindString, schema.KindDecimal, schema.KindJSON, schema.KindUnknown:
		text = v.Text()
	case schema.KindBytes:
		text = string(v.AsBytes())
	default:
		text = string(v.AppendJSON(nil))
	}
	switch m.cfg.Method {
	case "redact":
		if m.cfg.Replacement == nil {
			return schema.Null()
		}
		return schema.String(*m.cfg.Replacement)
	case "partial":
		return schema.String(partial(text, m.cfg.KeepFirst, m.cfg.KeepLast))
	case "email":
		local, domain, ok := strings.Cut(text, "@")
		if !ok {
			return schema.String(strings.Repeat("*", utf8.RuneCountInString(text)))
		}
		return schema.String(strings.Repeat("*", max(utf8.RuneCountInString(local), 1)) + "@" + domain)
	}
	mac := m.mac
	mac.Reset()
	m.buf = append(m.buf[:0], text...)
	mac.Write(m.buf)
	var sumBuf [sha256.Size]byte
	sum := mac.Sum(sumBuf[:0])
	if m.cfg.Method == "tokenize" {
		return schema.String(tokenize(text, [32]byte(sum)))
	}
	if m.cfg.Encoding == "base64" {
		m.buf = base64.RawURLEncoding.AppendEncode(m.buf[:0], sum)
	} else {
		m.buf = hex.AppendEncode(m.buf[:0], sum)
	}
	out := m.buf
	if m.cfg.Length > 0 && m.cfg.Length < len(out) {
		out = out[:m.cfg.Length]
	}
	return schema.String(string(out))
}

// tokenize replaces digits and ASCII letters with ones drawn from a stream
// seeded by seed, keeping every other character and the letters' case.
func tokenize(s string, seed [32]byte) string {
	rng := rand.New(rand.NewChaCha8(seed))
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			b[i] = '0' + byte(rng.IntN(10))
		case c >= 'a' && c <= 'z':
			b[i] = 'a' + byte(rng.IntN(26))
		case c >= 'A' && c <= 'Z':
			b[i] = 'A' + byte(rng.IntN(26))
		}
	}
	return string(b)
}

// partial keeps first and last runes; it masks everything when the value is
// too short to keep them and still hide something.
func partial(s string, first, last int) string {
	r := []rune(s)
	if first+last >= len(r) {
		return strings.Repeat("*", len(r))
	}
	for i := first; i < len(r)-last; i++ {
		r[i] = '*'
	}
	return string(r)
}

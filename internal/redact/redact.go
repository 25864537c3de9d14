package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Placeholder is what a secret is shown as.
const Placeholder = "******"

// secretWord matches the part of a key that makes it name a secret.
var secretWord = regexp.MustCompile(`(?i)(password|passwd|pwd|secret|token|private_?key|api_?key|credentials?|passphrase|hmac_?key|^key$)`)

// notSecret are key suffixes naming where a secret is, not the secret.
var notSecret = regexp.MustCompile(`(?i)(_file|_path|_dir|_env)$`)

// Key reports whether a config or query key names a secret value.
func Key(k string) bool { return secretWord.MatchString(k) && !notSecret.MatchString(k) }

// ref matches ${NAME} and ${file:/path} references.
var ref = regexp.MustCompile(`\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}`)

// onlyRefs reports whether s is made of references alone (and is not empty):
// such a value names where a secret comes from and is safe to show.
func onlyRefs(s string) bool { return s != "" && ref.ReplaceAllString(s, "") == "" }

// Value returns what a config value under key is shown as: Placeholder under a
// secret-looking key, else the value with every secret inside it (a URL's or a
// key=value string's password) redacted. The whole value is one item, so a URL
// extends to its end.
func Value(key, v string) string {
	if Key(key) && !onlyRefs(v) {
		return Placeholder
	}
	return scan(v, true)
}

// Text returns s with every secret it can find redacted: passwords of URLs
// (each URL ends at white space), secret query parameters, key=value pairs and
// JSON members with secret-looking keys.
func Text(s string) string { return scan(s, false) }

// scheme matches the start of a URL.
var scheme = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://`)

// pair matches a secret-looking key followed by '=' (libpq, query strings,
// logfmt) or, quoted, by ':' (JSON); group 1 is the key, group 2 a JSON quote.
var pair = regexp.MustCompile(`(?i)([A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|private_?key|api_?key|credentials?|passphrase|hmac_?key)[A-Za-z0-9_.-]*)(?:\s*=\s*|(")\s*:\s*)`)

func scan(s string, whole bool) string {
	if !strings.Contains(s, "://") && !strings.ContainsAny(s, "=:") {
		return s
	}
	// One pass left to right, so that a secret value holding "://" or a URL
	// holding "password=" is taken whole by what starts first. u and p are the
	// next URL and pair at or after off (nil: none), searched again only once
	// passed, so the scan stays linear.
	var b strings.Builder
	off := 0
	find := func(re *regexp.Regexp) []int {
		m := re.FindStringSubmatchIndex(s[off:])
		for i := range m {
			if m[i] >= 0 {
				m[i] += off
			}
		}
		return m
	}
	u, p := find(scheme), find(pair)
	for off < len(s) {
		if u != nil && u[0] < off {
			u = find(scheme)
		}
		if p != nil && p[0] < off {
			p = find(pair)
		}
		switch {
		case p != nil && (u == nil || p[0] < u[0]):
			b.WriteString(s[off:p[1]])
			key, json := s[p[2]:p[3]], p[4] >= 0
			off = p[1]
			if json && (p[2] == 0 || s[p[2]-1] != '"') || notSecret.MatchString(key) {
				continue // "key": needs its opening quote; a *_file key names a path
			}
			n := valueLen(s[off:], json)
			switch v := s[off : off+n]; {
			case n == 0 || onlyRefs(strings.Trim(v, `'"`)):
				b.WriteString(v)
			case json && strings.HasPrefix(v, `"`):
				b.WriteString(`"` + Placeholder + `"`)
			default:
				b.WriteString(Placeholder)
			}
			off += n
		case u != nil:
			b.WriteString(s[off:u[0]])
			end := len(s)
			if !whole {
				if i := strings.IndexFunc(s[u[1]:], isSpace); i >= 0 {
					end = u[1] + i
				}
			}
			b.WriteString(redactURL(s[u[0]:end], u[1]-u[0]))
			off = end
		default:
			b.WriteString(s[off:])
			off = len(s)
		}
	}
	return b.String()
}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f':
		return true
	}
	return false
}

// redactURL redacts one URL token; rest is where its authority starts.
func redactURL(u string, rest int) string {
	var b strings.Builder
	tail := u[rest:]
	if at := strings.LastIndexByte(tail, '@'); at >= 0 {
		userinfo := tail[:at]
		if colon := strings.IndexByte(userinfo, ':'); colon >= 0 && !onlyRefs(userinfo[colon+1:]) {
			userinfo = userinfo[:colon+1] + Placeholder
		}
		b.WriteString(u[:rest])
		b.WriteString(userinfo)
		b.WriteByte('@')
		tail = tail[at+1:]
	} else {
		b.WriteString(u[:rest])
	}
	q := strings.IndexByte(tail, '?')
	if q < 0 {
		b.WriteString(tail)
		return b.String()
	}
	b.WriteString(tail[:q+1])
	query, frag := tail[q+1:], ""
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query, frag = query[:h], query[h:]
	}
	for i, p := range strings.Split(query, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, v, ok := strings.Cut(p, "=")
		name := k
		if dk, err := url.QueryUnescape(k); err == nil {
			name = dk
		}
		if ok && Key(name) && !onlyRefs(v) {
			p = k + "=" + Placeholder
		}
		b.WriteString(p)
	}
	b.WriteString(frag)
	return b.String()
}

// valueLen returns the length of the value at the start of s: a quoted part
// up to its unescaped closing quote (backslash escapes, as libpq and JSON
// write them) or a bare part (libpq's backslash escapes included; quotes in it
// are literal) up to white space or, in JSON, the end of the string or a ','
// or '}'. A quoted part run on by more text ('it”s') is one value: more is
// hidden rather than less.
func valueLen(s string, json bool) int {
	i := 0
	for i < len(s) && (s[i] == '\'' || s[i] == '"') {
		q := s[i]
		i++
		for i < len(s) && s[i] != q {
			if s[i] == '\\' {
				i++
			}
			i++
		}
		i = min(i+1, len(s))
		if json {
			return i
		}
	}
	for ; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return i
		case json && (c == ',' || c == '}'):
			return i
		}
	}
	return len(s)
}

package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse decodes a YAML or JSON document strictly: unknown keys are errors.
func Parse(b []byte) (File, error) {
	var f File
	if err := decodeStrict(b, &f); err != nil {
		return File{}, err
	}
	return f, nil
}

// ParsePipeline decodes one pipeline document strictly.
func ParsePipeline(b []byte) (Pipeline, error) {
	var p Pipeline
	err := decodeStrict(b, &p)
	return p, err
}

// ParseConnection decodes one connection document strictly.
func ParseConnection(b []byte) (Connection, error) {
	var c Connection
	err := decodeStrict(b, &c)
	return c, err
}

// LoadFile reads and parses a config file.
func LoadFile(path string) (File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("read config: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

func decodeStrict(b []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return errors.New(strings.Join(te.Errors, "; "))
		}
		return err
	}
	return nil
}

// envRef matches ${NAME} and ${file:/path}.
var envRef = regexp.MustCompile(`\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand returns a copy of n with every ${NAME} replaced by the environment
// variable's value and every ${file:/path} by the file's content (trailing newline
// dropped). Each missing variable or unreadable file is one error naming its path.
func Expand(n *yaml.Node, path string, getenv func(string) (string, bool)) (*yaml.Node, error) {
	if n == nil || n.Kind == 0 {
		return n, nil
	}
	out := *n
	var errs Problems
	switch n.Kind {
	case yaml.ScalarNode:
		out.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			ref := m[2 : len(m)-1]
			if file, ok := strings.CutPrefix(ref, "file:"); ok {
				b, err := os.ReadFile(file)
				if err != nil {
					errs.add(path, "cannot read secret file %s: %v", file, errors.Unwrap(err))
					return ""
				}
				return strings.TrimRight(string(b), "\r\n")
			}
			v, ok := getenv(ref)
			if !ok {
				errs.add(path, "environment variable %s is not set", ref)
			}
			return v
		})
		if out.Value != n.Value {
			out.Tag, out.Style = "!!str", yaml.DoubleQuotedStyle
			// A value that is exactly one reference takes the type of what it
			// expands to, so `port: ${PG_PORT}` is a number.
			if envRef.FindString(n.Value) == n.Value {
				var probe yaml.Node
				if yaml.Unmarshal([]byte(out.Value), &probe) == nil && len(probe.Content) == 1 {
					switch t := probe.Content[0].Tag; t {
					case "!!int", "!!float", "!!bool":
						out.Tag, out.Style = t, 0
					}
				}
			}
		}
	case yaml.MappingNode, yaml.SequenceNode, yaml.DocumentNode:
		out.Content = make([]*yaml.Node, len(n.Content))
		for i, c := range n.Content {
			sub := path
			if n.Kind == yaml.MappingNode && i%2 == 1 {
				sub = path + "." + n.Content[i-1].Value
			} else if n.Kind == yaml.SequenceNode {
				sub = fmt.Sprintf("%s[%d]", path, i)
			}
			e, err := Expand(c, sub, getenv)
			var sub2 Problems
			if errors.As(err, &sub2) {
				errs = append(errs, sub2...)
			}
			out.Content[i] = e
		}
	}
	return &out, errs.err()
}

// Merge merges two mapping nodes (a connection's config and a pipeline's) into a
// new one. A key present in both is an error naming it.
func Merge(conn, local *yaml.Node, connName string) (*yaml.Node, error) {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	var errs []error
	seen := map[string]bool{}
	for _, n := range []*yaml.Node{conn, local} {
		if n == nil || n.Kind == 0 {
			continue
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			n = n.Content[0]
		}
		if n.Kind != yaml.MappingNode {
			errs = append(errs, fmt.Errorf("line %d: config must be a mapping", n.Line))
			continue
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if seen[k] {
				errs = append(errs, fmt.Errorf("%q is set both by connection %q and by the pipeline; set it in one place", k, connName))
				continue
			}
			seen[k] = true
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return out, errors.Join(errs...)
}

// secretKey matches config keys whose values are secrets.
var secretKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|private_key|api_key|credentials|passphrase|hmac_key|^key$)`)

// Redacted is what a secret value is shown as.
const Redacted = "******"

// ToJSON converts a config node to plain JSON-able data with every secret redacted:
// values under secret-looking keys (unless they are only ${ENV} / ${file:} references)
// and passwords inside URLs (postgres://user:pass@host).
func ToJSON(n *yaml.Node) (any, error) {
	if n == nil || n.Kind == 0 {
		return nil, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return redact(v, ""), nil
}

func redact(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redact(e, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redact(e, key)
		}
		return out
	case string:
		if secretKey.MatchString(key) && envRef.ReplaceAllString(x, "") != "" {
			return Redacted
		}
		return RedactURL(x)
	}
	if secretKey.MatchString(key) && v != nil {
		return Redacted
	}
	return v
}

var urlPassword = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*:)([^@]*)(@.*)$`)

// RedactURL replaces the password of a URL-shaped string (and a password=… pair of
// a key-value DSN) with Redacted.
func RedactURL(s string) string {
	if m := urlPassword.FindStringSubmatch(s); m != nil && envRef.ReplaceAllString(m[2], "") != "" {
		return m[1] + Redacted + m[3]
	}
	if strings.Contains(s, "password=") {
		return regexp.MustCompile(`password=('[^']*'|\S+)`).ReplaceAllString(s, "password="+Redacted)
	}
	return s
}

// RedactedJSON renders a pipeline or connection for display, secrets redacted.
func RedactedJSON(v any) (json.RawMessage, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	d, err := ToJSON(&n)
	if err != nil {
		return nil, err
	}
	return json.Marshal(d)
}

// Marshal renders v (a Pipeline, Connection or File) as JSON, secrets kept: this is
// the form stored (sealed) in the metadata store.
func Marshal(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	var plain any
	if err := n.Decode(&plain); err != nil {
		return nil, err
	}
	return json.Marshal(plain)
}

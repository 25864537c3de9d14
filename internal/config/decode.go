package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/cdcd-dev/cdcd/internal/redact"
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

// RejectAliases returns an error if the YAML document b uses anchors or
// aliases (JSON has neither): documents that arrive over the API have no use
// for them, and aliases can make a small body expand into a huge one.
func RejectAliases(b []byte) error {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return err
	}
	var found error
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if found != nil {
			return
		}
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			found = fmt.Errorf("line %d: YAML anchors and aliases are not accepted; write the values out", n.Line)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&n)
	return found
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

// Redacted is what a secret value is shown as.
const Redacted = redact.Placeholder

// ToJSON converts a config node to plain JSON-able data with every secret
// redacted (redact.Value): values under secret-looking keys, unless they are
// only ${ENV} / ${file:} references, and passwords inside connection strings.
func ToJSON(n *yaml.Node) (any, error) {
	if n == nil || n.Kind == 0 {
		return nil, nil
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return redactValue(v, ""), nil
}

func redactValue(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redactValue(e, k)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e, key)
		}
		return out
	case string:
		return redact.Value(key, x)
	}
	if redact.Key(key) && v != nil {
		return Redacted
	}
	return v
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
//
// The JSON is also YAML, so that the strict YAML decoder reads it back: the
// characters YAML does not allow raw or reads as line breaks (DEL, the C1
// controls, U+2028, U+2029, U+FFFE and U+FFFF), which JSON allows, are written
// as \u escapes.
func Marshal(v any) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return nil, err
	}
	var plain any
	if err := n.Decode(&plain); err != nil {
		return nil, err
	}
	b, err := json.Marshal(plain)
	if err != nil {
		return nil, err
	}
	return yamlSafe(b), nil
}

// yamlSafe escapes, in JSON text, the characters YAML does not allow raw;
// they can only be inside strings, where an escape means the same.
func yamlSafe(b []byte) []byte {
	notYAML := func(r rune) bool {
		return r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfffe || r == 0xffff || r == 0x2028 || r == 0x2029
	}
	if !bytes.ContainsFunc(b, notYAML) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for _, r := range string(b) {
		if notYAML(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

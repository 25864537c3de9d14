package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// envRef matches ${NAME} and ${file:/path}.
var envRef = regexp.MustCompile(`\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*)\}`)

// Secrets resolves the ${NAME} and ${file:/path} references of a document,
// within what the operator allowed. Whoever wrote a document decides nothing:
// a server resolves for an API caller only the environment variables and files
// its operator listed at start, so that no caller can read the server's key,
// files or environment through a reference (into a preview, or into a
// connection test that sends it to a server of the caller's choosing).
//
// The zero value allows nothing. A Secrets is immutable and safe for
// concurrent use.
type Secrets struct {
	// All allows every reference: for documents the operator hands to the CLI
	// (`cdcd run -f`, `cdcd config check`).
	All bool
	// EnvPrefixes are the prefixes of the environment variables a reference
	// may name (`--secret-env-prefix`).
	EnvPrefixes []string
	// Dirs are the directories whose files a reference may name
	// (`--secrets-dir`), absolute.
	Dirs []string
	// DenyEnv and DenyFiles are never resolved, even under an allowed prefix
	// or directory: the server's own key and store.
	DenyEnv   []string
	DenyFiles []string
	// Lookup and ReadFile read the environment and files; nil means
	// os.LookupEnv and os.ReadFile.
	Lookup   func(string) (string, bool)
	ReadFile func(string) ([]byte, error)
}

// AllSecrets allows every reference, read from this process's environment
// and files.
var AllSecrets = Secrets{All: true}

// Allowed reports whether ref (what is between "${" and "}") may be resolved,
// and if not, says why and what the operator can change.
func (s Secrets) Allowed(ref string) error {
	if s.All {
		return nil
	}
	if file, ok := strings.CutPrefix(ref, "file:"); ok {
		return s.allowedFile(file)
	}
	if slices.Contains(s.DenyEnv, ref) {
		return fmt.Errorf("${%s} is the server's own setting and is never resolved", ref)
	}
	for _, p := range s.EnvPrefixes {
		if p != "" && strings.HasPrefix(ref, p) && len(ref) > len(p) {
			return nil
		}
	}
	if len(s.EnvPrefixes) == 0 {
		return fmt.Errorf("${%s}: this server resolves no environment variables (start it with --secret-env-prefix)", ref)
	}
	return fmt.Errorf("${%s}: this server resolves only environment variables starting with %s (--secret-env-prefix)", ref, strings.Join(s.EnvPrefixes, " or "))
}

func (s Secrets) allowedFile(file string) error {
	if len(s.Dirs) == 0 {
		return fmt.Errorf("${file:%s}: this server resolves no files (start it with --secrets-dir)", file)
	}
	if !filepath.IsAbs(file) {
		return fmt.Errorf("${file:%s}: give an absolute path under %s (--secrets-dir)", file, strings.Join(s.Dirs, " or "))
	}
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		real = filepath.Clean(file) // it does not exist: reading it fails anyway
	}
	for _, d := range s.DenyFiles {
		if within(real, realPath(d)) {
			return fmt.Errorf("${file:%s} is the server's own key or store and is never resolved", file)
		}
	}
	for _, d := range s.Dirs {
		if within(real, realPath(d)) {
			return nil
		}
	}
	return fmt.Errorf("${file:%s}: this server resolves only files under %s (--secrets-dir)", file, strings.Join(s.Dirs, " or "))
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// within reports whether path is dir or lies under it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func (s Secrets) lookup(name string) (string, bool) {
	if s.Lookup != nil {
		return s.Lookup(name)
	}
	return os.LookupEnv(name)
}

func (s Secrets) readFile(path string) ([]byte, error) {
	if s.ReadFile != nil {
		return s.ReadFile(path)
	}
	return os.ReadFile(path)
}

// Check returns every reference in n that s does not allow, one problem each,
// at its path, without resolving anything.
func (s Secrets) Check(n *yaml.Node, path string) error {
	var ps Problems
	walkScalars(n, path, func(v *yaml.Node, at string) {
		for _, m := range envRef.FindAllStringSubmatch(v.Value, -1) {
			if err := s.Allowed(m[1]); err != nil {
				ps.add(at, "%v", err)
			}
		}
	})
	return ps.err()
}

// walkScalars calls f for every scalar of n with its path.
func walkScalars(n *yaml.Node, path string, f func(*yaml.Node, string)) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		f(n, path)
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkScalars(c, path, f)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkScalars(n.Content[i+1], path+"."+n.Content[i].Value, f)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkScalars(c, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}

// Expand returns a copy of n with every ${NAME} replaced by the environment
// variable's value and every ${file:/path} by the file's content (trailing
// newline dropped). Each reference s does not allow, missing variable or
// unreadable file is one problem naming its path; nothing is read for a
// reference that is not allowed.
func (s Secrets) Expand(n *yaml.Node, path string) (*yaml.Node, error) {
	if n == nil || n.Kind == 0 {
		return n, nil
	}
	out := *n
	var errs Problems
	switch n.Kind {
	case yaml.ScalarNode:
		out.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			ref := m[2 : len(m)-1]
			if err := s.Allowed(ref); err != nil {
				errs.add(path, "%v", err)
				return ""
			}
			if file, ok := strings.CutPrefix(ref, "file:"); ok {
				b, err := s.readFile(file)
				if err != nil {
					errs.add(path, "cannot read secret file %s: %v", file, errors.Unwrap(err))
					return ""
				}
				return strings.TrimRight(string(b), "\r\n")
			}
			v, ok := s.lookup(ref)
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
			e, err := s.Expand(c, sub)
			var sub2 Problems
			if errors.As(err, &sub2) {
				errs = append(errs, sub2...)
			}
			out.Content[i] = e
		}
	}
	return &out, errs.err()
}

// Recording returns a copy of s that also appends every value it resolves to
// *seen, so that a caller can scrub them from what it shows (a preview, a
// connection test's answer). The copy must not be used concurrently.
func (s Secrets) Recording(seen *[]string) Secrets {
	lookup, read := s.lookup, s.readFile
	s.Lookup = func(name string) (string, bool) {
		v, ok := lookup(name)
		if ok && v != "" {
			*seen = append(*seen, v)
		}
		return v, ok
	}
	s.ReadFile = func(path string) ([]byte, error) {
		b, err := read(path)
		if v := strings.TrimRight(string(b), "\r\n"); err == nil && v != "" {
			*seen = append(*seen, v)
		}
		return b, err
	}
	return s
}

// Unredact replaces, in place, what a client sent back of a redacted display
// with the stored value it stands for: a scalar that is exactly Redacted, or
// that equals the display of the stored value at the same path (a connection
// string whose password shows as ******), becomes the stored value. Any other
// use of the placeholder is a problem at its path, so that a write never
// stores the placeholder as a password.
func Unredact(n, stored *yaml.Node, path string) error {
	var ps Problems
	unredact(n, stored, path, "", &ps)
	return ps.err()
}

func unredact(n, stored *yaml.Node, path, key string, ps *Problems) {
	if n == nil {
		return
	}
	if stored != nil && stored.Kind == yaml.DocumentNode && len(stored.Content) == 1 {
		stored = stored.Content[0]
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			unredact(c, stored, path, key, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			unredact(n.Content[i+1], child(stored, k), path+"."+k, k, ps)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			var sc *yaml.Node
			if stored != nil && stored.Kind == yaml.SequenceNode && i < len(stored.Content) {
				sc = stored.Content[i]
			}
			unredact(c, sc, fmt.Sprintf("%s[%d]", path, i), key, ps)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, Redacted) {
			return
		}
		switch {
		case stored == nil || stored.Kind != yaml.ScalarNode:
			ps.add(path, "is the redaction placeholder %s, but no value is stored here to keep: send the value itself", Redacted)
		case n.Value == Redacted || n.Value == redactScalar(key, stored):
			*n = *stored
		default:
			ps.add(path, "holds the redaction placeholder %s but differs from the stored value elsewhere: send the whole value, or exactly what was shown to keep it", Redacted)
		}
	}
}

// redactScalar is how a stored scalar is shown (ToJSON's rule for one value).
func redactScalar(key string, n *yaml.Node) string {
	if v, ok := redactValue(n.Value, key).(string); ok {
		return v
	}
	return Redacted
}

// child returns the value under key of a mapping node, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Unredact restores in p what a client sent back of the stored pipeline's
// redacted display (see the function Unredact): the source's and sink's
// config, and each transform's config matched by the transform's name.
func (p *Pipeline) Unredact(stored Pipeline) error {
	var ps Problems
	path := fmt.Sprintf("pipelines[%s]", p.Name)
	unredact(&p.Source.Config, &stored.Source.Config, path+".source.config", "", &ps)
	unredact(&p.Sink.Config, &stored.Sink.Config, path+".sink.config", "", &ps)
	named := stored.WithDefaults().Transforms
	for i := range p.Transforms {
		t := &p.Transforms[i]
		name := t.nameAt(i)
		var sc *yaml.Node
		if j := slices.IndexFunc(named, func(s Transform) bool { return s.Name == name && s.Type == t.Type }); j >= 0 {
			sc = &named[j].Config
		}
		unredact(&t.Config, sc, fmt.Sprintf("%s.transforms[%d].config", path, i), "", &ps)
	}
	return ps.err()
}

package config

import (
	"errors"
	"fmt"
	"github.com/cdcd-dev/cdcd/internal/component"
	pathpkg "path"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/registry"
	"github.com/cdcd-dev/cdcd/schema"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
	"go.yaml.in/yaml/v3"
)

var (
	// PipelineName is the rule for pipeline names: they feed slot and publication
	// names, which Postgres limits to 63 bytes.
	PipelineName = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)
	// ConnectionName is the rule for connection names.
	ConnectionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
)

// Problem is one validation error at a path.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) Error() string { return p.Path + ": " + p.Message }

// Problems is every validation error found. It is returned as an error.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// Permanent marks invalid config as not retryable.
func (ps Problems) Permanent() bool { return true }

func (ps *Problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// addErr adds err at path, one problem per joined error.
func (ps *Problems) addErr(path string, err error) {
	var many interface{ Unwrap() []error }
	if errors.As(err, &many) {
		for _, e := range many.Unwrap() {
			ps.addErr(path, e)
		}
		return
	}
	var nested Problems
	if errors.As(err, &nested) {
		for _, p := range nested {
			ps.add(path+"."+p.Path, "%s", p.Message)
		}
		return
	}
	var one Problem
	if errors.As(err, &one) {
		ps.add(path+"."+one.Path, "%s", one.Message)
		return
	}
	ps.add(path, "%s", err.Error())
}

func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Validate checks f against the registry and returns every problem (as Problems),
// or nil. known holds connections defined elsewhere (the metadata store) that
// pipelines may name. It builds every component to validate its config, which
// does no I/O.
func Validate(f File, reg *registry.Registry, known map[string]Connection, sec Secrets) error {
	var ps Problems
	conns := map[string]Connection{}
	for k, c := range known {
		conns[k] = c
	}
	for i, c := range f.Connections {
		path := fmt.Sprintf("connections[%s]", c.Name)
		if c.Name == "" {
			path = fmt.Sprintf("connections[%d]", i)
		}
		ps = append(ps, validateConnection(c, path, reg)...)
		if _, dup := conns[c.Name]; dup && c.Name != "" {
			if _, ext := known[c.Name]; !ext {
				ps.add(path+".name", "duplicate connection name %q", c.Name)
			}
		}
		conns[c.Name] = c
	}
	seen := map[string]bool{}
	for i, p := range f.Pipelines {
		path := fmt.Sprintf("pipelines[%s]", p.Name)
		if p.Name == "" {
			path = fmt.Sprintf("pipelines[%d]", i)
		}
		if seen[p.Name] && p.Name != "" {
			ps.add(path+".name", "duplicate pipeline name %q", p.Name)
		}
		seen[p.Name] = true
		ps = append(ps, validatePipeline(p, path, reg, conns, sec)...)
	}
	if f.Alerts != nil {
		ps = append(ps, validateAlerts(*f.Alerts, "alerts", reg, conns)...)
	}
	return ps.err()
}

// ValidateConnection checks one connection, and that sec allows every
// reference in its config.
func ValidateConnection(c Connection, reg *registry.Registry, sec Secrets) error {
	ps := validateConnection(c, "connection", reg)
	var rps Problems
	if errors.As(sec.Check(&c.Config, "connection.config"), &rps) {
		ps = append(ps, rps...)
	}
	return ps.err()
}

func validateConnection(c Connection, path string, reg *registry.Registry) Problems {
	var ps Problems
	if !ConnectionName.MatchString(c.Name) {
		ps.add(path+".name", "must match %s", ConnectionName)
	}
	_, isSrc := reg.Sources[c.Type]
	_, isSink := reg.Sinks[c.Type]
	_, isNotifier := reg.Notifiers[c.Type]
	if !isSrc && !isSink && !isNotifier {
		ps.add(path+".type", "unknown type %q (sources: %s; sinks: %s; alert channels: %s)", c.Type,
			strings.Join(registry.Names(reg.Sources), ", "), strings.Join(registry.Names(reg.Sinks), ", "), strings.Join(registry.Names(reg.Notifiers), ", "))
	}
	if c.Config.Kind != 0 && c.Config.Kind != yaml.MappingNode {
		ps.add(path+".config", "must be a mapping")
		return ps
	}
	// the keys and their kinds must fit the type in one of its roles
	type role struct {
		name  string
		spec  func() any
		build func(n *yaml.Node) error // decode, defaults, validate: no I/O
	}
	var roles []role
	if f, ok := reg.Sources[c.Type]; ok && f.Spec != nil {
		roles = append(roles, role{"a source", f.Spec, func(n *yaml.Node) error { _, err := f.New(n, sources.Deps{Pipeline: "p"}); return err }})
	}
	if f, ok := reg.Sinks[c.Type]; ok && f.Spec != nil {
		roles = append(roles, role{"a destination", f.Spec, func(n *yaml.Node) error { _, err := f.New(n, sinks.Deps{Pipeline: "p"}); return err }})
	}
	if f, ok := reg.Notifiers[c.Type]; ok && f.Spec != nil {
		roles = append(roles, role{"an alert channel", f.Spec, func(n *yaml.Node) error { _, err := f.New(n, notify.Deps{}); return err }})
	}
	var misfits []string
	for _, r := range roles {
		err := decodeSpec(r.spec, &c.Config)
		if err == nil {
			// the values the connection sets must be valid too; what it
			// leaves out (tables, say) a pipeline may set
			valueProblems(&ps, path+".config", &c.Config, r.build)
			return ps
		}
		misfits = append(misfits, fmt.Sprintf("as %s: %s", r.name, err))
	}
	if len(misfits) == 1 {
		ps.add(path+".config", "%s", strings.TrimPrefix(misfits[0], "as "+roles[0].name+": "))
	} else if len(misfits) > 1 {
		ps.add(path+".config", "fits no role of a %s connection: %s", c.Type, strings.Join(misfits, "; "))
	}
	return ps
}

// decodeSpec decodes n strictly into a fresh value of spec's type. A value
// that is a ${…} reference stands for what it will resolve to: its key is
// checked, not its kind.
func decodeSpec(spec func() any, n *yaml.Node) error {
	v := reflect.New(reflect.TypeOf(spec()))
	v.Elem().Set(reflect.ValueOf(spec()))
	if err := component.Decode(withoutRefs(n), v.Interface()); err != nil {
		return errors.New(PlainYAML(err.Error()))
	}
	return nil
}

var (
	yamlCollection = regexp.MustCompile(`line \d+: cannot unmarshal !!(seq|map) into (\S+)`)
	yamlUnknown    = regexp.MustCompile(`line \d+: field (\S+) not found in type \S+`)
	yamlKind       = regexp.MustCompile("line \\d+: cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// PlainYAML says a YAML decoding error in the user's terms: the key, not
// the Go type.
func PlainYAML(s string) string {
	s = yamlUnknown.ReplaceAllString(s, "unknown key \"$1\"")
	s = yamlCollection.ReplaceAllStringFunc(s, func(m string) string {
		g := yamlCollection.FindStringSubmatch(m)
		return fmt.Sprintf("a %s where %s is expected", map[string]string{"seq": "list", "map": "mapping"}[g[1]], kind(g[2]))
	})
	return yamlKind.ReplaceAllStringFunc(s, func(m string) string {
		g := yamlKind.FindStringSubmatch(m)
		want := map[bool]string{true: "a number", false: "a " + strings.TrimLeft(g[3], "[]*")}[strings.HasPrefix(g[3], "int") || strings.HasPrefix(g[3], "uint") || strings.HasPrefix(g[3], "float")]
		switch {
		case strings.HasPrefix(g[3], "[]"):
			want = "a list"
		case strings.HasPrefix(g[3], "map"), strings.Contains(g[3], "."):
			want = "a mapping"
		case g[3] == "bool":
			want = "true or false"
		case g[3] == "string":
			want = "a string"
		}
		return fmt.Sprintf("%q must be %s", g[2], want)
	})
}

// kind names a Go type as a config value.
func kind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a mapping"
}

// ValidatePipeline checks one pipeline against the known connections.
func ValidatePipeline(p Pipeline, reg *registry.Registry, conns map[string]Connection, sec Secrets) error {
	path := fmt.Sprintf("pipelines[%s]", p.Name)
	return validatePipeline(p, path, reg, conns, sec).err()
}

func validatePipeline(p Pipeline, path string, reg *registry.Registry, conns map[string]Connection, sec Secrets) Problems {
	var ps Problems
	if !PipelineName.MatchString(p.Name) {
		ps.add(path+".name", "must match %s", PipelineName)
	}
	p = p.WithDefaults()
	b := p.Batch
	if b.MaxChanges < 1 || b.MaxChanges > 1_000_000 {
		ps.add(path+".batch.max_changes", "must be between 1 and 1000000, got %d", b.MaxChanges)
	}
	if b.MaxBytes < 1<<10 || b.MaxBytes > 1<<30 {
		ps.add(path+".batch.max_bytes", "must be between 1KiB and 1GiB, got %s", b.MaxBytes)
	}
	if b.MaxWait < Duration(time.Millisecond) || b.MaxWait > Duration(time.Hour) {
		ps.add(path+".batch.max_wait", "must be between 1ms and 1h, got %s", time.Duration(b.MaxWait))
	}
	if b.MinWait < 0 || b.MinWait > b.MaxWait {
		ps.add(path+".batch.min_wait", "must be between 0 and max_wait (%s), got %s", time.Duration(b.MaxWait), time.Duration(b.MinWait))
	}
	if p.DrainTimeout < Duration(time.Second) {
		ps.add(path+".drain_timeout", "must be at least 1s")
	}
	if r := p.Retry; r.Backoff < Duration(10*time.Millisecond) || r.Backoff > Duration(time.Hour) {
		ps.add(path+".retry.backoff", "must be between 10ms and 1h, got %s", time.Duration(r.Backoff))
	} else if r.MaxBackoff < r.Backoff || r.MaxBackoff > Duration(24*time.Hour) {
		ps.add(path+".retry.max_backoff", "must be between retry.backoff (%s) and 24h, got %s", time.Duration(r.Backoff), time.Duration(r.MaxBackoff))
	}
	if e := p.Verify.Every; e != 0 && (e < Duration(time.Second) || e > Duration(365*24*time.Hour)) {
		ps.add(path+".verify.every", "must be 0 (no schedule) or between 1s and 8760h, got %s", time.Duration(e))
	} else if e == 0 && p.Verify.Repair {
		ps.add(path+".verify.repair", "needs verify.every: repair applies to the scheduled verifies")
	}
	if p.Retry.MaxAttempts < 0 {
		ps.add(path+".retry.max_attempts", "must be 0 (retry for as long as it takes) or more, got %d", p.Retry.MaxAttempts)
	}

	ps = append(ps, validateSchemaChanges(p.SchemaChanges, path+".schema_changes")...)
	switch p.OnTransformError {
	case "", "stop", "skip":
	default:
		ps.add(path+".on_transform_error", "must be stop or skip, got %q", p.OnTransformError)
	}

	r, rps := resolve(p, path, reg, conns, sec)
	ps = append(ps, rps...)
	for i, t := range p.Transforms {
		tp := fmt.Sprintf("%s.transforms[%d]", path, i)
		f, ok := reg.Transforms[t.Type]
		if !ok {
			ps.add(tp+".type", "unknown transform %q (known: %s)", t.Type, strings.Join(registry.Names(reg.Transforms), ", "))
			continue
		}
		if i >= len(r.Transforms) || r.Transforms[i] == nil {
			continue
		}
		if _, err := f.New(r.Transforms[i], transforms.Deps{}); err != nil {
			ps.addErr(tp+".config", err)
		}
	}
	if f, ok := reg.Sources[r.SourceType]; ok && r.Source != nil {
		if _, err := f.New(r.Source, sources.Deps{Pipeline: p.Name}); err != nil {
			ps.addErr(path+".source.config", err)
		}
	}
	if f, ok := reg.Sinks[r.SinkType]; ok && r.Sink != nil {
		if _, err := f.New(r.Sink, sinks.Deps{Pipeline: p.Name}); err != nil {
			ps.addErr(path+".sink.config", err)
		}
	}
	return ps
}

// Resolved is a pipeline with its connections merged in and its ${…} references
// expanded: what the components are built from.
type Resolved struct {
	Pipeline    Pipeline
	SourceType  string
	Source      *yaml.Node
	SinkType    string
	Sink        *yaml.Node
	Transforms  []*yaml.Node
	Connections []string // names of the connections used
}

// Resolve merges and expands p (defaults applied).
func Resolve(p Pipeline, reg *registry.Registry, conns map[string]Connection, sec Secrets) (*Resolved, error) {
	p = p.WithDefaults()
	r, ps := resolve(p, fmt.Sprintf("pipelines[%s]", p.Name), reg, conns, sec)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return r, nil
}

func resolve(p Pipeline, path string, reg *registry.Registry, conns map[string]Connection, sec Secrets) (*Resolved, Problems) {
	var ps Problems
	r := &Resolved{Pipeline: p}
	endpoint := func(e Endpoint, epath, kind string, known func(string) bool, names []string) (string, *yaml.Node) {
		var typ string
		var connCfg *yaml.Node
		switch {
		case e.Connection != "" && e.Type != "":
			ps.add(epath, "set either connection or type, not both")
			return "", nil
		case e.Connection != "":
			c, ok := conns[e.Connection]
			if !ok {
				ps.add(epath+".connection", "no connection named %q", e.Connection)
				return "", nil
			}
			typ, connCfg = c.Type, &c.Config
			r.Connections = append(r.Connections, c.Name)
		case e.Type != "":
			typ = e.Type
		default:
			ps.add(epath, "needs a connection or a type")
			return "", nil
		}
		if !known(typ) {
			ps.add(epath+".type", "%q is not a %s type (known: %s)", typ, kind, strings.Join(names, ", "))
			return "", nil
		}
		merged, err := Merge(connCfg, &e.Config, e.Connection)
		if err != nil {
			ps.addErr(epath+".config", err)
			return "", nil
		}
		expanded, err := sec.Expand(merged, epath+".config")
		var eps Problems
		if errors.As(err, &eps) {
			ps = append(ps, eps...)
			return "", nil
		}
		return typ, expanded
	}
	r.SourceType, r.Source = endpoint(p.Source, path+".source", "source", func(t string) bool { _, ok := reg.Sources[t]; return ok }, registry.Names(reg.Sources))
	r.SinkType, r.Sink = endpoint(p.Sink, path+".sink", "sink", func(t string) bool { _, ok := reg.Sinks[t]; return ok }, registry.Names(reg.Sinks))
	for i, t := range p.Transforms {
		n, err := sec.Expand(&t.Config, fmt.Sprintf("%s.transforms[%d].config", path, i))
		var eps Problems
		if errors.As(err, &eps) {
			ps = append(ps, eps...)
		}
		r.Transforms = append(r.Transforms, n)
	}
	return r, ps
}

func validateSchemaChanges(sc SchemaChanges, path string) Problems {
	var ps Problems
	check := func(p SchemaPolicy, at string) {
		for _, f := range p.fields() {
			field, v := f[0], f[1]
			if v == "" {
				continue
			}
			ok := slices.Contains(schema.PolicyActions[field], schema.Action(v))
			if !ok {
				var allowed []string
				for _, a := range schema.PolicyActions[field] {
					allowed = append(allowed, string(a))
				}
				ps.add(at+"."+field, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
			}
		}
	}
	check(sc.SchemaPolicy, path)
	for i, t := range sc.Tables {
		at := fmt.Sprintf("%s.tables[%d]", path, i)
		if _, err := pathpkg.Match(t.Match, ""); err != nil || t.Match == "" {
			ps.add(at+".match", "must be a table name or pattern like public.* (got %q)", t.Match)
		}
		check(t.SchemaPolicy, at)
	}
	return ps
}

func (p SchemaPolicy) fields() [][2]string {
	return [][2]string{{"add_column", p.AddColumn}, {"widen", p.Widen}, {"drop_column", p.DropColumn},
		{"rename_column", p.RenameColumn}, {"narrow", p.Narrow}, {"key_change", p.KeyChange}}
}

// Policy returns the engine's form of p.
func (p SchemaPolicy) Policy() schema.EvolutionPolicy {
	return schema.EvolutionPolicy{AddColumn: schema.Action(p.AddColumn), Widen: schema.Action(p.Widen),
		DropColumn: schema.Action(p.DropColumn), RenameColumn: schema.Action(p.RenameColumn),
		Narrow: schema.Action(p.Narrow), KeyChange: schema.Action(p.KeyChange)}
}

// Evolution returns the engine's form of sc.
func (sc SchemaChanges) Evolution() schema.Evolution {
	e := schema.Evolution{Default: sc.Policy()}
	for _, t := range sc.Tables {
		e.Tables = append(e.Tables, schema.TablePolicy{Pattern: t.Match, Policy: t.SchemaPolicy.Policy()})
	}
	return e
}

// withoutRefs returns a copy of n with every scalar that holds a ${…}
// reference replaced by null.
func withoutRefs(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	if c.Kind == yaml.ScalarNode && strings.Contains(c.Value, "${") {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: c.Line, Column: c.Column}
	}
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, x := range n.Content {
		c.Content[i] = withoutRefs(x)
	}
	return &c
}

// valueProblems builds a component from a connection's config (its ${…}
// references left out) and adds each of the component's problems that names
// a key the config sets ("delete_mode: must be soft or hard"): a value wrong
// whatever a pipeline adds. Problems with keys the config does not set are
// a pipeline's to solve and are left to its validation.
func valueProblems(ps *Problems, path string, n *yaml.Node, build func(*yaml.Node) error) {
	plain := withoutRefs(n)
	set := map[string]bool{}
	if plain != nil && plain.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(plain.Content); i += 2 {
			if v := plain.Content[i+1]; v.Tag != "!!null" {
				set[plain.Content[i].Value] = true
			}
		}
	}
	if len(set) == 0 {
		return
	}
	err := build(plain)
	if err == nil {
		return
	}
	var found Problems
	found.addErr("", err)
	for _, p := range found {
		key, msg, ok := strings.Cut(p.Message, ": ")
		base, _, _ := strings.Cut(key, ".")
		base, _, _ = strings.Cut(base, "[")
		if ok && set[base] {
			ps.add(path+"."+key, "%s", msg)
		}
	}
}

package component

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"
)

// Factory builds one kind of component (a "postgres" source, a "file" sink) from
// its config. Constructors do no I/O: connections are made in Open.
type Factory[T, D any] struct {
	// Spec returns a zero config value with its defaults applied, for docs and
	// config schemas.
	Spec func() any
	// New decodes raw strictly, applies defaults, validates and constructs.
	New func(raw *yaml.Node, deps D) (T, error)
}

// Decode decodes raw into dst, rejecting unknown keys. A nil or empty node leaves
// dst as it is. Problems are reported with the YAML line they are on.
func Decode(raw *yaml.Node, dst any) error {
	if raw == nil || raw.Kind == 0 {
		return nil
	}
	b, err := yaml.Marshal(raw)
	if err != nil {
		return fmt.Errorf("re-encode config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return errors.New(joinLines(te.Errors))
		}
		return err
	}
	return nil
}

func joinLines(errs []string) string {
	var b bytes.Buffer
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e)
	}
	return b.String()
}

// IsPermanent reports whether err (or an error it wraps) says it must not be
// retried, through a `Permanent() bool` method (pgx's SafeToRetry style).
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// NeedsResync reports whether err says the pipeline's history is lost and it must
// be re-snapshotted (a dropped slot, purged binlogs), through a `NeedsResync() bool`
// method.
func NeedsResync(err error) bool {
	var p interface{ NeedsResync() bool }
	return errors.As(err, &p) && p.NeedsResync()
}

// PermanentError wraps an error to mark it permanent.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) Permanent() bool { return true }

// Permanent marks err permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Register registers c on reg and returns it, or the collector already
// registered under the same description (the components of several pipelines
// share one registry). A nil reg leaves c unexported (tests).
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Settings is a component's config: it fills its defaults and validates itself.
type Settings[C any] interface {
	WithDefaults() C
	Validate() error
}

// Configured makes the Factory of a component whose config is a C: Spec is C's
// defaults, and New decodes the raw config strictly, applies the defaults,
// validates and calls build with the result.
func Configured[C Settings[C], T, D any](build func(c C, deps D) T) Factory[T, D] {
	return Factory[T, D]{
		Spec: func() any {
			var c C
			return c.WithDefaults()
		},
		New: Decoded(func(c C, d D) (T, error) {
			c = c.WithDefaults()
			if err := c.Validate(); err != nil {
				var zero T
				return zero, err
			}
			return build(c, d), nil
		}),
	}
}

// Decoded makes a Factory.New from build: the raw config is decoded strictly
// (Decode) into a C first, so that a component writes only what is its own —
// defaults, validation, construction.
func Decoded[C, T, D any](build func(c C, deps D) (T, error)) func(raw *yaml.Node, deps D) (T, error) {
	return func(raw *yaml.Node, deps D) (T, error) {
		var c C
		if err := Decode(raw, &c); err != nil {
			var zero T
			return zero, err
		}
		return build(c, deps)
	}
}

// Leftover is state a component keeps on a server for a pipeline that a
// forced delete could not remove: what it is, and the statements that remove
// it by hand.
type Leftover struct {
	What string `json:"what"`
	SQL  string `json:"sql"`
}

// Package registry holds the component factories of one process by type name:
// sources, sinks and transforms. cmd/cdcd fills one explicitly; tests build
// their own. There is no global registry and no init() registration.
//
// It sits below the config and the control plane, which validate documents
// against it, and above the component interfaces it names.
package registry

import (
	"maps"
	"slices"

	"github.com/cdcd-dev/cdcd/internal/component"
	"github.com/cdcd-dev/cdcd/notify"
	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Registry holds the component factories by type name.
type Registry struct {
	Sources    map[string]sources.Factory
	Sinks      map[string]sinks.Factory
	Transforms map[string]transforms.Factory
	// Notifiers are the alert channels' types: a connection of one of them
	// is a place alerts are sent to.
	Notifiers map[string]notify.Factory
}

// New returns an empty Registry.
func New() *Registry {
	return &Registry{Sources: map[string]sources.Factory{}, Sinks: map[string]sinks.Factory{}, Transforms: map[string]transforms.Factory{},
		Notifiers: map[string]notify.Factory{}}
}

// Names lists the registered type names of one kind, sorted.
func Names[F any](m map[string]F) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Types describes every type a connection or a transform can have, with the
// keys of its config in each role: what forms are built from. The same specs
// decode and validate the documents, so a form cannot offer a key the
// server would refuse.
type Types struct {
	Connections []ConnectionType `json:"connections"`
	Transforms  []TypeFields     `json:"transforms"`
}

// ConnectionType is a connection type and the roles it can play.
type ConnectionType struct {
	Type  string       `json:"type"`
	Roles []TypeFields `json:"roles"`
}

// TypeFields is a config's keys in one role (source, destination,
// alert_channel) or of one transform type.
type TypeFields struct {
	Role   string            `json:"role,omitempty"`
	Type   string            `json:"type,omitempty"`
	Fields []component.Field `json:"fields"`
}

// Describe returns the Types of r, sorted by name.
func (r *Registry) Describe() Types {
	fields := func(spec func() any) []component.Field {
		if spec == nil {
			return []component.Field{}
		}
		f := component.Fields(spec())
		if f == nil {
			f = []component.Field{}
		}
		return f
	}
	byType := map[string]*ConnectionType{}
	add := func(typ, role string, spec func() any) {
		ct := byType[typ]
		if ct == nil {
			ct = &ConnectionType{Type: typ}
			byType[typ] = ct
		}
		ct.Roles = append(ct.Roles, TypeFields{Role: role, Fields: fields(spec)})
	}
	for _, k := range slices.Sorted(maps.Keys(r.Sources)) {
		add(k, "source", r.Sources[k].Spec)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Sinks)) {
		add(k, "destination", r.Sinks[k].Spec)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Notifiers)) {
		add(k, "alert_channel", r.Notifiers[k].Spec)
	}
	out := Types{Connections: []ConnectionType{}, Transforms: []TypeFields{}}
	for _, k := range slices.Sorted(maps.Keys(byType)) {
		out.Connections = append(out.Connections, *byType[k])
	}
	for _, k := range slices.Sorted(maps.Keys(r.Transforms)) {
		out.Transforms = append(out.Transforms, TypeFields{Type: k, Fields: fields(r.Transforms[k].Spec)})
	}
	return out
}

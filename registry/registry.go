// Package registry holds the component factories of one process by type name:
// sources, sinks and transforms. cmd/cdcd fills one explicitly; tests build
// their own. There is no global registry and no init() registration.
//
// It sits below the config and the control plane, which validate documents
// against it, and above the component interfaces it names.
package registry

import (
	"slices"

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

package pipeline

import (
	"slices"

	"github.com/cdcd-dev/cdcd/sinks"
	"github.com/cdcd-dev/cdcd/sources"
	"github.com/cdcd-dev/cdcd/transforms"
)

// Registry holds the component factories by type name. cmd/cdcd fills it
// explicitly; tests build their own. There is no global registry.
type Registry struct {
	Sources    map[string]sources.Factory
	Sinks      map[string]sinks.Factory
	Transforms map[string]transforms.Factory
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{Sources: map[string]sources.Factory{}, Sinks: map[string]sinks.Factory{}, Transforms: map[string]transforms.Factory{}}
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

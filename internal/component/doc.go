// Package component holds what every pluggable kind (source, sink, transform)
// shares: the Factory shape and strict decoding of a component's config.
//
// It is a leaf: it imports nothing of cdcd's. Everything here is safe for
// concurrent use.
package component

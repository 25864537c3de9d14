// Package app wires cdcd's parts together for `cdcd serve` and `cdcd run`: it turns
// a declared pipeline into a supervised runner (resolving connections and secrets,
// acquiring the lease epoch, building components with a store-backed schema
// registry and fenced snapshot progress), and implements the control operations
// the API and CLI use (apply, pause, resume, delete, test a connection).
//
// Concurrency: an App is safe for concurrent use; the Supervisor it holds must be
// running (Supervisor.Run) for pipelines to move.
package app

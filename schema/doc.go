// Package schema is cdcd's data model: the Change events that flow through a
// pipeline, the ordered Row of Fields, the closed set of Value kinds, the Table and
// Column shapes with their Versions, the Deltas between versions, the Batch that is
// the unit of work, and the Registry that ties each table version to the source
// position where it came into force.
//
// Invariants:
//   - A Value is one of a closed set of kinds (see Kind). Decimals travel as exact
//     text and never pass through float64.
//   - A Row keeps its column order, so SQL column lists and golden files are
//     deterministic.
//   - A Change is encoded with exactly one table Version, and a Delta reaches a sink
//     before the first Change that needs it (Batch.Deltas precede Batch.Changes).
//   - A schema belongs to a position (DESIGN.md §4, invariant 5): the Registry
//     answers "which version was in force at this position", never "what is the
//     live catalog now".
//
// Concurrency: Value, Row, Change, Table and Delta are plain values; a Batch is owned
// by one stage at a time and handed over through a channel. The Registry returned by
// NewRegistry is safe for concurrent use.
//
// This package imports only offsets.
package schema

// Package transforms declares single-message transforms (SMTs) and the Chain that
// runs them per pipeline: each transform maps a table's shape once per version
// (Schema) and edits changes as a pure function (Apply).
//
// Built-in transforms live in sub-packages, one each, and import only schema.
//
// Concurrency: a Chain is used by one goroutine (the pipeline's transform stage).
// Transforms themselves hold no mutable state after construction.
package transforms

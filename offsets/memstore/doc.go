// Package memstore is an in-memory offsets.Store for tests and for `cdcd run`
// pipelines that opt out of persistence. It applies the same rules as the durable
// stores (offsets.CheckCommit) and is safe for concurrent use.
package memstore

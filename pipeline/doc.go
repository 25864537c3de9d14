// Package pipeline is cdcd's engine: a Runner moves one pipeline's changes through
// four stages, read → transform → write → commit, and a Supervisor owns the runners,
// restarts them after retryable failures and parks them after permanent ones.
//
// Invariants (DESIGN.md §4):
//   - Write order: sink write returns → the in-flight Tracker resolves the highest
//     contiguous durable checkpoint → offset store commit under the runner's lease
//     epoch → source Ack. The offset store is never ahead of the sink and the source
//     is never acked ahead of the offset store.
//   - Checkpoints only land on transaction ends (Batch.Checkpoint).
//   - Memory is bounded: stages are joined by channels of at most QueueDepth batches,
//     each batch is bounded by MaxChanges and MaxBytes, and the Tracker admits a
//     bounded number of batches in flight. A full channel stops the reader.
//
// Concurrency: each stage is one goroutine in one errgroup owned by Runner.Run,
// which returns only after all of them have exited. The Supervisor owns one
// goroutine per pipeline and waits for all of them in Run. Status methods are safe
// to call from any goroutine.
package pipeline

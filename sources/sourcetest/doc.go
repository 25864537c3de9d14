// Package sourcetest is the conformance suite every source passes:
// sourcetest.Run(t, newHarness). It drives a Source directly (no engine) against
// a real server through a small Harness, and checks open/close idempotence,
// ordering, resume without a gap, replay of only unacknowledged transactions,
// a column added mid-stream, reconnection after the server drops the session,
// and no checkpoint inside a transaction. Leaks are checked for the whole package
// by VerifyTestMain, which every source's TestMain calls.
//
// Each subtest gets a fresh Harness; subtests run in parallel.
package sourcetest

// Package testenv starts private database servers for tests: each on a free port
// on 127.0.0.1, in its own directory, as a direct child of the test process (so
// SIGKILL and restart are exact and a crashed test takes its servers with it), torn
// down by t.Cleanup. No test depends on a server someone else left running.
//
// Servers come from Debian's packages (the test command installs them). When a
// server's binaries are missing a test is skipped, except under CI=true, where it
// fails: CI must never pass by skipping its peers.
//
// Concurrency: each server value is used by the test that started it; Kill,
// Restart and Stop must not race with each other.
package testenv

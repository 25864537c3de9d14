// Package e2e is the crash oracle: tests that run the real cdcd binary as a
// separate process against private servers, inject faults (SIGKILL of cdcd and
// of the databases, frozen servers, network cuts and hangs through an embedded
// a fault proxy, DDL mid-stream) at points chosen by a seeded RNG, and compare every
// source table with its destination by primary key and a hash of all columns.
//
//	go test ./test/e2e                          # 11 faults each (the test command runs this)
//	CDCD_CHAOS_FAULTS=200 go test -timeout 2h ./test/e2e   # the long run
//	CDCD_CHAOS_SEED=1234 go test ./test/e2e     # replay a printed seed
//	CDCD_CHAOS_LOG_DIR=/tmp go test ./test/e2e  # keep cdcd's whole log of a failed run
package e2e

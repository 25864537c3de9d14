package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Schemathesis returns the `st` command of Schemathesis (the OpenAPI fuzzer,
// from PyPI): CDCD_SCHEMATHESIS, or the virtualenv scripts/test creates in
// ~/.cache/cdcd/schemathesis. Without it the test is skipped, or fails under CI.
func Schemathesis(t testing.TB) string {
	t.Helper()
	st := os.Getenv("CDCD_SCHEMATHESIS")
	if st == "" {
		home, _ := os.UserHomeDir()
		st = filepath.Join(home, ".cache", "cdcd", "schemathesis", "bin", "st")
	}
	if err := exec.Command(st, "--version").Run(); err != nil {
		unavailable(t, "schemathesis: %s does not run (scripts/test installs it; or set CDCD_SCHEMATHESIS): %v", st, err)
	}
	return st
}

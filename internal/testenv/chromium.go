package testenv

import (
	"os/exec"
	"testing"
)

// Chromium returns the path of the system's Chromium (Debian's chromium
// package; nothing downloads a browser), or skips the test (fails it under
// CI=true).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	unavailable(t, "chromium is not installed (Debian package chromium)")
	return ""
}

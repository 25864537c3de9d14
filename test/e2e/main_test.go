package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cdcd-chaos-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "cdcd")
	out, err := exec.Command("go", "build", "-o", binary, "../../cmd/cdcd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build cdcd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

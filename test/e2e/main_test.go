package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
)

var binary string

func TestMain(m *testing.M) {
	var dir string
	var err error
	if binary, dir, err = testenv.BuildCDCD("../../cmd/cdcd"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

package e2e

import (
	"os"
	"testing"

	"github.com/cdcd-dev/cdcd/internal/testenv"
)

var binary string

func TestMain(m *testing.M) { os.Exit(testenv.RunWithCDCD(m, "../../cmd/cdcd", &binary)) }

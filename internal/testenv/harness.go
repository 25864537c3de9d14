package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
)

// EnvInt reads a positive size from the environment (long runs raise it), or
// returns def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Output collects a child process's output; safe for concurrent writes.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Tail returns the last n bytes written.
func (o *Output) Tail(n int) string {
	s := o.String()
	return s[max(0, len(s)-n):]
}

// RunWithCDCD is a TestMain body for tests that run the binary as a separate
// process: it builds cdcd from the package directory pkg (relative to the
// test's directory) into a temporary directory, sets *binary, runs the tests
// and removes the build.
func RunWithCDCD(m interface{ Run() int }, pkg string, binary *string) int {
	dir, err := os.MkdirTemp("", "cdcd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "cdcd")
	if out, err := exec.Command("go", "build", "-o", *binary, pkg).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build cdcd: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

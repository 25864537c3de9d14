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

// RunWithCDCD is a TestMain body for tests that run the binary: it builds cdcd
// from pkg into *binary, runs the tests and removes the build.
func RunWithCDCD(m interface{ Run() int }, pkg string, binary *string) int {
	bin, dir, err := BuildCDCD(pkg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = bin
	return m.Run()
}

// BuildCDCD builds the cdcd binary from the package directory pkg (relative to
// the calling test's directory) into a temporary directory, for tests that run
// it as a separate process. Call it from TestMain; remove the directory after.
func BuildCDCD(pkg string) (binary, dir string, err error) {
	dir, err = os.MkdirTemp("", "cdcd-bin-")
	if err != nil {
		return "", "", err
	}
	binary = filepath.Join(dir, "cdcd")
	if out, err := exec.Command("go", "build", "-o", binary, pkg).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build cdcd: %v\n%s", err, out)
	}
	return binary, dir, nil
}

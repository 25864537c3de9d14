package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI=true.
func InCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("test peer unavailable under CI=true: %s", msg)
	}
	t.Skipf("test peer unavailable: %s (run scripts/test to install it)", msg)
}

// FreePort returns a port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is one server process started as a direct child.
type process struct {
	name   string
	args   []string
	dir    string
	log    string
	cred   *syscall.Credential
	env    []string // added to this process's environment
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.name, p.args...)
	cmd.Dir = p.dir
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// signal sends sig to the server and waits up to d for it to exit; it SIGKILLs
// it if it has not. SIGKILL takes the whole process tree: Postgres backends call
// setsid(), so they are not in the postmaster's process group and would outlive
// it, holding its shared memory.
func (p *process) signal(sig syscall.Signal, d time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	pid := cmd.Process.Pid
	if sig == syscall.SIGKILL {
		killTree(pid)
		<-exited
		return
	}
	_ = syscall.Kill(-pid, sig)
	select {
	case <-exited:
	case <-time.After(d):
		killTree(pid)
		<-exited
	}
}

// killTree freezes pid (so it forks no more), SIGKILLs it and every descendant,
// and waits until each has exited (a zombie counts as exited: it holds no memory).
func killTree(pid int) {
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		all = append(all, childrenOf(all[i])...)
	}
	for _, q := range all {
		_ = syscall.Kill(q, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for _, q := range all[1:] {
		for alive(q) && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		q, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _ := procStat(q); ppid == pid {
			out = append(out, q)
		}
	}
	return out
}

// procStat returns the parent pid and state of q from /proc/q/stat.
func procStat(q int) (ppid int, state byte) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(q) + "/stat")
	if err != nil {
		return 0, 0
	}
	// the command may contain spaces and parentheses: fields follow the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+4 > len(b) {
		return 0, 0
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 2 {
		return 0, 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0]
}

func alive(q int) bool {
	_, state := procStat(q)
	return state != 0 && state != 'Z' && state != 'X'
}

func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitReady polls ready until it succeeds, the process exits, or 60 s pass.
func (p *process) waitReady(ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if !p.running() {
			return fmt.Errorf("%s exited during start-up; log:\n%s", filepath.Base(p.name), p.logTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after 60s: %v; log:\n%s", filepath.Base(p.name), last, p.logTail())
}

// serverUser returns the credential to run servers with when we are root
// (Postgres refuses to run as root), creating nothing.
func serverUser(name string) (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("look up OS user %q: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// mkdirOwned makes a fresh directory under the system temp dir (t.TempDir's parent
// is private to root, which a server user cannot traverse) owned by uid:gid.
func mkdirOwned(t testing.TB, prefix string, uid, gid int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("make server dir: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("chown server dir: %v", err)
	}
	return dir
}

// copyTree copies a directory tree with cp -a, keeping owners and modes.
func copyTree(src, dst string) error {
	var out bytes.Buffer
	cmd := exec.Command("cp", "-a", src+"/.", dst)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, out.String())
	}
	return nil
}

// templateDir returns a directory initialised once per machine by initFn (an
// initdb or install-db run, ~1–2 s) and reused by later servers, which copy it.
// It is built in a temp dir and renamed into place, so concurrent test binaries
// never see a half-built template.
var templateMu sync.Mutex

func templateDir(key string, uid, gid int, initFn func(dir string) error) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	final := filepath.Join(os.TempDir(), "cdcd-testenv-"+key)
	if _, err := os.Stat(filepath.Join(final, ".complete")); err == nil {
		return final, nil
	}
	tmp, err := os.MkdirTemp("", "cdcd-testenv-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chown(tmp, uid, gid); err != nil {
		return "", err
	}
	if err := initFn(tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, ".complete")); serr == nil {
			return final, nil // another process won the race
		}
		return "", err
	}
	return final, nil
}

func runQuiet(cred *syscall.Credential, name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return nil
}

// findBinary returns the first existing path among candidates (globs allowed).
func findBinary(candidates ...string) (string, error) {
	for _, c := range candidates {
		matches, _ := filepath.Glob(c)
		for i := len(matches) - 1; i >= 0; i-- { // newest version last in lexical order
			if st, err := os.Stat(matches[i]); err == nil && !st.IsDir() {
				return matches[i], nil
			}
		}
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", errors.New("none of " + strings.Join(candidates, ", ") + " found")
}

// pause stops (SIGSTOP) or continues (SIGCONT) the server.
func (p *process) pause(stop bool) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	// the whole tree: a Postgres backend serves its client without the postmaster
	all := []int{cmd.Process.Pid}
	for i := 0; i < len(all); i++ {
		all = append(all, childrenOf(all[i])...)
	}
	for _, q := range all {
		_ = syscall.Kill(q, sig)
	}
}

// getOK GETs url and wants 200 OK: a readiness probe.
func getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Promtool returns the path of Prometheus's promtool (Debian's prometheus
// package; scripts/test installs it), or skips (fails under CI).
func Promtool(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		unavailable(t, "promtool (Debian package prometheus) is not installed")
	}
	return p
}

package testenv

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("read back %q: got %q, %v", line, got, err)
	}
}

func TestFaultProxyHangHoldsBytesUntilHealed(t *testing.T) {
	p := NewFaultProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip(t, c, r, "before")

	p.Hang()
	if _, err := io.WriteString(c, "held\n"); err != nil {
		t.Fatal(err)
	}
	// nothing comes back while the proxy hangs: the read times out
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if got, err := r.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during a hang: got %q, %v; want a timeout", got, err)
	}
	c.SetReadDeadline(time.Time{})

	// a Hang with a pipe blocked on a full peer must not block the caller
	p.Heal()
	got, err := r.ReadString('\n')
	if err != nil || got != "held\n" {
		t.Fatalf("after heal: got %q, %v", got, err)
	}
	roundTrip(t, c, r, "after")
}

func TestFaultProxyDownClosesAndRefusesUntilUp(t *testing.T) {
	p := NewFaultProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip(t, c, r, "before")

	p.Down()
	// the open connection ends
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection survived a cut")
	}
	// and new ones are refused until the proxy is up again
	if d, err := net.Dial("tcp", p.Addr()); err == nil {
		d.Close()
		t.Fatal("a cut proxy accepted a connection")
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("dial after the cut: %v", err)
	}
	defer c2.Close()
	roundTrip(t, c2, bufio.NewReader(c2), "after")
}

func TestFaultProxyCommandsDoNotBlockOnAStuckPeer(t *testing.T) {
	// the client never reads: the server's replies fill every buffer and the
	// pipe's write blocks. Changing faults must still return at once.
	p := NewFaultProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 64<<10)
	c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		if _, err := c.Write(chunk); err != nil {
			break // every buffer on the way is full
		}
	}
	p.SetLatency(10 * time.Millisecond)
	p.Hang()
	p.Heal()
	if err := p.Cut(0); err != nil {
		t.Fatal(err)
	}
	p.Close()
}

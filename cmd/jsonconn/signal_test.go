//go:build unix

package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestListenStopsCleanlyOnSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig    syscall.Signal
		status int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			sock := filepath.Join(t.TempDir(), "l.sock")
			l := start(t, nil, "listen", "-echo", "unix:"+sock)
			defer l.stdin.Close()
			awaitOutput(t, l.stderr, `listening on`)
			d := start(t, nil, "dial", "unix:"+sock)
			defer d.stdin.Close()
			d.stdin.Write([]byte("{\"n\":1}\n"))
			awaitOutput(t, d.stdout, `\{"n":1\}\n`)

			l.cmd.Process.Signal(tc.sig)
			if got := l.wait(); got != tc.status {
				t.Errorf("listen exit status %d, want %d", got, tc.status)
			}
			if got, want := l.stdout.String(), "{\"conn\":1,\"msg\":{\"n\":1}}\n"; got != want {
				t.Errorf("listen stdout = %q, want %q", got, want)
			}
			if !strings.Contains(l.stderr.String(), "shutting down") {
				t.Errorf("listen stderr = %q, want it to say it is shutting down", l.stderr)
			}
			if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the socket file outlived listen: %v", err)
			}
			// The connection was closed, so dial ends cleanly.
			if got := d.wait(); got != exitOK {
				t.Errorf("dial exit status %d, want 0", got)
			}
		})
	}
}

func TestDialStopsOnSignal(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	d := start(t, nil, "dial", ts.addr)
	defer d.stdin.Close()
	d.stdin.Write([]byte("{\"n\":1}\n"))
	awaitOutput(t, d.stdout, `\{"n":1\}\n`)
	d.cmd.Process.Signal(syscall.SIGINT)
	if got := d.wait(); got != 130 {
		t.Errorf("exit status %d, want 130", got)
	}
}

func TestBenchStopsOnSignalWithASummary(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	b := start(t, nil, "bench", "-count", "0", "-duration", "1h", "-size", "64", ts.addr)
	defer b.stdin.Close()
	for deadline := time.Now().Add(hang); ts.receivedCount() < 100; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bench sent nothing")
		}
	}
	b.cmd.Process.Signal(syscall.SIGINT)
	if got := b.wait(); got != 130 {
		t.Errorf("exit status %d, want 130", got)
	}
	if !strings.Contains(b.stdout.String(), "bytes echoed over 1 connection(s)") {
		t.Errorf("stdout = %q, want a summary", b.stdout)
	}
}

// TestSecondSignalExitsAtOnce interrupts bench while it waits for a server
// that neither echoes nor closes; the second SIGINT does not wait.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	got, quit := make(chan struct{}), make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 10*(4+64)))
		close(got)
		<-quit // hold the connection open
	})
	t.Cleanup(func() { close(quit) }) // before rawServer's cleanup
	b := start(t, nil, "bench", "-count", "10", "-size", "64", addr)
	defer b.stdin.Close()
	// Once the server has the 10 messages, bench waits (for 10 s) for them
	// to come back.
	select {
	case <-got:
	case <-time.After(hang):
		t.Fatal("bench sent nothing")
	}
	b.cmd.Process.Signal(syscall.SIGINT)
	awaitOutput(t, b.stderr, `jsonconn bench: interrupt: shutting down \(interrupt again exits at once\)\n`)
	b.cmd.Process.Signal(syscall.SIGINT)
	if got := b.wait(); got != 130 {
		t.Errorf("exit status %d, want 130", got)
	}
	if !strings.Contains(b.stderr.String(), "jsonconn bench: interrupt again: exiting now") {
		t.Errorf("stderr = %q, want the second signal noted", b.stderr)
	}
}

//go:build unix

package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
			// The connection was closed, so dial ends cleanly at the
			// end of its stdin.
			awaitOutput(t, d.stderr, "closed the connection")
			d.stdin.Close()
			if got := d.wait(); got != exitOK {
				t.Errorf("dial exit status %d, want 0", got)
			}
		})
	}
}

func TestDialStopsOnSignal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig    syscall.Signal
		status int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			ts := serve(t, "tcp", nil, echo)
			d := start(t, nil, "dial", ts.addr)
			defer d.stdin.Close()
			d.stdin.Write([]byte("{\"n\":1}\n"))
			awaitOutput(t, d.stdout, `\{"n":1\}\n`)
			d.cmd.Process.Signal(tc.sig)
			if got := d.wait(); got != tc.status {
				t.Errorf("exit status %d, want %d", got, tc.status)
			}
		})
	}
}

// TestListenSignalCutsAStuckLineShort stops listen while it sends stdin
// lines to three peers that do not read: one signal must do, though each
// message's write deadline (-write-timeout) is an hour away.
func TestListenSignalCutsAStuckLineShort(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "l.sock")
	l := start(t, nil, "listen", "-write-timeout", "1h", "unix:"+sock)
	awaitOutput(t, l.stderr, `listening on`)
	var c net.Conn
	for i := 1; i <= 3; i++ {
		pc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if c == nil {
			c = pc
		}
		awaitOutput(t, l.stderr, `conn `+strconv.Itoa(i)+`: opened`)
	}
	// Far more than the socket buffers hold; the writes block once they
	// are full, and so does this goroutine, until listen exits.
	line := `{"pad":"` + strings.Repeat("x", 1000) + "\"}\n"
	go func() {
		for i := 0; i < 100000; i++ {
			if _, err := io.WriteString(l.stdin, line); err != nil {
				return
			}
		}
	}()
	// Once bytes arrive, listen is sending lines; with nobody reading,
	// its writes soon block on every peer.
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	l.cmd.Process.Signal(syscall.SIGINT)
	if got := l.wait(); got != 130 {
		t.Errorf("exit status %d, want 130", got)
	}
	if strings.Contains(l.stderr.String(), "again: exiting now") {
		t.Errorf("listen needed a second signal:\n%s", l.stderr)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket file outlived listen: %v", err)
	}
}

// TestBenchSignalEndsAStalledRun interrupts bench while its server has
// stopped reading: bench exits at once with its summary.
func TestBenchSignalEndsAStalledRun(t *testing.T) {
	t.Parallel()
	got, quit := make(chan struct{}), make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 1000)) // then read nothing more
		close(got)
		<-quit
	})
	t.Cleanup(func() { close(quit) }) // before rawServer's cleanup
	b := start(t, nil, "bench", "-count", "10000000", "-size", "1KiB", addr)
	defer b.stdin.Close()
	select {
	case <-got:
	case <-time.After(hang):
		t.Fatal("bench sent nothing")
	}
	interruptBench(t, b, "messages of 1024 bytes echoed over 1 connection(s)")
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
	interruptBench(t, b, "messages of 64 bytes echoed over 1 connection(s)")
}

// interruptBench sends bench SIGINT and checks that it exits 130 with a
// summary containing want.
func interruptBench(t *testing.T, b *proc, want string) {
	t.Helper()
	b.cmd.Process.Signal(syscall.SIGINT)
	if status := b.wait(); status != 130 {
		t.Errorf("exit status %d, want 130", status)
	}
	if !strings.Contains(b.stdout.String(), want) {
		t.Errorf("stdout = %q, want a summary with %q", b.stdout, want)
	}
}

// TestSecondSignalExitsAtOnce drives the signal handling in the test
// process: the first signal cancels the context and says so, the second
// runs the forced-exit cleanups and exits with the signal's status.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	exited := make(chan int, 1)
	osExit = func(code int) { exited <- code }
	defer func() { osExit = os.Exit }()
	cleaned := make(chan struct{})
	atForcedExit(func() { close(cleaned) })
	defer func() { forcedExit.cleanups = nil }()

	sigs := make(chan os.Signal, 2)
	stderr := new(syncBuffer)
	ctx, status, stop := interrupts(&env{stderr: stderr, signals: sigs}, "test")
	defer stop()
	if status() != -1 {
		t.Fatalf("status before any signal = %d, want -1", status())
	}
	sigs <- syscall.SIGINT
	select {
	case <-ctx.Done():
	case <-time.After(hang):
		t.Fatal("the first signal did not cancel the context")
	}
	if status() != 130 {
		t.Errorf("status after SIGINT = %d, want 130", status())
	}
	sigs <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit code %d, want 143 for the second signal, SIGTERM", code)
		}
	case <-time.After(hang):
		t.Fatal("the second signal did not exit")
	}
	select {
	case <-cleaned:
	default:
		t.Error("the forced exit ran no cleanup")
	}
	want := "jsonconn test: interrupt: shutting down (interrupt again exits at once)\njsonconn test: terminated again: exiting now\n"
	if got := stderr.String(); got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

package main

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// blackhole returns a loopback address whose accept queue is full, so that
// a dial to it waits in SYN retries.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "blackhole")
	t.Cleanup(func() { f.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 4 { // fill the queue; the dial that would not fit times out
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

// TestTapShutdownCutsDialsShort: closing tap while it dials a target that
// does not answer returns at once, not after -dial-timeout.
func TestTapShutdownCutsDialsShort(t *testing.T) {
	t.Parallel()
	tp, ln, _ := startTapInProcess(t, blackhole(t), false, hang)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Wait until tap has the connection, and so is dialing.
	for deadline := time.Now().Add(hang); ; time.Sleep(5 * time.Millisecond) {
		tp.mu.Lock()
		n := len(tp.conns)
		tp.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tap did not take the connection")
		}
	}
	start := time.Now()
	ln.Close()
	tp.closeAll()
	if d := time.Since(start); d > hang/2 {
		t.Errorf("closeAll took %v with a dial pending (the dial timeout is %v)", d, hang)
	}
}

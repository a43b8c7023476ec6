package jsonconn_test

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// userTimeoutOf returns the TCP_USER_TIMEOUT of c's socket, in ms.
func userTimeoutOf(t testing.TB, c net.Conn) int {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 18) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// wantUserTimeout is what userTimeoutOf finds after Client.UserTimeout d.
func wantUserTimeout(d time.Duration) int { return int(d / time.Millisecond) }

package jsonconn

import (
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT, which package syscall lacks on some
// architectures.
const tcpUserTimeout = 18

// setUserTimeout sets TCP_USER_TIMEOUT on the socket c: how long sent data
// may stay unacknowledged before the kernel fails the connection with
// ETIMEDOUT.
func setUserTimeout(c syscall.RawConn, d time.Duration) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d/time.Millisecond))
	})
	if err != nil {
		return err
	}
	return serr
}

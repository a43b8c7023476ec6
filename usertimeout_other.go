//go:build !linux

package jsonconn

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing outside Linux, which alone has
// TCP_USER_TIMEOUT.
func setUserTimeout(syscall.RawConn, time.Duration) error { return nil }

//go:build !linux

package jsonconn_test

import (
	"net"
	"testing"
	"time"
)

// userTimeoutOf reports 0 outside Linux, which alone has TCP_USER_TIMEOUT.
func userTimeoutOf(testing.TB, net.Conn) int { return 0 }

// wantUserTimeout is 0 outside Linux: Client.UserTimeout has no effect there.
func wantUserTimeout(time.Duration) int { return 0 }

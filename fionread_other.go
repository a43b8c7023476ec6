//go:build unix && !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package jsonconn

// unreadOn reports 0 where package syscall gives no ioctl (AIX, Solaris,
// illumos): a Client's heartbeat then counts only the bytes read.
func unreadOn(uintptr) int { return 0 }

// peerClosedOn reports false where the package does not peek at a socket.
func peerClosedOn(uintptr) bool { return false }

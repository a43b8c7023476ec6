package jsonconntest

import (
	"net"
	"syscall"
	"unsafe"
)

// peerHasReadAll reports whether the peer has read everything written to c,
// where the system can tell (ok). It can for a Unix stream socket on Linux:
// what a sender writes stays charged to its socket until the receiver has
// read it, and SIOCOUTQ (TIOCOUTQ's value) reports that charge. The charge
// is memory, not bytes, and a partial read may leave it unchanged, so the
// only answer it gives reliably is whether it is zero. Over TCP the same
// call counts the bytes the peer's kernel has not acknowledged, which says
// nothing of what the peer has read, so ok is false there.
func peerHasReadAll(c net.Conn) (all, ok bool) {
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		return false, false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false, false
	}
	var charge int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&charge)))
	}); err != nil || errno != 0 {
		return false, false
	}
	return charge == 0, true
}

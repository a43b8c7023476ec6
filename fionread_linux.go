package jsonconn

import (
	"syscall"
	"unsafe"
)

// unreadOn returns the bytes the socket fd has received and not yet been
// read (the TIOCINQ ioctl, FIONREAD elsewhere), or 0 if the ioctl fails.
func unreadOn(fd uintptr) int {
	var n int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0
	}
	return int(n)
}

// peerClosedOn reports whether the socket fd has received the peer's end
// of stream with nothing unread before it: a read that would not block
// returns no byte.
func peerClosedOn(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == nil && n == 0
}

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

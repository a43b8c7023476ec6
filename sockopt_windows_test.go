package jsonconn_test

import "syscall"

// smallBuffers sets small send and receive buffers on a socket.
func smallBuffers(rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10)
	})
}

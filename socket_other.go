//go:build !unix

package jsonconn

import (
	"io"
	"net"
)

// sockSource reads sockets directly on Unix systems only; elsewhere every
// source reads into the Reader's pad.
type sockSource struct{}

func newSockSource(io.Reader, *Reader) *sockSource { return nil }

func (*sockSource) read(int) (int, error) { panic("unreachable") }

// unixStream reports whether c carries a byte stream. Without Unix's
// getsockopt, the network of its addresses tells: "unix" for a stream,
// "unixgram" or "unixpacket" otherwise. (Windows has stream sockets only.)
func unixStream(c *net.UnixConn) bool {
	for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
		if ua, ok := a.(*net.UnixAddr); ok && ua != nil {
			return ua.Net == "unix"
		}
	}
	return true
}

// peerReset reports whether err says that the peer reset the connection.
// Outside Unix systems the errors differ from system to system, so a reset
// counts as another I/O error.
func peerReset(error) bool { return false }

// unreadBytes would report the bytes a socket has received and nobody has
// read; outside Unix systems it reports none.
func unreadBytes(net.Conn) int { return 0 }

// peerClosed would report whether a socket has received the peer's end of
// stream; outside Unix systems it reports false.
func peerClosed(net.Conn) bool { return false }

package jsonconn

import (
	"errors"
	"fmt"
	"net"
)

// A sockKind says what a Reader's source or a Writer's destination is, as
// far as framing is concerned. socketKind is the one rule that decides it.
type sockKind int

const (
	// otherKind is anything that is not one of the socket types below: a
	// TLS conn, a pipe, a file, or a type that wraps or embeds a socket
	// (whose Read and Write may differ from the socket's).
	otherKind sockKind = iota

	// streamSocket is a *net.TCPConn, or a *net.UnixConn carrying a byte
	// stream. A Reader reads it directly on Unix systems, and a Writer hands
	// it a header and payload in one writev.
	streamSocket

	// messageSocket is a socket that keeps message boundaries: a
	// *net.UDPConn, a *net.IPConn, or a *net.UnixConn over a datagram or
	// seqpacket socket. A read shorter than the record loses the record's
	// rest, and a batch of frames would travel as one record, so frames
	// cannot be carried over it; see errMessageSocket.
	messageSocket
)

// socketKind classifies x, a Reader's source or a Writer's destination. Only
// the exact socket types of package net qualify.
func socketKind(x any) sockKind {
	switch c := x.(type) {
	case *net.TCPConn:
		return streamSocket
	case *net.UDPConn, *net.IPConn:
		return messageSocket
	case *net.UnixConn:
		if unixStream(c) {
			return streamSocket
		}
		return messageSocket
	}
	return otherKind
}

// errMessageSocket is the error of every read and write of a Reader, Writer
// or Conn over a socket that keeps message boundaries. It matches
// errors.ErrUnsupported.
func errMessageSocket(c any) error {
	network := "message"
	if nc, ok := c.(net.Conn); ok && nc.LocalAddr() != nil {
		network = nc.LocalAddr().Network()
	}
	return fmt.Errorf("jsonconn: a %s socket keeps message boundaries, and framing needs a byte stream: %w",
		network, errors.ErrUnsupported)
}

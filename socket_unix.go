//go:build unix

package jsonconn

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// A sockSource reads a stream socket (see socketKind) for a Reader. Each
// read attempt reads, without blocking, into the space the Reader's memory
// policy makes (sockSpace); if nothing has arrived, the Reader shrinks what
// it holds to fit (sockPark) and the goroutine waits for the socket to
// become readable through the runtime's network poller, as
// (*net.TCPConn).Read does. So one read system call brings in every byte
// that has arrived, up to the space made, and a Reader parked on a quiet or
// slow peer holds a buffer of the size of what it has received: none
// between frames.
//
// Reads go through syscall.RawConn, so the conn's deadlines, Close and the
// poller behave as they do for its own Read, and its read lock keeps them
// from overlapping with any other read of the socket. Errors are the ones
// the conn's Read returns, with one difference: a *net.OpError made here for
// a failed read system call (a reset, say) names the network "tcp" or
// "unix", where the conn's own names the network it was dialed or listened
// on ("tcp4", say) or, for a conn from net.FileConn, none.
type sockSource struct {
	rc           syscall.RawConn
	network      string // for errors, as the conn's own Read reports them
	laddr, raddr net.Addr
	r            *Reader // the Reader this reads for

	// tryRead is s.tryReadFd, bound once: a closure made per read would
	// escape to the heap through RawConn.Read and allocate every time.
	tryRead func(fd uintptr) bool

	// The argument and results of tryRead, for one read at a time (the
	// Reader's).
	need int
	n    int
	err  error
}

// unixStream reports whether c is a stream socket (SOCK_STREAM), as opposed
// to a datagram or seqpacket one.
func unixStream(c *net.UnixConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return true // closed or not a real socket: its Read reports that
	}
	typ := syscall.SOCK_STREAM
	rc.Control(func(fd uintptr) {
		if t, err := syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE); err == nil {
			typ = t
		}
	})
	return typ == syscall.SOCK_STREAM
}

// newSockSource returns a sockSource that reads src, which socketKind found
// to be a stream socket, for r; or nil if its descriptor cannot be had (a
// closed conn, whose Read then reports that).
func newSockSource(src io.Reader, r *Reader) *sockSource {
	c, ok := src.(interface {
		net.Conn
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	network := "tcp"
	if _, ok := src.(*net.UnixConn); ok {
		network = "unix"
	}
	s := &sockSource{rc: rc, network: network, laddr: c.LocalAddr(), raddr: c.RemoteAddr(), r: r}
	s.tryRead = s.tryReadFd
	return s
}

// read waits until the socket is readable or at its end, then reads once
// into the space the Reader makes for a frame that needs need bytes. It
// returns n >= 1 bytes, or the error the conn's Read would have returned:
// io.EOF at the end of the stream, or a *net.OpError.
func (s *sockSource) read(need int) (n int, err error) {
	s.need = need
	err = s.rc.Read(s.tryRead)
	n, rerr := s.n, s.err
	s.n, s.err = 0, nil
	if err != nil {
		// A deadline, or the conn closed: the same error as its Read
		// returns, which names the operation "read" rather than
		// "raw-read". RawConn.Read makes a new *net.OpError each time,
		// so it is ours to change.
		if oe, ok := err.(*net.OpError); ok && oe.Op == "raw-read" {
			oe.Op = "read"
		}
		return 0, err
	}
	if rerr != nil {
		return 0, &net.OpError{Op: "read", Net: s.network, Source: s.laddr, Addr: s.raddr, Err: os.NewSyscallError("read", rerr)}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// tryReadFd is the RawConn.Read callback of read: one read attempt, without
// blocking. If nothing has arrived it lets the Reader shrink what it holds
// and returns false, and the poller calls it again once the socket is
// readable.
func (s *sockSource) tryReadFd(fd uintptr) bool {
	p, prev := s.r.sockSpace(s.need)
	n, err := syscall.Read(int(fd), p)
	for err == syscall.EINTR {
		n, err = syscall.Read(int(fd), p)
	}
	if err == syscall.EAGAIN {
		s.r.sockPark(prev)
		return false
	}
	if n < 0 {
		n = 0
	}
	s.r.sockTook(n, prev)
	s.n, s.err = n, err
	return true
}

// peerReset reports whether err says that the peer reset the connection or
// closed it under a write: the peer's doing, not a fault of the connection.
func peerReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// unreadBytes returns how many bytes the socket under c (a TLS conn's own
// conn, for one) has received that nobody has read yet, or 0 if that cannot
// be told.
func unreadBytes(c net.Conn) int {
	n := 0
	controlSocket(c, func(fd uintptr) { n = unreadOn(fd) })
	return n
}

// peerClosed reports whether the socket under c has received the peer's
// end of stream with nothing unread before it, where that can be told.
func peerClosed(c net.Conn) bool {
	eof := false
	controlSocket(c, func(fd uintptr) { eof = peerClosedOn(fd) })
	return eof
}

// controlSocket runs f with the descriptor of the socket under c, if it
// has one.
func controlSocket(c net.Conn, f func(fd uintptr)) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		rc.Control(f)
	}
}

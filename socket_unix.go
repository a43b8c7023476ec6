//go:build unix

package jsonconn

import (
	"io"
	"net"
	"os"
	"syscall"
)

// A sockSource reads a stream socket (see socketKind) for a Reader with
// nothing buffered. It reads into a pooled buffer without blocking, and if
// nothing has arrived gives the buffer back and waits for the socket to
// become readable through the runtime's network poller, as
// (*net.TCPConn).Read does: one read system call brings in every byte that
// has arrived, up to the buffer's size, and a Reader blocked on a quiet peer
// holds no buffer.
// Other sources read into the Reader's pad instead (padSize bytes), which
// costs a second read system call whenever more than the pad holds is
// waiting (a 4 KiB message after a drain, for one).
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

	// tryRead is s.tryReadFd, bound once: a closure made per read would
	// escape to the heap through RawConn.Read and allocate every time.
	tryRead func(fd uintptr) bool

	// The arguments and results of tryRead, for one read at a time (the
	// Reader's).
	size int
	bufp *[]byte
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

// newSockSource returns a sockSource for src, which socketKind found to be a
// stream socket, or nil if its descriptor cannot be had (a closed conn,
// whose Read then reports that).
func newSockSource(src io.Reader) *sockSource {
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
	s := &sockSource{rc: rc, network: network, laddr: c.LocalAddr(), raddr: c.RemoteAddr()}
	s.tryRead = s.tryReadFd
	return s
}

// read waits until the socket is readable or at its end, then reads into a
// pooled buffer of at least size bytes. It returns the buffer with n >= 1
// bytes in it, or a nil buffer and the error the conn's Read would have
// returned: io.EOF at the end of the stream, or a *net.OpError.
func (s *sockSource) read(size int) (bufp *[]byte, n int, err error) {
	s.size = size
	err = s.rc.Read(s.tryRead)
	bufp, n, rerr := s.bufp, s.n, s.err
	s.bufp, s.err = nil, nil
	if err != nil {
		// A deadline, or the conn closed: the same error as its Read
		// returns, which names the operation "read" rather than
		// "raw-read". RawConn.Read makes a new *net.OpError each time,
		// so it is ours to change.
		if oe, ok := err.(*net.OpError); ok && oe.Op == "raw-read" {
			oe.Op = "read"
		}
		return nil, 0, err
	}
	if rerr != nil || n <= 0 {
		putBuf(bufp)
		if rerr == nil {
			return nil, 0, io.EOF
		}
		return nil, 0, &net.OpError{Op: "read", Net: s.network, Source: s.laddr, Addr: s.raddr, Err: os.NewSyscallError("read", rerr)}
	}
	return bufp, n, nil
}

// tryReadFd is the RawConn.Read callback of read. It takes a pooled buffer
// and reads into it without blocking; if nothing has arrived it gives the
// buffer back and returns false, and the poller calls it again once the
// socket is readable. So a Reader parked in the poller holds no buffer.
func (s *sockSource) tryReadFd(fd uintptr) bool {
	bufp := getBuf(s.size)
	n, err := syscall.Read(int(fd), *bufp)
	for err == syscall.EINTR {
		n, err = syscall.Read(int(fd), *bufp)
	}
	if err == syscall.EAGAIN {
		putBuf(bufp)
		return false
	}
	s.bufp, s.n, s.err = bufp, n, err
	return true
}

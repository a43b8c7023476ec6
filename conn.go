package jsonconn

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A Conn is a framed-JSON connection over a net.Conn. It is itself a net.Conn
// whose Read returns payload bytes (never of two messages in one call) and
// whose Write sends exactly one message, so it drops into code written for
// net.Conn, json.NewEncoder and json.NewDecoder included.
//
// A Conn is safe for concurrent use, like a net.Conn. Reading and writing have
// separate locks, so a blocked Read never delays a Write or Close. Concurrent
// writers never interleave their frames, and concurrent readers each get whole
// messages (Read callers get parts of one message each, in order). Writes and
// Sends that arrive while another is sending are coalesced: the next sender
// sends all the messages queued meanwhile together, in one writev on TCP and
// Unix sockets, and each caller gets its own message's result (except on a
// Conn served by a Server with a WriteTimeout, whose deadline is per message,
// and for the context calls, whose messages always go out alone).
//
// Deadlines are those of the wrapped conn and behave as net.Conn documents: an
// expired deadline makes pending and future calls return an error that is a
// net.Error with Timeout true and matches os.ErrDeadlineExceeded, and a
// deadline in the past aborts them at once. No deadline desynchronises the
// stream. A read that times out mid-frame keeps what it has received and the
// next read continues the frame. A write that times out before any byte of
// its frame left returns 0 and the message was not sent; one that times out
// after part of the frame left returns len(p) and an error matching
// [ErrPending]: the message is committed and the rest of its frame goes out
// ahead of the next message (or on [Conn.Flush]). Only a non-timeout error
// from the wrapped conn ends the write side; protocol violations by the peer
// end the read side and close the wrapped conn.
//
// Close unblocks pending calls; after Close every method returns an error
// matching net.ErrClosed.
//
// The context calls ([Conn.SendContext], [Conn.ReceiveContext],
// [Conn.ReadMessageContext], [Conn.AppendMessageContext] and
// [Conn.WriteBatchContext]) also stop when their ctx ends, with an error
// matching ctx.Err(), and the Conn stays open: an interrupted read keeps what
// arrived of a frame, and an interrupted write either did not send its
// message or committed it ([ErrPending]), as a deadline would. They
// interrupt their own I/O with a past deadline on the wrapped conn, and then
// put back the deadline last set through the Conn (one set on the wrapped
// conn directly is not known to it). With a ctx that cannot end, such as
// context.Background, they are the plain calls, at no cost.
//
// A Conn served by a [Server] adds the Server's rules: its reads return
// [ErrServerClosed] instead of waiting for a new message once Shutdown has
// begun, its IdleTimeout and FrameTimeout close it, and its WriteTimeout
// bounds each message.
//
// A Conn over a socket that keeps message boundaries (UDP, or a Unix datagram
// or seqpacket socket, which New accepts and Listen and Dial refuse) cannot
// carry frames: its reads and writes return an error matching
// errors.ErrUnsupported. Close and the address and deadline methods work as
// for any Conn.
type Conn struct {
	conn net.Conn
	hook connHook // set by a Server before its handler gets the Conn; nil otherwise

	// Read state. rmu guards r.
	rmu sync.Mutex
	r   Reader

	// Write state. wmu guards w and msgs; qmu guards the writers queued
	// behind the one sending. The lock order is wmu before qmu: the sender
	// takes the queue under qmu while it holds wmu, and nothing takes wmu
	// while it holds qmu.
	wmu     sync.Mutex
	w       Writer
	msgs    [][]byte // the batch being sent, kept for its array
	qmu     sync.Mutex
	sending bool        // a Write or Send is sending; others queue
	queue   []*writeReq // queued writers, in arrival order
	spare   []*writeReq // the array of the last batch, for the next queue
	alone   int         // queued writers that send alone (context calls)

	// Deadline state, for the context calls (context.go). dmu guards the
	// fields below. It is taken before a served Conn's hook takes its own
	// lock, never after.
	dmu       sync.Mutex
	rdeadline time.Time // the read deadline set through the Conn (without a hook)
	wdeadline time.Time // the write deadline likewise
	calls     uint64    // context calls armed so far, to number them
	rcall     uint64    // the context call in a read; 0 for none
	wcall     uint64    // the context call in a write; 0 for none
	rheld     bool      // rcall's ctx ended: the read deadline is held in the past
	wheld     bool      // wcall's ctx ended: the write deadline is held in the past

	testHookBatch func(n int) // if set, called with the size of each batch sent

	closed    atomic.Bool // Close was called
	netClosed atomic.Bool // the wrapped conn was closed: by Close, on a protocol violation or by a Server
	rdone     atomic.Bool // a read found the read side's stream ended, for a Client
}

// New returns a Conn that speaks framed JSON over c. A nil cfg means the
// defaults. The Conn owns c from then on: reading from or writing to c
// directly would corrupt the stream.
func New(c net.Conn, cfg *Config) *Conn {
	jc := &Conn{conn: c}
	kind := socketKind(c)
	jc.r.init(c, cfg, kind)
	jc.w.init(c, cfg, kind)
	return jc
}

// NetConn returns the wrapped conn. Reading or writing it directly would
// corrupt the stream; it is there for inspection (addresses, TLS state) and
// for options such as TCP keep-alive.
func (c *Conn) NetConn() net.Conn { return c.conn }

// Close closes the wrapped conn, which unblocks pending reads and writes;
// they and every later call return an error matching net.ErrClosed. Close does
// not wait for a pending frame rest (see Flush). Calling Close again returns
// an error matching net.ErrClosed, as *net.TCPConn does; if the Conn already
// closed the wrapped conn because the peer broke the protocol, the first Close
// returns nil.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opError("close", net.ErrClosed)
	}
	return c.closeNet(nil)
}

// abort closes c as Close does, but without waiting on the peer: under a
// *tls.Conn it closes the TLS conn's own conn, since the TLS conn's Close
// first writes a close_notify alert with a 5-second deadline. Server.Close
// uses it.
func (c *Conn) abort() {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	c.closeNetAbort(nil)
}

// closeNetAbort is closeNet without waiting on the peer: under a *tls.Conn
// it closes the TLS conn's own conn, skipping the close_notify alert. A
// Client closes its connections so.
func (c *Conn) closeNetAbort(cause error) error {
	nc := c.conn
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	return c.closeNetConn(nc, cause)
}

// closeNet closes the wrapped conn once, whoever asks first: Close (with a
// nil cause), a protocol violation (the violation) or a Server (its reason).
// It returns nil if the wrapped conn was already closed.
func (c *Conn) closeNet(cause error) error {
	return c.closeNetConn(c.conn, cause)
}

// closeNetConn is closeNet, closing nc: the wrapped conn, or the conn under
// it (abort).
func (c *Conn) closeNetConn(nc net.Conn, cause error) error {
	if !c.netClosed.CompareAndSwap(false, true) {
		return nil
	}
	if c.hook != nil {
		c.hook.ended(cause) // first: closing wakes the handler, which may ask why
	}
	return nc.Close()
}

// broke reports to a served Conn's hook that an I/O error ended one side.
func (c *Conn) broke(err error) {
	if c.hook != nil {
		c.hook.broke(err)
	}
}

// LocalAddr returns the local address of the wrapped conn.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote address of the wrapped conn.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the wrapped conn. See the
// Conn documentation for what a deadline does to a frame in flight.
func (c *Conn) SetDeadline(t time.Time) error {
	if c.hook != nil {
		return c.setError(c.hook.setDeadline(t, true, true))
	}
	return c.setError(c.setDeadline(t, true, true))
}

// SetReadDeadline sets the read deadline of the wrapped conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.hook != nil {
		return c.setError(c.hook.setDeadline(t, true, false))
	}
	return c.setError(c.setDeadline(t, true, false))
}

// SetWriteDeadline sets the write deadline of the wrapped conn. On a Conn
// served by a Server with a WriteTimeout, each message is bounded by the
// earlier of this deadline and its WriteTimeout.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	if c.hook != nil {
		return c.setError(c.hook.setDeadline(t, false, true))
	}
	return c.setError(c.setDeadline(t, false, true))
}

// setDeadline records t as the read deadline, the write deadline or both,
// for a context call to put back, and applies it to the wrapped conn unless
// a cancelled context call holds that side's deadline in the past: the call
// applies it when it returns.
func (c *Conn) setDeadline(t time.Time, read, write bool) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if read {
		c.rdeadline = t
	}
	if write {
		c.wdeadline = t
	}
	read = read && !c.rheld
	write = write && !c.wheld
	switch {
	case read && write:
		return c.conn.SetDeadline(t)
	case read:
		return c.conn.SetReadDeadline(t)
	case write:
		return c.conn.SetWriteDeadline(t)
	}
	return nil
}

// setError maps an error from setting a deadline: net.ErrClosed once the
// wrapped conn is closed.
func (c *Conn) setError(err error) error {
	if err != nil && c.netClosed.Load() {
		return c.opError("set", net.ErrClosed)
	}
	return err
}

// opError returns err wrapped like the errors of package net.
func (c *Conn) opError(op string, err error) error {
	e := &net.OpError{Op: op, Net: "jsonconn", Err: err}
	if a := c.conn.LocalAddr(); a != nil {
		e.Net, e.Source = a.Network(), a
	}
	e.Addr = c.conn.RemoteAddr()
	return e
}

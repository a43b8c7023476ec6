package jsonconn

import (
	"errors"
	"fmt"
	"io"
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
// Conn served by a Server with a WriteTimeout, whose deadline is per message).
//
// Deadlines are those of the wrapped conn and behave as net.Conn documents: an
// expired deadline makes pending and future calls return an error that is a
// net.Error with Timeout true and matches os.ErrDeadlineExceeded, and a
// deadline in the past aborts them at once. No deadline desynchronises the
// stream. A read that times out mid-frame keeps what it has received and the
// next read continues the frame. A write that times out before any byte of
// its frame left returns 0 and the message was not sent; one that times out
// after part of the frame left returns len(p) and an error matching ErrPending:
// the message is committed and the rest of its frame goes out ahead of the next
// message (or on Flush). Only a non-timeout error from the wrapped conn ends
// the write side; protocol violations by the peer end the read side and close
// the wrapped conn.
//
// Close unblocks pending calls; after Close every method returns an error
// matching net.ErrClosed.
type Conn struct {
	conn net.Conn

	// rmu guards r.
	rmu sync.Mutex
	r   Reader

	// wmu guards w and msgs.
	wmu  sync.Mutex
	w    Writer
	msgs [][]byte // the batch being sent, kept for its array (coalesce.go)

	// qmu guards the writers queued behind the one sending (coalesce.go).
	qmu     sync.Mutex
	sending bool        // a Write or Send is sending; others queue
	queue   []*writeReq // queued writers, in arrival order
	spare   []*writeReq // the array of the last batch, for the next queue

	testHookBatch func(n int) // if set, called with the size of each batch sent

	closed    atomic.Bool  // Close was called
	netClosed atomic.Bool  // the wrapped conn was closed, by Close, on a protocol violation or by a Server
	rdeadline atomic.Int64 // read deadline set by the caller, in Unix ns; 0 for none

	// Set by a Server before the Conn reaches its handler, then read-only.
	idleTimeout  time.Duration // a read waits at most this long for a whole message
	idleTimer    *time.Timer   // created stopped; closes the Conn when idleTimeout expires
	writeTimeout time.Duration // write deadline set before each message
	onDeath      func()        // called once when the Conn is closed or broken
	deathOnce    sync.Once

	// Server state, changed while the Conn is in use.
	idleAt      atomic.Int64 // when the armed idle timer expires, in Unix ns; 0 when disarmed
	draining    atomic.Bool  // the Server is shutting down: no new message will be waited for
	waiting     atomic.Bool  // a read is blocked waiting for the first byte of a frame
	interrupted atomic.Bool  // drain set a past read deadline to wake that read
}

// New returns a Conn that speaks framed JSON over c. A nil cfg means the
// defaults. The Conn owns c from then on: reading from or writing to c
// directly would corrupt the stream.
func New(c net.Conn, cfg *Config) *Conn {
	jc := &Conn{conn: c}
	jc.r.init(c, cfg)
	jc.r.waiter = jc
	jc.w.init(c, cfg)
	return jc
}

// serve configures c for a Server, before c reaches its handler.
func (c *Conn) serve(idle, write time.Duration, onDeath func()) {
	c.writeTimeout = write
	c.onDeath = onDeath
	if idle > 0 {
		c.idleTimeout = idle
		c.idleTimer = time.AfterFunc(time.Hour, c.idleExpired)
		c.idleTimer.Stop()
	}
}

// NetConn returns the wrapped conn. Reading or writing it directly would
// corrupt the stream; it is there for inspection (addresses, TLS state) and
// for options such as TCP keep-alive.
func (c *Conn) NetConn() net.Conn { return c.conn }

// Read reads payload bytes. It never returns bytes of two messages in one
// call; a message longer than p continues on the next call. See
// Reader.Read and Reader.ReadMessage for the errors; a protocol violation by
// the peer also closes the wrapped conn.
//
// A message that has already been received in full is returned even if the
// read deadline has passed, as crypto/tls does; the deadline governs waiting
// for the network.
func (c *Conn) Read(p []byte) (n int, err error) {
	err = c.read(func() (err error) {
		n, err = c.r.Read(p)
		return err
	})
	return n, err
}

// ReadMessage reads the next message and returns its payload in a new slice
// owned by the caller. See Reader.ReadMessage.
func (c *Conn) ReadMessage() (m []byte, err error) {
	err = c.read(func() (err error) {
		m, err = c.r.ReadMessage()
		return err
	})
	return m, err
}

// AppendMessage reads the next message and appends its payload to dst. See
// Reader.AppendMessage.
func (c *Conn) AppendMessage(dst []byte) ([]byte, error) {
	err := c.read(func() (err error) {
		dst, err = c.r.AppendMessage(dst)
		return err
	})
	return dst, err
}

// Receive reads the next message and decodes it into v. See Reader.Receive.
// Decoding happens under the read lock, so that a payload found invalid ends
// the stream before any later message is handed out; concurrent Receive calls
// therefore decode one at a time.
func (c *Conn) Receive(v any) error {
	return c.read(func() error { return c.r.Receive(v) })
}

// read runs f, one of c.r's reading methods, under the read lock. It applies
// a Server's idle timeout and draining, and maps f's error to what the Conn
// returns.
func (c *Conn) read(f func() error) error {
	if c.closed.Load() {
		return c.opError("read", net.ErrClosed)
	}
	err := c.readWithLock(f)
	if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrInvalidJSON) {
		// The peer broke the protocol: terminate the connection, outside
		// the lock, since closing a TLS conn may wait to send an alert.
		c.closeNet()
	}
	return err
}

// readWithLock runs readLocked under the read lock, which a panic in f (a
// destination's UnmarshalJSON, Config.Unmarshal) releases too.
func (c *Conn) readWithLock(f func() error) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	return c.readLocked(f)
}

func (c *Conn) readLocked(f func() error) error {
	if c.closed.Load() { // Close returned while this call waited for the lock
		return c.opError("read", net.ErrClosed)
	}
	if c.r.err == nil {
		c.armIdle()
	}
	for {
		err := f()
		if err == nil {
			c.disarmIdle()
			return nil
		}
		if isTimeout(err) && c.interrupted.CompareAndSwap(true, false) {
			// drain woke the read with a past deadline. Between frames
			// the retry ends in ErrServerClosed; inside one (drain raced
			// with the frame's first bytes) the caller's deadline comes
			// back and the frame is finished.
			if !c.r.atBoundary() {
				c.conn.SetReadDeadline(c.readDeadline())
			}
			continue
		}
		if !isTimeout(err) {
			c.disarmIdle() // the stream has ended: nothing more to wait for
		}
		return c.readError(err)
	}
}

// beginWait is called by the Reader before it blocks for the first byte of
// a frame with nothing buffered. It reports false if a Server is draining the
// Conn, in which case the Reader ends the stream with ErrServerClosed instead.
func (c *Conn) beginWait() bool {
	c.waiting.Store(true)
	if c.draining.Load() {
		c.waiting.Store(false)
		return false
	}
	return true
}

// endWait is called by the Reader when that blocking read returns.
func (c *Conn) endWait() { c.waiting.Store(false) }

// drain makes the Conn return ErrServerClosed from reads that would wait for
// a new message, and wakes a read already waiting for one. Messages the Conn
// has already received are still returned, a frame under way is finished,
// and writes are not affected.
func (c *Conn) drain() {
	c.draining.Store(true)
	// beginWait stores waiting before it loads draining, and drain does
	// the opposite, so a reader that is about to block either sees
	// draining or is seen here.
	if c.waiting.Load() {
		c.interrupted.Store(true)
		c.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline in the past, which aborts pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// readDeadline returns the read deadline the caller last set.
func (c *Conn) readDeadline() time.Time {
	if ns := c.rdeadline.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// armIdle starts the idle timer, unless an earlier read that is still
// waiting for its message already did.
func (c *Conn) armIdle() {
	if c.idleTimer != nil && c.idleAt.Load() == 0 {
		c.idleAt.Store(time.Now().Add(c.idleTimeout).UnixNano())
		c.idleTimer.Reset(c.idleTimeout)
	}
}

// disarmIdle stops the idle timer.
func (c *Conn) disarmIdle() {
	if c.idleTimer != nil && c.idleAt.Load() != 0 {
		c.idleAt.Store(0)
		c.idleTimer.Stop()
	}
}

// idleExpired runs when the idle timer fires, and closes the Conn if a read
// has been waiting since it was armed. The check makes a stale firing (a
// message completed at the same moment) harmless.
func (c *Conn) idleExpired() {
	if at := c.idleAt.Load(); at != 0 && time.Now().UnixNano() >= at {
		c.closeNet()
	}
}

// Write sends p as exactly one message. It returns len(p) or 0, never a part;
// see the Conn documentation for timeouts and Writer.Write for the rest.
// The checks of p run before the write lock is taken.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.w.check(p); err != nil {
		return 0, err
	}
	return c.writeMessage(p)
}

// Send encodes v as compact JSON and sends it as one message. Encoding
// happens before the write lock is taken. An error matching ErrPending means v
// was committed; any other error means it was not sent. See Writer.Send.
func (c *Conn) Send(v any) error {
	e, p, err := c.w.encode(v)
	if err != nil {
		return err
	}
	defer e.free()
	_, err = c.writeMessage(p)
	return err
}

// WriteBatch sends each element of msgs as one message, in order, in writev
// calls of up to 512 messages on TCP and Unix sockets. It returns how many messages were
// committed; see Writer.WriteBatch. The checks run before the write lock is
// taken, and the batch is never interleaved with another goroutine's frames.
// A Server's WriteTimeout applies to the batch as a whole.
func (c *Conn) WriteBatch(msgs [][]byte) (int, error) {
	if err := c.w.checkBatch(msgs); err != nil {
		return 0, err
	}
	return c.write(func() (int, error) { return c.w.writeFrames(msgs) })
}

// write runs f, one of c.w's writing methods, under the write lock, with a
// Server's write timeout, and maps its error to what the Conn returns.
func (c *Conn) write(f func() (int, error)) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.writeLocked(f)
	return n, c.writeError(err)
}

// writeLocked runs f, a write of c.w, unless c is closed, after applying a
// Server's write timeout. It returns f's error unchanged: the caller passes
// it through writeError.
func (c *Conn) writeLocked(f func() (int, error)) (int, error) {
	if c.closed.Load() {
		return 0, c.opError("write", net.ErrClosed)
	}
	c.setWriteTimeoutLocked()
	return f()
}

// setWriteTimeoutLocked applies a Server's per-message write timeout.
func (c *Conn) setWriteTimeoutLocked() {
	if c.writeTimeout > 0 {
		c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	}
}

// Flush sends the rest of a frame that a write timeout left pending, if any,
// under the current write deadline. Writes do this by themselves; Flush is for
// a caller that has nothing more to send, before CloseWrite or Close.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return c.opError("write", net.ErrClosed)
	}
	if c.w.Pending() > 0 {
		c.setWriteTimeoutLocked()
	}
	return c.writeError(c.w.Flush())
}

// Pending reports how many bytes of a committed frame wait to be sent. It
// takes the write lock, so it waits for a write in progress.
func (c *Conn) Pending() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Pending()
}

// CloseWrite flushes any pending frame rest and then shuts down the writing
// side of the wrapped conn, which must have a CloseWrite method, as
// *net.TCPConn, *net.UnixConn and *tls.Conn do. The peer then reads io.EOF
// after the last message; this Conn can still read. It returns an error
// matching errors.ErrUnsupported if the wrapped conn cannot half-close.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	cw, ok := c.conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("jsonconn: CloseWrite on %T: %w", c.conn, errors.ErrUnsupported)
	}
	if c.w.Pending() > 0 {
		c.setWriteTimeoutLocked()
	}
	if err := c.w.Flush(); err != nil {
		return c.writeError(err)
	}
	return c.writeError(cw.CloseWrite())
}

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
	return c.closeNet()
}

// closeNet closes the wrapped conn once, whoever asks first: Close, a
// protocol violation, an idle timeout or a Server. It returns nil if the
// wrapped conn was already closed.
func (c *Conn) closeNet() error {
	if !c.netClosed.CompareAndSwap(false, true) {
		return nil
	}
	err := c.conn.Close()
	if c.idleTimer != nil {
		c.idleTimer.Stop() // so that a closed Conn is not kept alive by its timer
	}
	c.died()
	return err
}

// died reports to a Server, once, that the Conn is closed or broken.
func (c *Conn) died() {
	if c.onDeath != nil {
		c.deathOnce.Do(c.onDeath)
	}
}

// LocalAddr returns the local address of the wrapped conn.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the remote address of the wrapped conn.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the wrapped conn. See the
// Conn documentation for what a deadline does to a frame in flight.
func (c *Conn) SetDeadline(t time.Time) error {
	c.recordReadDeadline(t)
	return c.setError(c.conn.SetDeadline(t))
}

// SetReadDeadline sets the read deadline of the wrapped conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.recordReadDeadline(t)
	return c.setError(c.conn.SetReadDeadline(t))
}

// recordReadDeadline remembers t, so that a Server's drain can restore it.
func (c *Conn) recordReadDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.rdeadline.Store(ns)
}

// SetWriteDeadline sets the write deadline of the wrapped conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.setError(c.conn.SetWriteDeadline(t))
}

// readError maps an error from the Reader to what Read and friends return.
func (c *Conn) readError(err error) error {
	switch {
	case err == nil:
		return nil
	case c.closed.Load():
		return c.opError("read", net.ErrClosed)
	case c.netClosed.Load() && !errors.Is(err, ErrFrameTooLarge) && !errors.Is(err, ErrInvalidJSON):
		return c.opError("read", net.ErrClosed) // closed by an idle timeout or a Server
	case errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrInvalidJSON):
		// read closes the wrapped conn once the lock is released.
	case err != io.EOF && !isTimeout(err):
		c.died() // io.EOF is a half-close: the Conn can still write
	}
	return err
}

// writeError maps an error from the Writer: once the wrapped conn is closed,
// whatever the wrapped conn said becomes net.ErrClosed.
func (c *Conn) writeError(err error) error {
	if err == nil {
		return nil
	}
	if c.netClosed.Load() {
		return c.opError("write", net.ErrClosed)
	}
	if !isTimeout(err) {
		c.died()
	}
	return err
}

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

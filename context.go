package jsonconn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"time"
)

// The context calls: a Conn's reading and writing methods that a
// context.Context can stop, and the interruption of a call in I/O.
//
// A context call whose ctx ends while it is in I/O is interrupted the way
// net/http aborts a pending read: interrupt holds that side's deadline on the
// wrapped conn in the past, which makes the I/O return a timeout, and the
// call, once it returns, lets the hold go and puts back the deadline the
// caller set. The timeout keeps the stream whole, as any deadline does, and
// the Conn stays open. The hold is set only while the call is the one in
// I/O on its side: calls are numbered, and an abort for a call that has
// returned (a ctx that ended just after) finds another number and does
// nothing. So no call waits for its abort to finish, and no goroutine is
// started unless a ctx ends during I/O (context.AfterFunc's).

// ReceiveContext is [Conn.Receive] with a context: it reads the next
// message and decodes it into v, and returns early, with an error matching
// ctx.Err() (context.Canceled or context.DeadlineExceeded), if ctx ends
// first. The Conn stays open and in sync: a read that ctx interrupted keeps
// what arrived of a frame, and the next call continues it.
//
// A ctx that is already done returns at once, and nothing is consumed.
// A ctx that cannot end (context.Background) costs nothing: the call is
// Receive. Otherwise a read in I/O is interrupted by holding the wrapped
// conn's read deadline in the past, and the read deadline set through the
// Conn is put back when the call returns; a ctx deadline earlier than that
// deadline wins, and the later one never replaces the earlier. Waiting for
// the read lock, held by another goroutine's read, is not interrupted: the
// call may wait there beyond its ctx, until that read returns.
//
// Over TLS, reads go on after an interrupted read, as after any read
// deadline, with one exception: a tls.Conn runs its handshake in its first
// read or write, and the context calls run it first, under ctx; crypto/tls
// cannot resume a handshake, so a ctx that ends during it ends the Conn (its
// calls then return net.ErrClosed). A caller that polls with short contexts
// should let the handshake finish first. On a Conn served by a [Server],
// IdleTimeout, FrameTimeout and Shutdown's drain keep working through
// context calls.
func (c *Conn) ReceiveContext(ctx context.Context, v any) error {
	if ctx.Done() == nil {
		return c.Receive(v)
	}
	return c.readContext(ctx, func() error { return c.r.Receive(v) })
}

// ReadMessageContext is [Conn.ReadMessage] with a context, as
// [Conn.ReceiveContext] is Receive with one.
func (c *Conn) ReadMessageContext(ctx context.Context) (m []byte, err error) {
	if ctx.Done() == nil {
		return c.ReadMessage()
	}
	err = c.readContext(ctx, func() (err error) {
		m, err = c.r.ReadMessage()
		return err
	})
	return m, err
}

// AppendMessageContext is [Conn.AppendMessage] with a context, as
// [Conn.ReceiveContext] is Receive with one. On error the returned slice
// has dst's length and contents.
func (c *Conn) AppendMessageContext(ctx context.Context, dst []byte) ([]byte, error) {
	if ctx.Done() == nil {
		return c.AppendMessage(dst)
	}
	err := c.readContext(ctx, func() (err error) {
		dst, err = c.r.AppendMessage(dst)
		return err
	})
	return dst, err
}

// SendContext is [Conn.Send] with a context: it encodes v and sends it as
// one message, and returns early, with an error matching ctx.Err()
// (context.Canceled or context.DeadlineExceeded), if ctx ends first.
//
// A ctx that is already done returns at once, and nothing is sent. A ctx
// that cannot end (context.Background) costs nothing: the call is Send.
// Otherwise the message is never coalesced with other goroutines' messages:
// it waits in the writers' queue for its turn and goes out alone, and if ctx
// ends while it waits, it leaves the queue unsent, with no effect on any
// other goroutine's message. Once it is in I/O, ctx interrupts it by holding
// the wrapped conn's write deadline in the past, and the write deadline set
// through the Conn is put back when the call returns. A write cut before any
// byte of its frame left did not send the message; one cut after that has
// committed it: the error matches both ctx.Err() and [ErrPending], and the
// rest of the frame goes out ahead of the next message. Waiting for the write
// lock held by a WriteBatch, Flush or CloseWrite is not interrupted.
//
// Over TLS, crypto/tls breaks its write side for good once a write is cut,
// so after an interrupted write every later write fails; reads go on. A TLS
// handshake not yet run is run first, under ctx, as for [Conn.ReceiveContext].
// On a Conn served by a [Server], the earliest of ctx's end, the handler's
// write deadline and the message's WriteTimeout ends the write.
func (c *Conn) SendContext(ctx context.Context, v any) error {
	if ctx.Done() == nil {
		return c.Send(v)
	}
	if err := ctx.Err(); err != nil {
		return c.opError("write", err)
	}
	if err := c.writeClosed(); err != nil {
		return err
	}
	e, p, err := c.w.encode(v)
	if err != nil {
		return err
	}
	defer e.free()
	_, err = c.writeAlone(ctx, p)
	return err
}

// WriteBatchContext is [Conn.WriteBatch] with a context: ctx interrupts the
// batch in I/O as it does [Conn.SendContext], and the count says which
// messages were committed. A ctx that is already done returns at once with
// 0, and nothing is sent.
func (c *Conn) WriteBatchContext(ctx context.Context, msgs [][]byte) (int, error) {
	if ctx.Done() == nil {
		return c.WriteBatch(msgs)
	}
	if err := ctx.Err(); err != nil {
		return 0, c.opError("write", err)
	}
	if err := c.checkBatch(msgs); err != nil {
		return 0, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil { // it ended while the call waited for the lock
		return 0, c.opError("write", err)
	}
	if err := c.handshakeContext(ctx, "write"); err != nil {
		return 0, err
	}
	return c.writeContext(ctx, func() (int, error) { return c.w.writeFrames(msgs) })
}

// readContext is read for a context call whose ctx can end.
func (c *Conn) readContext(ctx context.Context, f func() error) error {
	if err := ctx.Err(); err != nil {
		return c.opError("read", err)
	}
	if c.closed.Load() {
		return c.opError("read", net.ErrClosed)
	}
	return c.readEnded(c.readWithLockContext(ctx, f))
}

// readWithLockContext is readWithLock for a context call: once it holds the
// read lock, and unless ctx has ended meanwhile, it arms ctx to interrupt
// the read.
func (c *Conn) readWithLockContext(ctx context.Context, f func() error) (err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() {
		return c.opError("read", net.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return c.opError("read", err)
	}
	if err := c.handshakeContext(ctx, "read"); err != nil {
		return err
	}
	call := c.arm(ctx, true)
	defer func() { err = call.end(err) }()
	return c.readLocked(f)
}

// handshakeContext runs, under ctx, the TLS handshake of a wrapped
// *tls.Conn that has not run it yet; once it has, it costs an atomic load.
// crypto/tls runs the handshake in a tls.Conn's first Read or Write, where it
// reads and writes whatever the side of the call, so a deadline held on that
// side alone would not interrupt it, and it keeps a handshake's error for
// good. A handshake that fails, ctx's end included, ends the Conn: its
// wrapped conn is closed, and the error is returned (matching ctx.Err() if
// ctx ended it).
func (c *Conn) handshakeContext(ctx context.Context, op string) error {
	tc, ok := c.conn.(*tls.Conn)
	if !ok {
		return nil
	}
	err := tc.HandshakeContext(ctx)
	if err == nil {
		return nil
	}
	c.closeNet(err)
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
		return c.opError(op, cerr)
	}
	return c.opError(op, err)
}

// writeAlone sends p, which has passed the checks, as one message by
// itself, for a context call: it waits for its turn in the writers' queue,
// which ctx can end, and then sends with ctx armed to interrupt the write.
func (c *Conn) writeAlone(ctx context.Context, p []byte) (int, error) {
	c.qmu.Lock()
	if !c.sending {
		c.sending = true
		c.qmu.Unlock()
	} else {
		r := writeReqs.Get().(*writeReq)
		r.p, r.alone = p, true
		c.queue = append(c.queue, r)
		c.alone++
		c.qmu.Unlock()
		if !c.awaitTurn(ctx, r) {
			return 0, c.opError("write", ctx.Err())
		}
	}
	// This goroutine is the sender: whatever happens, even a panic, the
	// next writer gets the write side after it.
	defer c.handOff(nil)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, c.opError("write", err)
	}
	if err := c.handshakeContext(ctx, "write"); err != nil {
		return 0, err
	}
	if c.testHookBatch != nil {
		c.testHookBatch(1)
	}
	return c.writeContext(ctx, func() (int, error) { return c.w.writeMessage(p) })
}

// awaitTurn waits until r, queued to send alone, is made the sender, and
// reports true; or, if ctx ends first, takes r out of the queue and reports
// false. r goes back to its pool either way.
func (c *Conn) awaitTurn(ctx context.Context, r *writeReq) bool {
	defer recycle(r)
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
	}
	c.qmu.Lock()
	if i := slices.Index(c.queue, r); i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
		c.alone--
		c.qmu.Unlock()
		return false
	}
	c.qmu.Unlock()
	// handOff made r the sender as ctx ended: take the turn, which
	// writeAlone passes on without sending.
	<-r.done
	return true
}

// writeContext runs f, a write of c.w, as writeLocked does, with ctx armed
// to interrupt it, and maps its error as write does. wmu must be held.
func (c *Conn) writeContext(ctx context.Context, f func() (int, error)) (n int, err error) {
	call := c.arm(ctx, false)
	defer func() { err = call.end(err) }()
	n, err = c.writeLocked(f)
	return n, c.writeError(err)
}

// A ctxCall is a context call armed to be interrupted on one side of the
// Conn: read or write.
type ctxCall struct {
	c    *Conn
	ctx  context.Context
	stop func() bool // context.AfterFunc's
	id   uint64      // the call's number
	read bool
}

// arm makes ctx interrupt the I/O of the calling context call on the read
// or the write side. The caller holds that side's lock, and calls end once
// done.
func (c *Conn) arm(ctx context.Context, read bool) ctxCall {
	c.dmu.Lock()
	c.calls++
	id := c.calls
	if read {
		c.rcall = id
	} else {
		c.wcall = id
	}
	c.dmu.Unlock()
	return ctxCall{c: c, ctx: ctx, id: id, read: read, stop: context.AfterFunc(ctx, func() { c.interrupt(read, id) })}
}

// interrupt runs once the ctx of call id has ended: if the call is still the
// one in I/O on its side, it holds that side's deadline in the past; unless
// the deadline in force has passed already, in which case the I/O ends with
// that timeout, not ctx's: a later ctx never replaces the Conn's deadline.
func (c *Conn) interrupt(read bool, id uint64) {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	if read {
		if c.rcall != id || c.rheld {
			return
		}
		c.rheld = c.holdLocked(true, true)
	} else {
		if c.wcall != id || c.wheld {
			return
		}
		c.wheld = c.holdLocked(false, true)
	}
}

// holdLocked holds a side's deadline in the past (on) and reports true, or
// reports false if the deadline in force on that side has passed already;
// or it lets the hold go (off) and puts back the deadline set through the
// Conn. dmu must be held.
func (c *Conn) holdLocked(read, on bool) bool {
	if c.hook != nil {
		return c.hook.hold(read, on)
	}
	d := c.wdeadline
	if read {
		d = c.rdeadline
	}
	switch {
	case on && passed(d):
		return false
	case on:
		d = aLongTimeAgo
	}
	if read {
		c.conn.SetReadDeadline(d)
	} else {
		c.conn.SetWriteDeadline(d)
	}
	return on
}

// passed reports whether the deadline d is set and has passed.
func passed(d time.Time) bool { return !d.IsZero() && !time.Now().Before(d) }

// end disarms the call, lets go of a hold its ctx set, and returns the
// call's error: err, or, if the ctx interrupted the I/O, an error matching
// the ctx's error in place of the timeout it caused (with ErrPending too, for
// a write that committed its message).
func (k ctxCall) end(err error) error {
	k.stop()
	c := k.c
	c.dmu.Lock()
	var held bool
	if k.read {
		held, c.rcall, c.rheld = c.rheld, 0, false
	} else {
		held, c.wcall, c.wheld = c.wheld, 0, false
	}
	if held {
		c.holdLocked(k.read, false)
	}
	c.dmu.Unlock()
	if !held || err == nil || !isTimeout(err) {
		return err
	}
	op := "write"
	if k.read {
		op = "read"
	}
	cerr := c.opError(op, k.ctx.Err())
	if _, ok := err.(*pendingError); ok {
		return &pendingError{cerr}
	}
	return cerr
}

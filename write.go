package jsonconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
)

// The write side: Conn's writing methods and the coalescing of concurrent
// writers, then the Writer that encodes frames for them.

// Write sends p as exactly one message, as [Writer.Write] does, and returns
// len(p) if the message was committed and 0 if not, never a part. p must
// hold one JSON value unless validation is off. A p over the cap, or not
// JSON, is refused with a [*FrameSizeError] or an [*InvalidJSONError] before
// the write lock is taken or any byte is written, and the Conn stays usable.
//
// A write deadline that strikes before any byte of the frame left returns 0:
// the message was not sent. One that strikes after part of it left returns
// len(p) and an error matching [ErrPending]: the message is committed and the
// rest of its frame goes out ahead of the next message or on [Conn.Flush].
// Writes that arrive while another is sending are coalesced with it (see
// [Conn]); each gets its own message's result. After Close, or once the Conn
// has closed the wrapped conn (the peer broke the protocol, or a Server cut
// it), Write returns an error matching net.ErrClosed before p is checked.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.writeClosed(); err != nil {
		return 0, err
	}
	if err := c.w.check(p); err != nil {
		return 0, err
	}
	return c.writeMessage(p)
}

// Send encodes v as compact JSON, without HTML escaping (or with
// [Config].Marshal), and sends it as one message, as [Writer.Send] does.
// Encoding happens before the write lock is taken; an encoding error, or an
// encoding over the cap, is returned before any byte is written. An error
// matching [ErrPending] means v was committed, its rest still to go out
// ahead of the next message or on [Conn.Flush]; any other error means it was
// not sent. Like Write, Send is coalesced with concurrent writers, and
// returns an error matching net.ErrClosed once the wrapped conn is closed.
func (c *Conn) Send(v any) error {
	if err := c.writeClosed(); err != nil {
		return err
	}
	e, p, err := c.w.encode(v)
	if err != nil {
		return err
	}
	defer e.free()
	_, err = c.writeMessage(p)
	return err
}

// WriteBatch sends each element of msgs as one message, in order, as
// [Writer.WriteBatch] does, and returns how many messages, from the start of
// msgs, were committed. Every message is checked first, before the write
// lock is taken: if any is refused, nothing is sent. A timeout commits the
// messages whose frames left whole and the one it cut, with an error
// matching [ErrPending]; the rest were not sent. The batch is never
// interleaved with another goroutine's frames, and after Close WriteBatch
// returns an error matching net.ErrClosed.
func (c *Conn) WriteBatch(msgs [][]byte) (int, error) {
	if err := c.checkBatch(msgs); err != nil {
		return 0, err
	}
	return c.write(func() (int, error) { return c.w.writeFrames(msgs) })
}

// checkBatch refuses a batch before the write lock is taken: net.ErrClosed
// once the wrapped conn is closed, and otherwise any message the peer must
// not receive.
func (c *Conn) checkBatch(msgs [][]byte) error {
	if err := c.writeClosed(); err != nil {
		return err
	}
	return c.w.checkBatch(msgs)
}

// Flush sends the rest of a frame that a write timeout left pending, if any,
// under the current write deadline. Writes do this by themselves; Flush is for
// a caller that has nothing more to send, before CloseWrite or Close (which
// does not send it). Like every write, Flush returns an error matching
// net.ErrClosed once the wrapped conn is closed (by Close, by the peer's
// protocol violation or by a Server), even with nothing pending: nothing
// could be sent.
func (c *Conn) Flush() error {
	_, err := c.write(c.flush)
	return err
}

// flush is Writer.Flush in the shape of a write, for writeLocked.
func (c *Conn) flush() (int, error) { return 0, c.w.Flush() }

// CloseWrite flushes any pending frame rest, as Flush does, and then shuts
// down the writing side of the wrapped conn, which must have a CloseWrite
// method, as *net.TCPConn, *net.UnixConn and *tls.Conn do. The peer then
// reads io.EOF after the last message; this Conn can still read. It returns
// an error matching errors.ErrUnsupported if the wrapped conn cannot
// half-close.
func (c *Conn) CloseWrite() error {
	cw, ok := c.conn.(interface{ CloseWrite() error })
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	if !ok {
		return fmt.Errorf("jsonconn: CloseWrite on %T: %w", c.conn, errors.ErrUnsupported)
	}
	if _, err := c.writeLocked(c.flush); err != nil {
		return c.writeError(err)
	}
	return c.writeError(cw.CloseWrite())
}

// write runs f, one of c.w's writing methods, under the write lock, and maps
// its error to what the Conn returns.
func (c *Conn) write(f func() (int, error)) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.writeLocked(f)
	return n, c.writeError(err)
}

// writeLocked runs f, a write of c.w, unless the wrapped conn is closed; a
// served Conn's hook is told before (it sets the write deadline) and after.
// It returns f's error unchanged: the caller passes it through writeError.
// If the wrapped conn's Write panics, the write side ends, as after an I/O
// error (the Writer's stream keeps errWritePanicked, and lets go of a pending
// rest), and the panic goes on.
func (c *Conn) writeLocked(f func() (int, error)) (int, error) {
	if err := c.writeClosed(); err != nil {
		return 0, err
	}
	h := c.hook
	if h != nil {
		h.writeBegin()
	}
	returned := false
	defer func() {
		if !returned {
			c.w.fail(errWritePanicked)
			if h != nil {
				h.writeEnd(errWritePanicked)
				c.broke(errWritePanicked)
			}
		}
	}()
	n, err := f()
	returned = true
	if h != nil {
		h.writeEnd(err)
		if err == nil && c.w.err != nil {
			// Every message left, but the write that carried the last
			// one ended the stream: the caller learns it at its next
			// write, the Server now.
			c.broke(c.w.err)
		}
	}
	return n, err
}

// writeClosed returns the error of every write once the wrapped conn is
// closed, by Close, by a protocol violation of the peer or by a Server: one
// matching net.ErrClosed, before a message is checked or anything pending is
// flushed. It returns nil while the wrapped conn is open.
func (c *Conn) writeClosed() error {
	if c.closed.Load() || c.netClosed.Load() {
		return c.opError("write", net.ErrClosed)
	}
	return nil
}

// writeError maps an error from the Writer: once the wrapped conn is closed,
// whatever the wrapped conn said becomes net.ErrClosed. A Conn that broke
// is reported to its hook.
func (c *Conn) writeError(err error) error {
	if err == nil {
		return nil
	}
	if c.netClosed.Load() {
		return c.opError("write", net.ErrClosed)
	}
	if !isTimeout(err) {
		c.broke(err)
	}
	return err
}

// Coalescing concurrent writers.
//
// A Write or Send that finds another one sending does not wait for the write
// lock: it queues its message and sleeps. The goroutine sending (the sender)
// sends its own message together with every message queued when it takes
// the write lock, as one batch through Writer.writeFrames (one writev on a
// stream socket; a write per frame elsewhere), tells each queued writer its
// result, and returns. If more writers queued meanwhile, it first hands the
// write side to the earliest of them, which becomes the sender for the next
// batch. So each call returns once its own batch is out, however busy the
// Conn; under contention a system call carries several messages, as
// WriteBatch does; and a writer alone pays only uncontended locking and
// allocates nothing. A goroutine's messages keep its order, since it waits
// for each; the messages of different goroutines were never ordered.
//
// Each message keeps Write's all-or-nothing rule. In a batch cut by a
// timeout, the messages whose frames left are committed, the one cut in the
// middle gets ErrPending (its rest goes out first next time), and the others
// are not sent and get the timeout. After a non-timeout error, the messages
// whose frames left whole still succeed, and those not sent get the error.
// Close unblocks queued writers through the sender, whose write fails with
// the Conn's. If the wrapped conn's Write panics, the queued writers of that
// batch get errWritePanicked, and so does every later write, since what the
// panicking Write sent is unknown; the panic continues in the sender.
//
// A hook that sets a write deadline per message stops its Conn from
// batching (connHook.coalesce): each sender sends its own message alone and
// hands over.

// A writeReq is a message queued for the sender.
type writeReq struct {
	p     []byte
	alone bool // a context call's: sent by its own writer, never in a batch

	// Set by the sender before it signals done: either the result, or
	// lead, which makes the waiter the next sender.
	n    int
	err  error
	lead bool
	done chan struct{} // buffered: the sender never blocks on it
}

var writeReqs = sync.Pool{New: func() any { return &writeReq{done: make(chan struct{}, 1)} }}

// recycle puts r, whose writer is done with it, back in its pool.
func recycle(r *writeReq) {
	*r = writeReq{done: r.done}
	writeReqs.Put(r)
}

// errWritePanicked is the result of the queued messages of a batch whose
// write panicked, and of every later write: whether any part of the
// frames left is unknown, so the stream ends, as after an I/O error.
var errWritePanicked = errors.New("jsonconn: the wrapped conn's Write panicked; the message may not have been sent")

// errInvalidWrite ends the stream of a destination whose Write returned a
// count below 0 or above the length of what it was given.
var errInvalidWrite = errors.New("jsonconn: destination returned an invalid count from Write")

// writeMessage sends p, which has passed the checks, as one message, in a
// batch with the messages of the writers queued meanwhile.
func (c *Conn) writeMessage(p []byte) (int, error) {
	c.qmu.Lock()
	if !c.sending {
		c.sending = true
		c.qmu.Unlock()
		return c.sendQueued(p)
	}
	r := writeReqs.Get().(*writeReq)
	r.p = p
	c.queue = append(c.queue, r)
	c.qmu.Unlock()

	<-r.done
	n, err, lead := r.n, r.err, r.lead
	recycle(r)
	if lead {
		return c.sendQueued(p)
	}
	return n, err
}

// sendQueued is run by the sender, the one goroutine sending at a time: it
// sends p and the messages queued so far, wakes their writers, hands the
// write side to the earliest writer queued meanwhile, if any, and returns
// p's result.
func (c *Conn) sendQueued(p []byte) (n int, err error) {
	c.wmu.Lock()
	var batch []*writeReq
	if c.hook == nil || c.hook.coalesce() {
		c.qmu.Lock()
		batch = c.takeBatchLocked()
		c.qmu.Unlock()
	}
	sent := false
	defer func() {
		if !sent { // the wrapped conn's Write panicked (writeLocked ended the stream)
			clear(c.msgs[:cap(c.msgs)])
			c.wmu.Unlock()
			for _, r := range batch {
				r.n, r.err = 0, errWritePanicked
			}
			c.handOff(batch)
		}
	}()
	n, err = c.sendBatch(p, batch)
	sent = true
	c.wmu.Unlock()
	c.handOff(batch)
	return n, err
}

// takeBatchLocked takes the writers queued up to the first one that sends
// alone (a context call), as the batch to send. Alone, the queue becomes the
// batch and the spare array, if any, the queue; otherwise the batch is
// copied to the spare array. The three never share an array. qmu must be
// held.
func (c *Conn) takeBatchLocked() []*writeReq {
	if c.alone == 0 {
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		return batch
	}
	i := slices.IndexFunc(c.queue, func(r *writeReq) bool { return r.alone })
	batch := append(c.spare[:0], c.queue[:i]...)
	c.spare = nil
	c.queue = slices.Delete(c.queue, 0, i)
	return batch
}

// handOff wakes the writers of batch, whose results are set, and makes the
// earliest writer queued since the next sender, if there is one.
func (c *Conn) handOff(batch []*writeReq) {
	for _, r := range batch {
		r.done <- struct{}{}
	}
	clear(batch) // keep no request
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if cap(batch) > 0 {
		c.spare = batch[:0]
	}
	if len(c.queue) == 0 {
		c.sending = false
		return
	}
	next, last := c.queue[0], len(c.queue)-1
	copy(c.queue, c.queue[1:])
	c.queue[last] = nil // keep no request
	c.queue = c.queue[:last]
	if next.alone {
		c.alone--
	}
	next.lead = true
	next.done <- struct{}{}
}

// sendBatch sends p and the queued messages of batch in one write, sets
// each queued writer's result, and returns p's. wmu must be held.
func (c *Conn) sendBatch(p []byte, batch []*writeReq) (n int, err error) {
	if c.testHookBatch != nil {
		c.testHookBatch(1 + len(batch))
	}
	if len(batch) == 0 { // alone: the common, uncontended case
		n, err = c.writeLocked(func() (int, error) { return c.w.writeMessage(p) })
		return n, c.writeError(err)
	}
	msgs := append(c.msgs[:0], p)
	for _, r := range batch {
		msgs = append(msgs, r.p)
	}
	k, berr := c.writeLocked(func() (int, error) { return c.w.writeFrames(msgs) })
	n, err = c.batchResult(msgs, 0, k, berr)
	for i, r := range batch {
		r.n, r.err = c.batchResult(msgs, i+1, k, berr)
	}
	clear(msgs) // keep no caller's memory
	c.msgs = msgs[:0]
	return n, err
}

// batchResult returns what Write returns for message i of a batch of which
// writeFrames committed k, with error err: len for a message that left
// whole, len and ErrPending for the one cut in the middle, 0 and the error
// for the others.
func (c *Conn) batchResult(msgs [][]byte, i, k int, err error) (int, error) {
	pe, cut := err.(*pendingError)
	switch {
	case i < k-1, i == k-1 && !cut:
		return len(msgs[i]), nil
	case i == k-1:
		return len(msgs[i]), c.writeError(err)
	case cut:
		return 0, c.writeError(pe.err)
	}
	return 0, c.writeError(err)
}

// A Writer encodes frames onto an io.Writer: a pipe, standard output, a file
// or a connection that is not a net.Conn.
//
// A Writer is not safe for concurrent use; Conn adds the locking for
// connections. It holds no buffer between messages, except the unsent rest of
// a frame that a timeout interrupted (see ErrPending).
//
// Each message goes out whole or not at all, as far as the stream is
// concerned. A message the caller gets wrong (too large, not JSON, not
// marshalable) is refused before any byte is written. A timeout from the
// underlying writer (an error matching os.ErrDeadlineExceeded, or another
// net.Error whose Timeout reports true, except ETIMEDOUT) before any byte of
// the frame left means the message was not sent; a timeout after part of it
// left commits the message (see ErrPending). Any other error from the
// underlying writer ends the stream: every later call returns it. ETIMEDOUT,
// which a socket's write returns once TCP_USER_TIMEOUT or keep-alive found
// the peer gone, is such an error, though it reports Timeout true.
//
// A message whose frame left whole is committed, even if the write that
// carried its last byte returned an error: the call that sent it succeeds
// (Write returns len(p), WriteBatch counts it), and if that error ends the
// stream, the next call returns it. So a message reported as not sent was
// never on the wire whole, and a caller may send it again elsewhere. The
// underlying writer's Write may not panic, and may not return a count below
// zero or above the length it was given: a Writer ends the stream on either,
// since what left of it is then unknown.
//
// A Writer over a socket that keeps message boundaries (UDP, or a Unix
// datagram or seqpacket socket) would have its frames cut or merged by
// them: every write returns an error matching errors.ErrUnsupported.
type Writer struct {
	dst      io.Writer
	max      int
	validate bool
	marshal  func(any) ([]byte, error) // Config.Marshal; nil for encoding/json
	vectored bool                      // dst is a stream socket: net.Buffers makes one writev

	hdr  [headerLen]byte
	iov  [2][]byte   // header and payload, handed to net.Buffers
	bufs net.Buffers // lives here so that WriteTo's pointer does not allocate

	pendp   *[]byte // pooled buffer holding pending; nil when nothing is pending
	pending []byte  // unsent rest of a committed frame
	err     error   // sticky error from the underlying writer
}

// NewWriter returns a Writer that encodes frames onto w. A nil cfg means the
// defaults.
func NewWriter(w io.Writer, cfg *Config) *Writer {
	wr := new(Writer)
	wr.init(w, cfg, socketKind(w))
	return wr
}

// init sets up w to write to dst, of the given kind, as configured by cfg.
func (w *Writer) init(dst io.Writer, cfg *Config, kind sockKind) {
	w.dst = dst
	w.max = cfg.maxFrameSize()
	w.validate = cfg == nil || !cfg.DisableValidation
	if cfg != nil {
		w.marshal = cfg.Marshal
	}
	switch kind {
	case streamSocket:
		w.vectored = true
	case messageSocket:
		w.err = errMessageSocket(dst)
	}
}

// Write sends p as exactly one message and reports how many bytes of p were
// committed: len(p) or 0, never a part. p must hold one JSON value unless
// validation is off; it is sent as is, whitespace included.
//
// Before any byte is written, Write refuses a p longer than the cap with a
// *FrameSizeError and, with validation on, a p that is not one JSON value with
// an *InvalidJSONError. It sends the rest of a frame left pending by an earlier
// timeout ahead of p. Header and payload go out in one write call: writev on
// TCP and Unix sockets, one pooled buffer elsewhere.
//
// On a timeout Write returns 0 if no byte of p's frame left, and len(p) with an
// error matching ErrPending if part of it did. Write does not keep p.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.check(p); err != nil {
		return 0, err
	}
	return w.writeMessage(p)
}

// Send encodes v as compact JSON, without HTML escaping (or with
// Config.Marshal), and sends it as one message. Its errors are those of
// Write, plus any error from the encoder, returned before anything is
// written. Output of encoding/json needs no validation pass: it is valid
// JSON by construction.
//
// An error matching ErrPending means that v was committed, with the rest
// of its frame still to be sent by the next write or Flush (see ErrPending);
// any other error means it was not sent.
func (w *Writer) Send(v any) error {
	e, p, err := w.encode(v)
	if err != nil {
		return err
	}
	defer e.free()
	_, err = w.writeFrame(p)
	return err
}

// encode marshals v for Send and checks the result, before any lock is
// taken: Conn calls it too. The payload aliases e (nil for Config.Marshal),
// which the caller frees once done with it.
func (w *Writer) encode(v any) (e *encodeState, p []byte, err error) {
	if w.marshal != nil {
		if p, err = w.marshal(v); err != nil {
			return nil, nil, err
		}
		if err := w.checkSize(len(p)); err != nil {
			return nil, nil, err
		}
		if w.validate && !valid(p) {
			return nil, nil, invalidJSON(p)
		}
		return nil, p, nil
	}
	if e, p, err = marshal(v); err != nil {
		return nil, nil, err
	}
	if err := w.checkSize(len(p)); err != nil {
		e.free()
		return nil, nil, err
	}
	return e, p, nil // what encoding/json produces needs no validation
}

// WriteBatch sends each element of msgs as one message, in order. Every
// message is checked first: if any is refused, nothing is sent and the error
// (wrapped with the message's index, matching the same sentinels and types
// as Write's) is returned with 0.
//
// On a TCP or Unix stream socket the batch goes out through
// net.Buffers.WriteTo: writev system calls that each carry as many messages
// as the system takes (a header and a payload per message), which for small
// messages costs far less than a call each. On other writers each message
// takes its own call.
//
// WriteBatch returns how many messages, from the start of msgs, were
// committed. A timeout commits the messages whose frames left whole and, if
// it struck inside a frame, that message too, with an error matching
// ErrPending (its rest is pending, as for Write). The messages from the count
// on were not sent.
func (w *Writer) WriteBatch(msgs [][]byte) (int, error) {
	if err := w.checkBatch(msgs); err != nil {
		return 0, err
	}
	return w.writeFrames(msgs)
}

// Flush writes the rest of a frame that an earlier timeout left pending, if
// any. It returns nil when nothing is pending and the stream has not ended,
// and the error that ended it otherwise. A timeout keeps what is still unsent
// for the next Flush or write.
func (w *Writer) Flush() error {
	if w.err != nil {
		w.fail(w.err) // a stream a panic ended may still hold a rest
		return w.err
	}
	return w.flushPending()
}

// checkSize refuses a payload of n bytes if it exceeds the cap.
func (w *Writer) checkSize(n int) error {
	if n > w.max {
		return &FrameSizeError{Size: int64(n), Max: int64(w.max)}
	}
	return nil
}

// check refuses a payload the peer must not receive. It reads only fields set
// at construction, so Conn calls it without holding its write lock.
func (w *Writer) check(p []byte) error {
	if err := w.checkSize(len(p)); err != nil {
		return err
	}
	if w.validate && !valid(p) {
		return invalidJSON(p)
	}
	return nil
}

// checkBatch checks every message of a batch, as check does one.
func (w *Writer) checkBatch(msgs [][]byte) error {
	for i, p := range msgs {
		if err := w.check(p); err != nil {
			return fmt.Errorf("jsonconn: batch message %d: %w", i, err)
		}
	}
	return nil
}

// writeMessage writes the frame of p, which has passed check, and returns
// what Write returns: len(p) if the message was committed, 0 if not.
func (w *Writer) writeMessage(p []byte) (int, error) {
	k, err := w.writeFrame(p)
	if k == 0 {
		return 0, err
	}
	return len(p), err
}

// writeFrame writes one frame with payload p, which has passed check, and
// returns 1 if the message was committed, 0 if not: len(p) cannot tell, for
// an empty payload.
func (w *Writer) writeFrame(p []byte) (int, error) {
	if err := w.ready(); err != nil {
		return 0, err
	}
	binary.BigEndian.PutUint32(w.hdr[:], uint32(len(p)))
	n, err := w.writeOnce(p)
	return w.settle([][]byte{p}, n, err)
}

// writeFrames writes the frames of msgs, which have passed checkBatch, and
// returns how many messages were committed.
func (w *Writer) writeFrames(msgs [][]byte) (int, error) {
	if err := w.ready(); err != nil {
		return 0, err
	}
	if !w.vectored || len(msgs) < 2 {
		for i, p := range msgs {
			if k, err := w.writeFrame(p); err != nil {
				return i + k, err // k is 1 for a message cut by a timeout: its rest is pending
			}
		}
		return len(msgs), nil
	}
	hdrs := make([]byte, headerLen*len(msgs))
	iov := make(net.Buffers, 0, 2*len(msgs))
	for i, p := range msgs {
		h := hdrs[i*headerLen : (i+1)*headerLen]
		binary.BigEndian.PutUint32(h, uint32(len(p)))
		iov = append(iov, h, p)
	}
	w.err = errWritePanicked // kept only if WriteTo panics
	n, err := iov.WriteTo(w.dst)
	w.err = nil
	return w.settle(msgs, n, err)
}

// ready reports the sticky error, if any, and otherwise sends the rest of a
// frame an earlier timeout left pending: a new frame may start only once it
// has left.
func (w *Writer) ready() error {
	if w.err != nil {
		w.fail(w.err) // a stream a panic ended may still hold a rest
		return w.err
	}
	if err := w.flushPending(); err != nil {
		return err
	}
	return w.err // the write that finished the rest may have ended the stream
}

// writeOnce writes w.hdr and p in one write call: one writev on a stream
// socket, and elsewhere one Write of a pooled buffer holding both, so that a
// TLS conn seals the header into the payload's record rather than a record
// of its own, and a pipe takes one system call.
func (w *Writer) writeOnce(p []byte) (int64, error) {
	if !w.vectored {
		size := headerLen + len(p)
		bp := getBuf(size)
		b := (*bp)[:size]
		copy(b, w.hdr[:])
		copy(b[headerLen:], p)
		w.err = errWritePanicked // kept only if Write panics
		n, err := w.dst.Write(b)
		w.err = nil
		putBuf(bp)
		return int64(n), err
	}
	w.iov = [2][]byte{w.hdr[:], p}
	w.bufs = w.iov[:]
	n, err := w.bufs.WriteTo(w.dst)
	w.iov[1], w.bufs = nil, nil // do not keep p
	return n, err
}

// settle accounts for one write call that carried the frames of msgs, in
// order, and wrote n bytes with error err. It returns how many messages were
// committed and the error to report for the first message not committed.
//
// A message whose frame left whole is committed, whatever error came with
// its last byte. If every frame left, the call succeeded: a timeout then is
// moot, and any other error ends the stream, to be returned by the next
// call (the Conn tells a Server's hook at once). A timeout inside a frame
// commits that message too: the unsent rest of its frame is kept for the
// next write, and the error is a *pendingError. Any other error, or a short
// write without one, ends the stream. A count below 0 or above what was
// given ends it with errInvalidWrite, as bufio does: what left is unknown.
func (w *Writer) settle(msgs [][]byte, n int64, err error) (int, error) {
	if n < 0 {
		w.fail(errInvalidWrite)
		return 0, errInvalidWrite
	}
	k, end := 0, int64(0) // the frames that left whole, and where the last one ended
	for ; k < len(msgs); k++ {
		size := int64(headerLen + len(msgs[k]))
		if end+size > n {
			break
		}
		end += size
	}
	switch {
	case k == len(msgs) && n > end:
		w.fail(errInvalidWrite)
		return 0, errInvalidWrite
	case k == len(msgs):
		if err != nil && !isTimeout(err) {
			w.fail(err)
		}
		return k, nil // all of it left
	case err == nil:
		err = io.ErrShortWrite
	}
	if !isTimeout(err) {
		w.fail(err)
		return k, err
	}
	if n == end {
		return k, err // stopped between frames: msgs[k:] were not sent
	}
	binary.BigEndian.PutUint32(w.hdr[:], uint32(len(msgs[k])))
	w.keepRest(msgs[k], int(n-end))
	return k + 1, &pendingError{err}
}

// keepRest stores the unsent rest of the frame (w.hdr and p) of which the
// first n bytes were written. It copies, so that the caller may reuse p at
// once.
func (w *Writer) keepRest(p []byte, n int) {
	w.pendp = getBuf(headerLen + len(p) - n)
	buf := (*w.pendp)[:0]
	if n < headerLen {
		buf = append(buf, w.hdr[n:]...)
		n = headerLen
	}
	w.pending = append(buf, p[n-headerLen:]...)
}

// flushPending writes what an earlier timeout left pending. As for a frame
// (see settle), a rest that left whole is sent, whatever error came with its
// last byte: flushPending then returns nil, and an error that ends the
// stream is returned by the next call.
func (w *Writer) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	w.err = errWritePanicked // kept only if Write panics
	n, err := w.dst.Write(w.pending)
	w.err = nil
	if n < 0 || n > len(w.pending) {
		w.fail(errInvalidWrite)
		return errInvalidWrite
	}
	w.pending = w.pending[n:]
	if len(w.pending) == 0 {
		putBuf(w.pendp)
		w.pendp, w.pending = nil, nil
		if err != nil && !isTimeout(err) {
			w.fail(err)
		}
		return nil // all of it left
	} else if err == nil {
		err = io.ErrShortWrite
	}
	if !isTimeout(err) {
		w.fail(err)
	}
	return err
}

// fail records err as the end of the stream and releases the pending rest,
// which can no longer be sent.
func (w *Writer) fail(err error) {
	w.err = err
	if w.pendp != nil {
		putBuf(w.pendp)
		w.pendp, w.pending = nil, nil
	}
}

package jsonconn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
)

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
// underlying writer before any byte of the frame left means the message was not
// sent; a timeout after part of it left commits the message (see ErrPending).
// Any other error from the underlying writer ends the stream: every later call
// returns it.
type Writer struct {
	dst      io.Writer
	max      int
	validate bool
	marshal  func(any) ([]byte, error) // Config.Marshal; nil for encoding/json
	vectored bool                      // dst turns net.Buffers into one writev call

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
	wr.init(w, cfg)
	return wr
}

func (w *Writer) init(dst io.Writer, cfg *Config) {
	w.dst = dst
	w.max = cfg.maxFrameSize()
	w.validate = cfg == nil || !cfg.DisableValidation
	if cfg != nil {
		w.marshal = cfg.Marshal
	}
	switch dst.(type) {
	case *net.TCPConn, *net.UnixConn:
		w.vectored = true
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
	return w.writeFrame(p)
}

// Send encodes v as compact JSON, without HTML escaping (or with
// Config.Marshal), and sends it as one message. Its errors are those of
// Write, plus any error from the encoder, returned before anything is
// written. Output of encoding/json needs no validation pass: it is valid
// JSON by construction.
//
// An error matching ErrPending means that v was committed and will be
// delivered; any other error means it was not sent.
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

// WriteBatch sends each element of msgs as one message, in order. On TCP and
// Unix sockets the batch goes out in writev calls of up to 512 messages (the
// kernel's limit of 1,024 iovecs), which for small messages costs far less
// than a call per message; on other writers each message takes its own call. Every message is checked first: if any is
// refused, nothing is sent and the error (wrapped with the message's index,
// matching the same sentinels and types as Write's) is returned with 0.
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

// checkBatch checks every message of a batch, as check does one.
func (w *Writer) checkBatch(msgs [][]byte) error {
	for i, p := range msgs {
		if err := w.check(p); err != nil {
			return fmt.Errorf("jsonconn: batch message %d: %w", i, err)
		}
	}
	return nil
}

// writeFrames writes the frames of msgs, which have passed checkBatch.
func (w *Writer) writeFrames(msgs [][]byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.flushPending(); err != nil {
		return 0, err
	}
	if !w.vectored || len(msgs) < 2 {
		for i, p := range msgs {
			if _, err := w.writeFrame(p); err != nil {
				if _, pending := err.(*pendingError); pending {
					i++ // committed, its rest pending (len(p) may be 0)
				}
				return i, err
			}
		}
		return len(msgs), nil
	}
	hdrs := make([]byte, headerLen*len(msgs))
	iov := make(net.Buffers, 0, 2*len(msgs))
	total := int64(0)
	for i, p := range msgs {
		h := hdrs[i*headerLen : (i+1)*headerLen]
		binary.BigEndian.PutUint32(h, uint32(len(p)))
		iov = append(iov, h, p)
		total += int64(headerLen + len(p))
	}
	n, err := iov.WriteTo(w.dst)
	if n == total && (err == nil || isTimeout(err)) {
		return len(msgs), nil
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	// Find the frame in which the write stopped.
	k, end := 0, int64(0)
	for ; k < len(msgs); k++ {
		size := int64(headerLen + len(msgs[k]))
		if end+size > n {
			break
		}
		end += size
	}
	if !isTimeout(err) {
		w.fail(err)
		return k, err
	}
	if n == end {
		return k, err // stopped between frames: msgs[k:] were not sent
	}
	binary.BigEndian.PutUint32(w.hdr[:], uint32(len(msgs[k])))
	w.keep(msgs[k], int(n-end))
	return k + 1, &pendingError{err}
}

// Flush writes the rest of a frame that an earlier timeout left pending, if
// any. It returns nil when nothing is pending. A timeout keeps what is still
// unsent for the next Flush or write.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.flushPending()
}

// Pending reports how many bytes of a committed frame are waiting to be sent.
func (w *Writer) Pending() int { return len(w.pending) }

// checkSize refuses a payload of n bytes if it exceeds the cap.
func (w *Writer) checkSize(n int) error {
	if n > w.max {
		return &FrameSizeError{Size: int64(n), Max: w.max}
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

// writeFrame writes one frame with payload p, which has passed check.
func (w *Writer) writeFrame(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if err := w.flushPending(); err != nil {
		return 0, err
	}
	binary.BigEndian.PutUint32(w.hdr[:], uint32(len(p)))
	n, err := w.writeOnce(p)
	size := int64(headerLen + len(p))
	if n == size && (err == nil || isTimeout(err)) {
		return len(p), nil // all of it left: a timeout now is moot
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	if !isTimeout(err) {
		w.fail(err)
		return 0, err
	}
	if n == 0 {
		return 0, err // nothing left: the message was not sent
	}
	w.keep(p, int(n))
	return len(p), &pendingError{err}
}

// writeOnce writes w.hdr and p in one write call: one writev on TCP and Unix
// sockets, and elsewhere one Write of a pooled buffer holding both, so that a
// TLS conn seals the header into the payload's record rather than a record of
// its own, and a pipe takes one system call.
func (w *Writer) writeOnce(p []byte) (int64, error) {
	if !w.vectored {
		size := headerLen + len(p)
		bp := getBuf(size)
		b := (*bp)[:size]
		copy(b, w.hdr[:])
		copy(b[headerLen:], p)
		n, err := w.dst.Write(b)
		putBuf(bp)
		return int64(n), err
	}
	w.iov = [2][]byte{w.hdr[:], p}
	w.bufs = w.iov[:]
	n, err := w.bufs.WriteTo(w.dst)
	w.iov[1], w.bufs = nil, nil // do not keep p
	return n, err
}

// keep stores the unsent rest of the frame (w.hdr and p) of which the first n
// bytes were written. It copies, so that the caller may reuse p at once.
func (w *Writer) keep(p []byte, n int) {
	w.pendp = getBuf(headerLen + len(p) - n)
	buf := (*w.pendp)[:0]
	if n < headerLen {
		buf = append(buf, w.hdr[n:]...)
		n = headerLen
	}
	w.pending = append(buf, p[n-headerLen:]...)
}

// flushPending writes what an earlier timeout left pending.
func (w *Writer) flushPending() error {
	if len(w.pending) == 0 {
		return nil
	}
	n, err := w.dst.Write(w.pending)
	w.pending = w.pending[n:]
	if len(w.pending) == 0 {
		putBuf(w.pendp)
		w.pendp, w.pending = nil, nil
		if err == nil || isTimeout(err) {
			return nil // all of it left: a timeout now is moot
		}
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

// encodeState is a pooled buffer with a JSON encoder writing into it.
type encodeState struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledEncode bounds the encode buffers kept for reuse, so that one huge
// message does not pin its buffer in the pool.
const maxPooledEncode = 1 << 20

var encodePool = sync.Pool{New: func() any {
	e := new(encodeState)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// marshal encodes v as compact JSON without HTML escaping. The returned
// payload aliases e, which the caller frees once done with it.
func marshal(v any) (e *encodeState, p []byte, err error) {
	e = encodePool.Get().(*encodeState)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		e.free()
		return nil, nil, err
	}
	p = e.buf.Bytes()
	return e, p[:len(p)-1], nil // Encode ends each value with a newline
}

func (e *encodeState) free() {
	if e != nil && e.buf.Cap() <= maxPooledEncode {
		encodePool.Put(e)
	}
}

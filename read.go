package jsonconn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// The read side: Conn's reading methods, then the Reader that decodes
// frames for them.

// The read errors of a Conn are those of its [Reader], with what a Conn
// adds, which each reading method's doc repeats: a protocol violation by the
// peer also closes the wrapped conn; after Close every read returns an error
// matching net.ErrClosed; and on a Conn served by a [Server], a read that
// would wait for a new message once Shutdown has begun returns
// [ErrServerClosed], and one cut by IdleTimeout or FrameTimeout returns an
// error matching net.ErrClosed.

// Read reads payload bytes, as [Reader.Read] does: it never returns bytes of
// two messages in one call, and a message longer than p continues on the
// next call. It returns io.EOF at a clean end of the peer's stream. A
// message that has already been received in full is returned even if the
// read deadline has passed, as crypto/tls does; the deadline governs waiting
// for the network, and a read that times out mid-frame resumes where it
// stopped.
//
// A frame over the cap or a payload that is not JSON ends the stream with a
// [*FrameSizeError] or an [*InvalidJSONError] and closes the wrapped conn.
// After Close, Read returns an error matching net.ErrClosed. On a Conn served
// by a [Server], a read that would wait for a new message once Shutdown has
// begun returns [ErrServerClosed].
func (c *Conn) Read(p []byte) (n int, err error) {
	err = c.read(func() (err error) {
		n, err = c.r.Read(p)
		return err
	})
	return n, err
}

// ReadMessage reads the next message and returns its payload in a new slice
// owned by the caller, as [Reader.ReadMessage] does. It blocks until a whole
// frame has arrived, and returns io.EOF at a clean end of the peer's stream
// and io.ErrUnexpectedEOF inside a frame. A read that times out mid-frame
// keeps what arrived, and the next call goes on from there.
//
// A frame over the cap or a payload that is not JSON ends the stream with a
// [*FrameSizeError] or an [*InvalidJSONError] and closes the wrapped conn.
// After Close, ReadMessage returns an error matching net.ErrClosed. On a Conn
// served by a [Server], a read that would wait for a new message once
// Shutdown has begun returns [ErrServerClosed].
func (c *Conn) ReadMessage() (m []byte, err error) {
	err = c.read(func() (err error) {
		m, err = c.r.ReadMessage()
		return err
	})
	return m, err
}

// AppendMessage reads the next message and appends its payload to dst, as
// [Reader.AppendMessage] does: a caller that reuses dst (passing dst[:0])
// reads messages without allocating, and dst is never grown before the
// whole payload has arrived. On error the returned slice has dst's length
// and contents. Its errors are those of [Conn.ReadMessage]: a protocol
// violation closes the wrapped conn, after Close the error matches
// net.ErrClosed, and a served Conn returns [ErrServerClosed] once Shutdown
// has begun.
func (c *Conn) AppendMessage(dst []byte) ([]byte, error) {
	err := c.read(func() (err error) {
		dst, err = c.r.AppendMessage(dst)
		return err
	})
	return dst, err
}

// Receive reads the next message and decodes it into v, as [Reader.Receive]
// does: with encoding/json (or [Config].Unmarshal), with json.Unmarshal's
// results and errors. An error from decoding a valid payload (a type
// mismatch, an error from v's UnmarshalJSON) consumes the message and leaves
// the stream in sync. Decoding happens under the read lock, so that a
// payload found invalid ends the stream before any later message is handed
// out; concurrent Receive calls therefore decode one at a time.
//
// A frame over the cap or a payload that is not JSON ends the stream with a
// [*FrameSizeError] or an [*InvalidJSONError] and closes the wrapped conn.
// After Close, Receive returns an error matching net.ErrClosed. On a Conn
// served by a [Server], a read that would wait for a new message once
// Shutdown has begun returns [ErrServerClosed].
func (c *Conn) Receive(v any) error {
	return c.read(func() error { return c.r.Receive(v) })
}

// read runs f, one of c.r's reading methods, under the read lock, and maps
// its error to what the Conn returns. A peer that broke the protocol is cut
// off here.
func (c *Conn) read(f func() error) error {
	if c.closed.Load() {
		return c.opError("read", net.ErrClosed)
	}
	return c.readEnded(c.readWithLock(f))
}

// readEnded closes the wrapped conn if err is the peer's protocol violation,
// and returns err. It runs outside the read lock, since closing a TLS conn
// may wait to send an alert.
func (c *Conn) readEnded(err error) error {
	if isViolation(err) {
		c.closeNet(err)
	}
	return err
}

// readWithLock runs f under the read lock, which a panic in f (a
// destination's UnmarshalJSON, Config.Unmarshal, the wrapped conn's Read)
// releases too. A served Conn's hook is told before and after, and may have
// f run again; if f panics, the hook is told how the read ended before the
// panic goes on.
func (c *Conn) readWithLock(f func() error) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() { // Close returned while this call waited for the lock
		return c.opError("read", net.ErrClosed)
	}
	return c.readLocked(f)
}

// readLocked is readWithLock once the read lock is held and the Conn found
// open.
func (c *Conn) readLocked(f func() error) error {
	h := c.hook
	if h != nil {
		if err := h.readBegin(); err != nil {
			return err
		}
	}
	returned := false
	defer func() {
		if !returned {
			c.readPanicked(h)
		}
	}()
	for {
		err := c.readError(f())
		again := false
		if h != nil {
			err, again = h.readEnd(err)
		}
		if !again {
			returned = true
			return err
		}
	}
}

// readPanicked settles a read that panicked, as readWithLock unwinds, and
// tells h, if not nil, how it ended. A panic from the source's Read left the
// Reader's stream ended with errReadPanicked, an I/O error like any other,
// and the buffer goes. A panic anywhere else came from decoding a message
// that had arrived whole, which the Reader has consumed: the read ended with
// a message, as after a type mismatch.
func (c *Conn) readPanicked(h connHook) {
	if c.r.err == nil {
		c.r.consumed() // the payload the decoder was given is no longer in use
	} else {
		c.r.drop()
	}
	err := c.readError(c.r.err)
	if h != nil {
		h.readEnd(err)
	}
}

// readError maps an error from the Reader to what Read and friends return:
// net.ErrClosed once the wrapped conn is closed, unless the peer's protocol
// violation closed it; the error as it is otherwise. A Conn whose read side
// broke (the Reader's stream ended with an error other than io.EOF) is
// reported to its hook; an error that leaves the stream in sync, such as
// Receive's type mismatch, is not.
func (c *Conn) readError(err error) error {
	if err == nil {
		return nil
	}
	ended := c.r.err != nil // the Reader's stream ended: a violation, the source's end or error
	if ended {
		c.rdone.Store(true)
	}
	switch {
	case c.closed.Load():
		return c.opError("read", net.ErrClosed)
	case isViolation(err):
		// read closes the wrapped conn once the lock is released.
	case !ended && !isTimeout(err):
		// An error decoding a message that arrived whole: the stream is
		// in sync, whatever has become of the wrapped conn since.
	case c.netClosed.Load():
		return c.opError("read", net.ErrClosed) // closed by its hook, on a timeout
	case ended && err != io.EOF:
		c.broke(err) // io.EOF is a half-close: the Conn can still write
	}
	return err
}

// A Reader decodes frames from an io.Reader: a pipe, standard input, a file
// or a connection that is not a net.Conn.
//
// A Reader is not safe for concurrent use; Conn adds the locking for
// connections. It reads from its source only when a method asks for the next
// message, into one buffer that grows with what has arrived of the current
// frame, and holds none while nothing is buffered: see "Memory and flow
// control" in the package documentation.
//
// Errors from the source and protocol violations end the stream: after one,
// every reading method returns the same error. The exceptions are timeouts
// (an error matching os.ErrDeadlineExceeded, or another net.Error whose
// Timeout reports true, except ETIMEDOUT), which lose nothing: the bytes
// received so far stay buffered and the next call continues the frame where
// it stopped; and errors that Receive gets from json.Unmarshal for a valid
// payload that does not fit the destination, which consume that message and
// leave the stream in sync. ETIMEDOUT, which a socket's read returns once TCP
// keep-alive found the peer gone, ends the stream like any other error,
// though it reports Timeout true: no deadline was involved, and no later read
// can succeed. A source whose Read returns a count below 0 or above len(p)
// ends the stream with an error, as does one that returns no bytes and no
// error many times in a row (io.ErrNoProgress), or one whose Read panics.
//
// A Reader over a socket that keeps message boundaries (UDP, or a Unix
// datagram or seqpacket socket) cannot find frames in it: every reading
// method returns an error matching errors.ErrUnsupported.
type Reader struct {
	src       io.Reader
	max       int
	validate  bool
	unmarshal func([]byte, any) error // Config.Unmarshal; nil for json.Unmarshal

	bufp *[]byte        // pooled buffer; nil when nothing is buffered
	r, w int            // (*bufp)[r:w] holds the bytes received and not yet consumed
	sock *sockSource    // src as a socket read directly; nil for other sources
	pad  *[padSize]byte // where a read from another source lands while nothing is buffered

	// waits, if set, is called when the Reader is about to read more of a
	// frame it has begun: the moment a frame's clock starts, for a served
	// Conn's frame timeout. It may be called more than once for a frame.
	waits func()

	msg  []byte // rest of the message being returned through Read, in *bufp
	rerr error  // error the source returned along with bytes still to be consumed
	err  error  // sticky error that ended the stream

	// arrived counts the bytes read from the source, for a Client's
	// heartbeat, which reads it from another goroutine.
	arrived atomic.Uint64
}

// NewReader returns a Reader that decodes frames from r. A nil cfg means the
// defaults.
func NewReader(r io.Reader, cfg *Config) *Reader {
	rd := new(Reader)
	rd.init(r, cfg, socketKind(r))
	return rd
}

// init sets up r to read src, of the given kind, as configured by cfg.
func (r *Reader) init(src io.Reader, cfg *Config, kind sockKind) {
	r.src = src
	r.max = cfg.maxFrameSize()
	r.validate = cfg == nil || !cfg.DisableValidation
	if cfg != nil {
		r.unmarshal = cfg.Unmarshal
	}
	switch kind {
	case streamSocket:
		r.sock = newSockSource(src, r)
	case messageSocket:
		r.err = errMessageSocket(src)
		return
	}
	if r.sock == nil {
		r.pad = new([padSize]byte)
	}
}

// ReadMessage reads the next message and returns its payload in a new slice
// owned by the caller. It blocks until a whole frame has arrived.
//
// At a clean end of stream (the source reports io.EOF exactly between two
// frames), ReadMessage returns io.EOF; an end inside a frame is
// io.ErrUnexpectedEOF. A frame whose declared length exceeds the cap returns a
// *FrameSizeError before any of its body is read or any buffer sized by the
// header is allocated; with validation on, a payload that is not one JSON
// value returns an *InvalidJSONError. All of these end the stream.
//
// If a previous Read consumed only part of a message, ReadMessage returns the
// unread rest of that message.
func (r *Reader) ReadMessage() ([]byte, error) {
	p, err := r.next(r.validate)
	if err != nil {
		return nil, err
	}
	m := make([]byte, len(p))
	copy(m, p)
	r.consumed()
	return m, nil
}

// AppendMessage reads the next message like ReadMessage and appends its
// payload to dst, returning the extended slice. A caller that reuses dst
// (passing dst[:0]) reads messages without allocating. A payload larger than
// the Reader's buffer that fits in dst's spare capacity is read straight
// into it, rather than through the Reader's buffer; dst is never grown
// before the whole payload has arrived. On error the returned slice has
// dst's length and contents.
func (r *Reader) AppendMessage(dst []byte) ([]byte, error) {
	if dst, done, err := r.appendLarge(dst); done {
		return dst, err
	}
	p, err := r.next(r.validate)
	if err != nil {
		return dst, err
	}
	dst = append(dst, p...)
	r.consumed()
	return dst, nil
}

// appendLarge reads the next frame straight into dst if its payload is
// larger than the read buffer, has not all arrived, and fits in dst's spare
// capacity: the bytes already buffered are copied to dst and the rest is
// read into place, saving the copy through a buffer of the frame's size. It
// never grows dst, whose capacity is the caller's memory: a caller that
// reuses its buffer gets the direct read, and any other gets the payload
// through the Reader's buffer, which grows only as bytes arrive. It reports
// done false, having read at most the header, for anything else (a small
// frame, one already buffered, one over the cap, the rest of a message that
// Read started, a source error pending), which next handles. A read that
// fails mid-frame puts what arrived back into a buffer of its size, so that
// a timeout loses nothing and the next call goes on from there.
func (r *Reader) appendLarge(dst []byte) (_ []byte, done bool, err error) {
	if len(r.msg) > 0 || r.err != nil {
		return dst, false, nil
	}
	if err := r.fill(headerLen); err != nil {
		return dst, true, r.fail(err)
	}
	n := binary.BigEndian.Uint32((*r.bufp)[r.r:])
	switch {
	case uint64(n) > uint64(r.max), int(n) <= readBufferSize, r.w-r.r >= headerLen+int(n):
		return dst, false, nil
	case cap(dst)-len(dst) < int(n):
		return dst, false, nil // it would have to grow dst ahead of the bytes
	case r.rerr != nil:
		return dst, false, nil // next returns the error the source gave with the header
	}
	start := len(dst)
	p := dst[start : start+int(n)]
	k := copy(p, (*r.bufp)[r.r+headerLen:r.w])
	r.drop()
	if r.waits != nil {
		r.waits()
	}
	m, err := r.readAtLeast(p[k:], len(p)-k)
	r.arrived.Add(uint64(m))
	if k += m; k < len(p) {
		// Back to the state fill would have left: the header and the
		// payload so far, in a buffer of their size.
		r.bufp = getBuf(headerLen + k)
		binary.BigEndian.PutUint32(*r.bufp, n)
		r.w = headerLen + copy((*r.bufp)[headerLen:], p[:k])
		return dst[:start], true, r.fail(err)
	}
	if r.validate && !valid(p) {
		r.err = invalidJSON(p)
		return dst[:start], true, r.err
	}
	return dst[:start+int(n)], true, nil
}

// Read reads payload bytes into p. It never returns bytes of two messages in
// one call: a message longer than p continues on the next Read, and the next
// message starts only on the call after the last byte of this one. That makes
// a Reader a stream of JSON values for json.NewDecoder. Empty payloads (which
// only occur with validation off) contribute no bytes and are skipped. Errors
// are those of ReadMessage.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.msg) == 0 {
		m, err := r.next(r.validate)
		if err != nil {
			return 0, err
		}
		r.msg = m
		if len(m) == 0 {
			r.consumed()
		}
	}
	n := copy(p, r.msg)
	r.msg = r.msg[n:]
	if len(r.msg) == 0 {
		r.consumed()
	}
	return n, nil
}

// Receive reads the next message and decodes it into v as json.Unmarshal
// does, with the same results and errors, with one exception: for a payload
// that is a valid value followed by more bytes (never valid JSON), v may have
// been written to before the error. The payload that a destination's
// UnmarshalJSON method gets is valid only during the call, as the
// json.Unmarshaler contract says.
//
// Receive does not scan a valid payload twice: when validation is on it
// relies on encoding/json's own syntax check. Small payloads are decoded
// with a pooled json.Decoder, which keeps the decoding state that
// json.Unmarshal allocates anew on every call. A payload that is not valid
// JSON is the peer's fault, returned as an [*InvalidJSONError] that ends the
// stream like any other invalid payload. Any other error from json.Unmarshal
// (a type mismatch, or an error from the destination's UnmarshalJSON) is
// returned as is: the message is consumed and the stream stays usable.
// With [Config].Unmarshal, the payload is validated first (unless validation
// is off) and then decoded by it; an error it returns consumes the message
// too. A v that is not a non-nil pointer is refused with
// *json.InvalidUnmarshalError before anything is read.
func (r *Reader) Receive(v any) error {
	if err := checkUnmarshalTarget(v); err != nil {
		return err
	}
	if r.unmarshal != nil {
		// A replacement decoder may not check syntax: validate first.
		p, err := r.next(r.validate)
		if err != nil {
			return err
		}
		err = r.unmarshal(p, v)
		r.consumed()
		return err
	}
	// The rest of a message that Read started was validated when it arrived,
	// and a syntax error in it is no fault of the peer.
	peer := len(r.msg) == 0 && r.validate
	p, err := r.next(false)
	if err != nil {
		return err
	}
	if err = unmarshalStd(p, v); err != nil && peer {
		var se *json.SyntaxError
		if errors.As(err, &se) && !valid(p) {
			// Invalid JSON from the peer. (A syntax error from the
			// destination's own UnmarshalJSON, on a valid payload, is
			// not.)
			r.err = syntaxError(err)
			r.drop()
			return r.err
		}
	}
	r.consumed()
	return err
}

// next returns the payload of the next message, or the unread rest of the
// message that Read is returning. The payload aliases the Reader's buffer: it
// stays valid until the caller calls consumed, which it must do once done.
func (r *Reader) next(validate bool) ([]byte, error) {
	if len(r.msg) > 0 {
		p := r.msg
		r.msg = nil
		return p, nil
	}
	if r.err != nil {
		r.drop() // a stream that a panic ended may still hold a buffer
		return nil, r.err
	}
	if err := r.fill(headerLen); err != nil {
		return nil, r.fail(err)
	}
	buf := *r.bufp
	n := binary.BigEndian.Uint32(buf[r.r:])
	if uint64(n) > uint64(r.max) {
		r.err = peerFrameSizeError(buf[r.r:r.w], r.max)
		r.drop()
		return nil, r.err
	}
	size := headerLen + int(n)
	if err := r.fill(size); err != nil {
		return nil, r.fail(err)
	}
	buf = *r.bufp // fill may have moved the frame to a larger buffer
	p := buf[r.r+headerLen : r.r+size : r.r+size]
	if validate && !valid(p) {
		r.err = invalidJSON(p)
		r.drop()
		return nil, r.err
	}
	r.r += size
	return p, nil
}

// atBoundary reports whether the Reader stands between two frames, holding
// no part of one.
func (r *Reader) atBoundary() bool {
	return r.r == r.w && len(r.msg) == 0
}

// wouldWait reports whether the next read would have to wait for the first
// byte of a new frame: the Reader holds no part of one and has no error to
// report first.
func (r *Reader) wouldWait() bool {
	return r.atBoundary() && r.err == nil && r.rerr == nil
}

// consumed tells the Reader that the payload returned by next is no longer in
// use. The buffer goes back to its pool once nothing in it is left unread.
func (r *Reader) consumed() {
	if r.r == r.w && len(r.msg) == 0 && r.bufp != nil {
		r.drop()
	}
}

// drop releases the buffer and whatever it holds.
func (r *Reader) drop() {
	if r.bufp != nil {
		putBuf(r.bufp)
	}
	r.bufp, r.r, r.w, r.msg = nil, 0, 0, nil
}

// fill reads until at least need bytes are buffered. Only here (and in
// appendLarge's read into place) does a Reader read from its source, one
// read at a time, each into the space the memory policy makes for it
// (readMore).
func (r *Reader) fill(need int) error {
	waited := false
	for empty := 0; r.w-r.r < need; {
		if err := r.rerr; err != nil {
			r.rerr = nil
			return err
		}
		if r.w > r.r && !waited && r.waits != nil {
			r.waits() // more of a begun frame is needed: its clock starts
			waited = true
		}
		n, err := r.readMore(need)
		if n > 0 {
			r.arrived.Add(uint64(n))
		}
		switch {
		case n > 0:
			empty = 0
			r.keep(err)
		case err != nil:
			return err
		default:
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// readMore reads from the source once, into the space the memory policy
// makes for a frame that needs need bytes from r.r, and returns how many
// bytes arrived. A stream socket is read directly (sockSource), so that the
// Reader can keep no more than it holds while it waits; any other source's
// Read blocks holding the space it was given, which makeRoom bounds.
func (r *Reader) readMore(need int) (int, error) {
	if r.sock != nil {
		return r.sock.read(need)
	}
	if r.bufp == nil {
		// Hold no buffer while waiting for a frame: land the read in the
		// pad, and take a buffer for the bytes that arrived.
		r.err = errReadPanicked // kept only if Read panics
		n, err := r.src.Read(r.pad[:])
		r.err = nil
		if n < 0 || n > len(r.pad) {
			return 0, errInvalidRead
		}
		if n > 0 {
			r.bufp = getBuf(firstBufSize)
			r.w = copy(*r.bufp, r.pad[:n])
		}
		return n, err
	}
	r.makeRoom(need)
	p := (*r.bufp)[r.w:]
	r.err = errReadPanicked // kept only if Read panics
	n, err := r.src.Read(p)
	r.err = nil
	if n < 0 || n > len(p) {
		return 0, errInvalidRead
	}
	r.w += n
	return n, err
}

// maxEmptyReads bounds the calls to a source that returns no data and no
// error, as in bufio.
const maxEmptyReads = 100

// errInvalidRead ends the stream of a source whose Read returned a count
// below 0 or above the length of the buffer it was given.
var errInvalidRead = errors.New("jsonconn: source returned an invalid count from Read")

// errReadPanicked ends the stream of a source whose Read panicked: what it
// had consumed of the stream is unknown. The Reader sets it as its sticky
// error before each Read of the source and clears it after, so that it
// stays only if the Read does not return, at the cost of two stores.
var errReadPanicked = errors.New("jsonconn: the source's Read panicked; the stream is in an unknown state")

// readAtLeast reads from the source into p until at least min bytes have
// arrived, and returns how many did. It returns an error only if fewer than
// min arrived: an error that comes with the last bytes needed is kept for the
// next read (see keep).
func (r *Reader) readAtLeast(p []byte, min int) (int, error) {
	n := 0
	for empty := 0; n < min; {
		r.err = errReadPanicked // kept only if Read panics
		m, err := r.src.Read(p[n:])
		r.err = nil
		if m < 0 || m > len(p)-n {
			return n, errInvalidRead
		}
		n += m
		if err != nil {
			if n < min {
				return n, err
			}
			r.keep(err)
			return n, nil
		}
		if m == 0 {
			if empty++; empty >= maxEmptyReads {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}

// keep holds on to err, which the source returned along with bytes, for the
// next read that needs the source, so that the bytes are delivered first. A
// timeout is not kept: that next read meets the deadline again by itself.
func (r *Reader) keep(err error) {
	if err != nil && !isTimeout(err) {
		r.rerr = err
	}
}

// fail classifies an error from fill. A timeout keeps every byte received so
// far, so the frame resumes on the next call; anything else ends the stream.
func (r *Reader) fail(err error) error {
	if isTimeout(err) {
		if r.atBoundary() {
			r.drop() // nothing to keep: an idle Reader holds no buffer
		}
		return err
	}
	if err == io.EOF && r.w > r.r {
		err = io.ErrUnexpectedEOF
	}
	r.err = err
	r.drop()
	return err
}

package jsonconn

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"sync"
)

// A Reader decodes frames from an io.Reader: a pipe, standard input, a file
// or a connection that is not a net.Conn.
//
// A Reader is not safe for concurrent use; Conn adds the locking for
// connections. It reads from its source only when a method asks for the next
// message, into at most one buffer, large enough for the current frame, and
// holds none while nothing is buffered (see the buffering policy in
// backpressure.go).
//
// Errors from the source and protocol violations end the stream: after one,
// every reading method returns the same error. The exceptions are timeouts
// (any error that is an os.ErrDeadlineExceeded or a net.Error whose Timeout
// reports true), which lose nothing: the bytes received so far stay buffered
// and the next call continues the frame where it stopped; and errors that
// Receive gets from json.Unmarshal for a valid payload that does not fit the
// destination, which consume that message and leave the stream in sync.
type Reader struct {
	src       io.Reader
	max       int
	validate  bool
	unmarshal func([]byte, any) error // Config.Unmarshal; nil for json.Unmarshal

	bufp *[]byte        // pooled buffer; nil when nothing is buffered
	r, w int            // (*bufp)[r:w] holds the bytes received and not yet consumed
	sock *sockSource    // src as a socket read directly; nil for other sources
	pad  *[padSize]byte // where a read from another source lands while nothing is buffered

	waiter waiter // told when a read blocks for a frame's first byte; may be nil

	msg  []byte // rest of the message being returned through Read, in *bufp
	rerr error  // error the source returned along with bytes still to be consumed
	err  error  // sticky error that ended the stream
}

// NewReader returns a Reader that decodes frames from r. A nil cfg means the
// defaults.
func NewReader(r io.Reader, cfg *Config) *Reader {
	rd := new(Reader)
	rd.init(r, cfg)
	return rd
}

func (r *Reader) init(src io.Reader, cfg *Config) {
	r.src = src
	if r.sock = newSockSource(src); r.sock == nil {
		r.pad = new([padSize]byte)
	}
	r.max = cfg.maxFrameSize()
	r.validate = cfg == nil || !cfg.DisableValidation
	if cfg != nil {
		r.unmarshal = cfg.Unmarshal
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
// the 16 KiB read buffer is read straight into dst's free capacity, growing
// dst if needed, rather than through a buffer of its own. On error the
// returned slice has dst's length and contents (its capacity may have grown).
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
// larger than the read buffer and has not all arrived, saving the copy into a
// buffer of the frame's size and the copy out of it: the bytes already
// buffered are copied to dst and the rest is read into place. It reports
// done false, having read at most the header, for anything else (a small
// frame, one already buffered, one over the cap, the rest of a message that
// Read started, a source error pending, a frame that already has its own
// buffer), which next handles. A read that fails mid-frame puts what
// arrived back into a buffer of the frame's size, so that a timeout loses
// nothing and the next call goes on from there.
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
	case r.rerr != nil:
		return dst, false, nil // next returns the error the source gave with the header
	case len(*r.bufp)-r.r >= headerLen+int(n):
		// The frame's buffer is there already (an earlier call timed
		// out): go on filling it rather than copy it back out.
		return dst, false, nil
	}
	start := len(dst)
	dst = slices.Grow(dst, int(n))[:start+int(n)]
	p := dst[start:]
	k := copy(p, (*r.bufp)[r.r+headerLen:r.w])
	r.drop()
	for empty := 0; k < len(p); {
		var m int
		m, err = r.src.Read(p[k:])
		k += m
		if err != nil {
			break
		}
		if m == 0 {
			if empty++; empty >= maxEmptyReads {
				err = io.ErrNoProgress
				break
			}
		}
	}
	if k < len(p) {
		// Back to the state fill would have left: header and the
		// payload so far, in a buffer of the frame's size.
		r.bufp = getBuf(headerLen + int(n))
		binary.BigEndian.PutUint32(*r.bufp, n)
		r.w = headerLen + copy((*r.bufp)[headerLen:], p[:k])
		return dst[:start], true, r.fail(err)
	}
	if err != nil && !isTimeout(err) {
		r.rerr = err // for the next read, as fill keeps it
	}
	if r.validate && !valid(p) {
		r.err = invalidJSON(p)
		return dst[:start], true, r.err
	}
	return dst, true, nil
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
// relies on encoding/json's own syntax check. Payloads of up to 16 KiB are
// decoded with a pooled json.Decoder, which keeps the decoding state that
// json.Unmarshal allocates anew on every call. A payload that is not valid
// JSON is the peer's fault, returned as an *InvalidJSONError that ends the
// stream like any other invalid payload. Any other error from json.Unmarshal
// (a type mismatch, or an error from the destination's UnmarshalJSON) is
// returned as is: the message is consumed and the stream stays usable.
// A v that is not a non-nil pointer is refused with *json.InvalidUnmarshalError
// before anything is read.
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

// maxPooledDecode is the largest payload unmarshalStd decodes with a pooled
// json.Decoder. A Decoder keeps a buffer as large as the largest payload it
// has read, which the pool would hold on to; and for larger payloads the
// allocations a Decoder saves are a small part of the cost.
const maxPooledDecode = 16 << 10

// A stdDecoder is a json.Decoder reading from a payload. Between uses it is
// clean: it has consumed every byte it was given, so the offsets in its
// errors count from the start of the next payload, as json.Unmarshal's do.
type stdDecoder struct {
	src bytes.Reader
	dec *json.Decoder
}

var stdDecoders = sync.Pool{New: func() any {
	d := new(stdDecoder)
	d.dec = json.NewDecoder(&d.src)
	return d
}}

// unmarshalStd is json.Unmarshal(p, v) for a Receive without a Config
// codec. A small payload is decoded with a pooled json.Decoder, which like
// json.Unmarshal scans it once for syntax and then decodes it, but reuses
// its decoding state: on a small message that saves four allocations and
// about a tenth of the decoding time (BenchmarkObjects). Where the Decoder
// and json.Unmarshal could differ, on a payload that is not exactly one
// valid value, the result is json.Unmarshal's.
func unmarshalStd(p []byte, v any) error {
	// Trailing whitespace (json.Encoder ends each value with a newline) is
	// cut, so that the Decoder consumes the whole of what it is given and
	// can go back to the pool. Leading whitespace is left to json.Unmarshal:
	// a Decoder's error offsets would count from the value, not the payload,
	// under GOEXPERIMENT=jsonv2.
	q := bytes.TrimRight(p, " \t\r\n")
	if len(q) == 0 || len(q) > maxPooledDecode || isSpace(q[0]) {
		return json.Unmarshal(p, v)
	}
	d := stdDecoders.Get().(*stdDecoder)
	d.src.Reset(q)
	start := d.dec.InputOffset()
	err := d.dec.Decode(v)
	end := d.dec.InputOffset() - start // where the value ended in q
	d.src.Reset(nil)
	if err == nil && end == int64(len(q)) {
		stdDecoders.Put(d) // clean: it consumed all it was given
		return nil
	}
	// The Decoder is dropped: after a syntax error it is dead, and after
	// a value followed by more bytes it holds them.
	if err != nil && valid(p) {
		// A type mismatch or an UnmarshalJSON error: the same as
		// json.Unmarshal's, offsets included.
		return err
	}
	// Not valid JSON: json.Unmarshal says so, and where. Only when a valid
	// value is followed by more bytes has v been written to, as
	// json.Unmarshal, which checks the whole payload first, would not.
	return json.Unmarshal(p, v)
}

// checkUnmarshalTarget refuses a destination json.Unmarshal would refuse only
// after parsing, so that a caller's mistake does not consume a message.
func checkUnmarshalTarget(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &json.InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	return nil
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
		return nil, r.err
	}
	if err := r.fill(headerLen); err != nil {
		return nil, r.fail(err)
	}
	buf := *r.bufp
	n := binary.BigEndian.Uint32(buf[r.r:])
	if uint64(n) > uint64(r.max) {
		r.err = &FrameSizeError{Size: int64(n), Max: r.max}
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

// A waiter is told when a Reader blocks waiting for the first byte of a frame
// with nothing buffered: the one moment a Server may interrupt it without
// losing anything. Conn implements it.
type waiter interface {
	beginWait() bool // false: do not wait, end the stream with ErrServerClosed
	endWait()
}

// atBoundary reports whether the Reader stands between two frames, holding
// no part of one.
func (r *Reader) atBoundary() bool {
	return r.r == r.w && len(r.msg) == 0
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

// maxEmptyReads bounds the calls to a source that returns no data and no
// error, as in bufio.
const maxEmptyReads = 100

// fill reads until at least need bytes are buffered. Only here does a Reader
// read from its source, and never into more than one buffer: the buffer grows
// only to hold the frame being read.
func (r *Reader) fill(need int) error {
	empty := 0
	for r.w-r.r < need {
		if err := r.rerr; err != nil {
			r.rerr = nil
			return err
		}
		var n int
		var err error
		if r.bufp == nil {
			// Nothing is buffered: hold no buffer while waiting, so
			// that a Reader blocked on a quiet peer holds none. A
			// socket is read straight into a buffer taken for each read
			// attempt (sockread_unix.go); anything else is read into the
			// Reader's pad first.
			if r.waiter != nil && !r.waiter.beginWait() {
				return ErrServerClosed
			}
			size := max(need, readBufferSize+headerLen)
			if r.sock != nil {
				r.bufp, n, err = r.sock.read(size)
				r.w = n
			} else if n, err = r.src.Read(r.pad[:]); n > 0 {
				r.bufp = getBuf(size)
				r.w = copy(*r.bufp, r.pad[:n])
			}
			if r.waiter != nil {
				r.waiter.endWait()
			}
		} else {
			if buf := *r.bufp; len(buf)-r.r < need {
				// Make room: move what is buffered to the front, into a
				// larger buffer if the frame needs one.
				if need > len(buf) {
					nb := getBuf(need)
					copy(*nb, buf[r.r:r.w])
					putBuf(r.bufp)
					r.bufp = nb
				} else {
					copy(buf, buf[r.r:r.w])
				}
				r.w -= r.r
				r.r = 0
			}
			n, err = r.src.Read((*r.bufp)[r.w:])
			r.w += n
		}
		if err != nil {
			if r.w-r.r < need {
				return err
			}
			// The frame is complete. A timeout can wait for the next read
			// that needs the network; any other error is kept for it.
			if !isTimeout(err) {
				r.rerr = err
			}
			return nil
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
	return nil
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

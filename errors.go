package jsonconn

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/jsonconn/jsonconn/internal/sniff"
)

var (
	// ErrFrameTooLarge is matched (with errors.Is) by the error returned when
	// a frame's payload exceeds the frame cap: by Write, Send and WriteBatch
	// for a message the caller tried to send, which is refused before any
	// byte is written, and by the reading methods for a frame header announced
	// by the peer, which ends the stream. The error itself is a
	// *FrameSizeError carrying the sizes.
	ErrFrameTooLarge = errors.New("jsonconn: frame too large")

	// ErrInvalidJSON is matched (with errors.Is) by the error returned when a
	// payload is not exactly one JSON value: by Write, WriteBatch and (with
	// Config.Marshal) Send for a message the caller tried to send, which is
	// refused before any byte is written, and by the reading methods for a
	// frame received from the peer, which ends the stream. The error itself is
	// an *InvalidJSONError carrying the offset.
	ErrInvalidJSON = errors.New("jsonconn: invalid JSON")

	// ErrPending is matched (with errors.Is) by the error that Write, Send and
	// WriteBatch return when a timeout (a deadline; see "Errors" in the
	// package documentation) struck after part of a frame had already been
	// written. The message is committed: Write reports len(p), and the unsent
	// rest of its frame is kept. That rest goes out ahead of the next message
	// (a Write, Send or WriteBatch) or on Flush, and only then does the peer
	// have the message whole. Close does not send it: call Flush first, under
	// a new deadline. A Server closes a served Conn as soon as its handler
	// returns, so a handler that ends on ErrPending should Flush before it
	// returns. Do not send the message again: its first bytes are on the wire,
	// and a second copy would follow the first. When a deadline cut the
	// frame, the same error also matches os.ErrDeadlineExceeded and is a
	// net.Error whose Timeout reports true, so code that only knows net.Conn
	// sees an ordinary timeout; when a context call's ctx cut it, it matches
	// ctx.Err() instead, and Timeout reports true only for a deadline.
	//
	// A timeout that struck before any byte of the frame left does not match
	// ErrPending: that message was not sent and the Write returns 0.
	ErrPending = errors.New("jsonconn: write cut short after part of the frame was sent; the rest is pending")

	// ErrServerClosed is returned by Server.Serve and Server.ListenAndServe
	// after Shutdown or Close, and by the reading methods of a Conn served by
	// a Server once Shutdown has stopped them from waiting for a new message.
	ErrServerClosed = errors.New("jsonconn: Server closed")
)

// A FrameSizeError reports a frame whose payload is larger than the frame cap.
// It matches ErrFrameTooLarge.
//
// When the frame's header came from the peer and does not look like a
// length at all (its bytes spell text, a PROXY protocol header, the start of
// an HTTP request or a TLS record), the message quotes the header and names
// what the peer probably speaks, as net/http answers a TLS handshake sent to
// a plain port with "client sent an HTTP request to an HTTPS server".
type FrameSizeError struct {
	Size int64 // payload length: declared by the peer's header, or of the caller's message
	Max  int64 // the frame cap in force

	header [headerLen]byte // the peer's header, if hint is set
	hint   string          // what the header looks like, from sniff.Header; "" for none
}

// peerFrameSizeError returns the error for the peer's header that
// announces a payload over the cap max; b holds the header and whatever
// arrived with it, the more evidence for what the peer speaks.
func peerFrameSizeError(b []byte, max int) *FrameSizeError {
	e := &FrameSizeError{Size: int64(binary.BigEndian.Uint32(b)), Max: int64(max)}
	if e.hint = sniff.Header(b, MaxFrameSizeLimit); e.hint != "" {
		copy(e.header[:], b)
	}
	return e
}

func (e *FrameSizeError) Error() string {
	if e.hint != "" {
		return fmt.Sprintf("jsonconn: frame of %d bytes exceeds the %d-byte limit; its header %q looks like %s", e.Size, e.Max, e.header[:], e.hint)
	}
	return fmt.Sprintf("jsonconn: frame of %d bytes exceeds the %d-byte limit", e.Size, e.Max)
}

// Unwrap returns ErrFrameTooLarge.
func (e *FrameSizeError) Unwrap() error { return ErrFrameTooLarge }

// An InvalidJSONError reports a payload that is not exactly one JSON value.
// It matches ErrInvalidJSON and the *json.SyntaxError it wraps.
type InvalidJSONError struct {
	Offset int64 // bytes of the payload read before the error was detected, as in json.SyntaxError
	Err    error // the underlying error, a *json.SyntaxError
}

func (e *InvalidJSONError) Error() string {
	return fmt.Sprintf("jsonconn: invalid JSON at offset %d: %v", e.Offset, e.Err)
}

// Unwrap returns ErrInvalidJSON and the underlying error.
func (e *InvalidJSONError) Unwrap() []error { return []error{ErrInvalidJSON, e.Err} }

// invalidJSON builds the error for a payload that valid rejected. It runs
// only on that failure path, so it may scan the payload once more to find the
// offset.
func invalidJSON(p []byte) error {
	err := json.Unmarshal(p, new(json.RawMessage))
	return syntaxError(err)
}

// syntaxError converts err from the standard JSON scanner into an
// *InvalidJSONError.
func syntaxError(err error) error {
	e := &InvalidJSONError{Err: err}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		e.Offset = se.Offset
	}
	return e
}

// pendingError is the timeout returned for a committed frame of which only a
// part was written. See ErrPending.
type pendingError struct {
	err error // the timeout from the underlying writer
}

func (e *pendingError) Error() string   { return ErrPending.Error() + ": " + e.err.Error() }
func (e *pendingError) Unwrap() []error { return []error{ErrPending, e.err} }

// Timeout reports whether the error that cut the frame was a timeout: true
// for a deadline, false for a context call's context.Canceled.
func (e *pendingError) Timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// Temporary forwards to the underlying timeout; it exists so that
// pendingError satisfies net.Error, which callers type-assert directly.
func (e *pendingError) Temporary() bool {
	var ne interface{ Temporary() bool }
	return errors.As(e.err, &ne) && ne.Temporary()
}

// isViolation reports whether err is the peer's breach of the protocol (a
// frame over the cap, a payload that is not JSON), which ends the stream and
// the connection.
func isViolation(err error) bool {
	return errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrInvalidJSON)
}

// isTimeout reports whether err is an I/O timeout: one that leaves the
// stream intact and may be retried once the deadline has been moved. That is
// an error matching os.ErrDeadlineExceeded, or a net.Error whose Timeout
// reports true, unless it is ETIMEDOUT: the kernel's verdict that the peer is
// gone (TCP keep-alive probes or TCP_USER_TIMEOUT ran out), which
// syscall.Errno reports as a timeout too, but which no later call can
// recover from.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ETIMEDOUT)
}

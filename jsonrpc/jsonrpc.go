// Package jsonrpc carries JSON-RPC 2.0 over a jsonconn.Conn, with the Go
// libraries that already implement it: a Channel for
// github.com/creachadair/jrpc2, and an ObjectStream for
// github.com/sourcegraph/jsonrpc2. Each request, response, notification or
// batch is one framed message, so a Node.js peer using json-rpc-2.0 over the
// same 4-byte framing talks to either.
//
// A reply that would exceed the frame cap cannot be sent, and JSON-RPC
// libraries drop a failed reply's error: jrpc2 v1.3.1's server discards it,
// and the client then waits for its ctx. So both adapters answer every id
// that was asked, and never make the caller wait:
//   - A reply over the cap is replaced by an error response for the same id
//     (code [CodeFrameCap], message [MessageFrameCap]): the call fails with
//     that error, and the Conn stays usable.
//   - A batch of replies over the cap goes out in several frames, each an
//     array of replies that fits, in order, with every reply that alone
//     exceeds the cap replaced as above; a reply that fits the cap alone
//     but not between an array's brackets goes as a frame of its own. Peers
//     match replies by id, not by frame: jrpc2's client and json-rpc-2.0's
//     in Node.js both do.
//   - If even the error response exceeds the cap (a cap under about a
//     hundred bytes, or a peer's id nearly as long as the cap), the Conn is
//     closed, so that the peer's calls fail at once instead of waiting.
//
// A request over the cap is refused before anything is sent, and the call
// fails with the *jsonconn.FrameSizeError.
//
// Deadlines around Send and Receive are not request and reply: a reply that
// comes after its call's deadline is taken for the next call's answer. These
// libraries match replies to calls by id, and discard late ones.
package jsonrpc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jsonconn/jsonconn"
)

// CodeFrameCap is the JSON-RPC error code of the error response that
// replaces a reply over the frame cap: -32603, the specification's internal
// error. Libraries use that code for other failures too (jrpc2 does when
// its connection breaks), so tell the replacement by its message as well,
// [MessageFrameCap].
const CodeFrameCap = -32603

// MessageFrameCap is the message of the error response that replaces a
// reply over the frame cap.
const MessageFrameCap = "reply exceeds the frame cap"

// ErrReplaced is matched by the error Channel.Send and
// ObjectStream.WriteObject return when a reply over the frame cap was
// replaced by an error response that went out: the peer has its answer, and
// the Conn is usable. The error also matches jsonconn.ErrFrameTooLarge, and
// errors.As finds the *jsonconn.FrameSizeError of the reply replaced (the
// first, in a batch with several).
var ErrReplaced = errors.New("jsonrpc: a reply over the frame cap was replaced by an error response")

// A Channel is a jrpc2 channel.Channel over a Conn: Send writes each record
// as one message and Recv reads one. It may be used by one sender and one
// receiver at once, as jrpc2 requires; a Conn allows more.
type Channel struct{ c *jsonconn.Conn }

// NewChannel returns a Channel over c, for jrpc2.NewServer's Start or
// jrpc2.NewClient. The Channel owns c: its Close closes c.
func NewChannel(c *jsonconn.Conn) *Channel { return &Channel{c} }

// Send sends rec, a JSON-RPC message or batch, as one message. A request
// over the frame cap is refused with the *jsonconn.FrameSizeError, and
// nothing is sent. Replies over it are handled as the package doc says: Send
// returns nil if every reply went out as it was (a batch split into
// frames), an error matching [ErrReplaced] if one was replaced by an error
// response, and an error matching net.ErrClosed if the Conn had to be
// closed because even the error response did not fit.
func (ch *Channel) Send(rec []byte) error {
	_, err := ch.c.Write(rec)
	if !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		return err
	}
	return sendReplies(ch.c, rec, err)
}

// Recv reads the next message. It returns io.EOF at the end of the peer's
// stream, as jrpc2 expects.
func (ch *Channel) Recv() ([]byte, error) {
	m, err := ch.c.ReadMessage()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	return m, err
}

// Close closes the Conn.
func (ch *Channel) Close() error { return ch.c.Close() }

// sendReplies sends rec, refused by c with err, a *jsonconn.FrameSizeError,
// in frames that fit, if it is a reply or a batch of replies; see the
// package doc. It returns err as it is if rec holds anything else.
func sendReplies(c *jsonconn.Conn, rec []byte, err error) error {
	var fse *jsonconn.FrameSizeError
	replies, batch := parseReplies(rec)
	if replies == nil || !errors.As(err, &fse) {
		return err
	}
	max := int(fse.Max)
	// A reply is replaced only if it alone exceeds the cap; in a batch, one
	// that fits alone but not between brackets goes as a frame of its own,
	// not in an array.
	var replaced *jsonconn.FrameSizeError
	for i, r := range replies {
		if len(r.raw) <= max {
			continue
		}
		if replaced == nil {
			replaced = &jsonconn.FrameSizeError{Size: int64(len(r.raw)), Max: fse.Max}
		}
		replies[i].raw = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%q}}`, r.id, CodeFrameCap, MessageFrameCap)
		if n := len(replies[i].raw); n > max {
			c.Close()
			return fmt.Errorf("jsonrpc: the error response replacing a reply over the frame cap exceeds it too (%w); closed the connection: %w",
				&jsonconn.FrameSizeError{Size: int64(n), Max: fse.Max}, net.ErrClosed)
		}
	}
	var frames [][]byte
	if !batch {
		frames = [][]byte{replies[0].raw}
	} else {
		// Greedy: '[', the replies joined by ',', and ']', in frames of at
		// most max bytes.
		var f []byte
		for _, r := range replies {
			if len(r.raw)+2 > max {
				if len(f) > 0 {
					frames = append(frames, append(f, ']'))
					f = nil
				}
				frames = append(frames, r.raw)
				continue
			}
			if len(f) > 0 && len(f)+1+len(r.raw)+1 > max {
				frames = append(frames, append(f, ']'))
				f = nil
			}
			if len(f) == 0 {
				f = append(f, '[')
			} else {
				f = append(f, ',')
			}
			f = append(f, r.raw...)
		}
		if len(f) > 0 {
			frames = append(frames, append(f, ']'))
		}
	}
	// WriteBatch checks every frame before it sends any, and sends them
	// together, with no other writer's message between them.
	if _, err := c.WriteBatch(frames); err != nil {
		return err
	}
	if replaced != nil {
		return fmt.Errorf("%w: %w", ErrReplaced, replaced)
	}
	return nil
}

// A reply is one JSON-RPC 2.0 response, as sent, and its id.
type reply struct{ raw, id json.RawMessage }

// parseReplies returns the JSON-RPC 2.0 responses rec holds, and whether rec
// is a batch of them, or nil if rec holds anything else: a request, a
// notification, or what is not JSON-RPC 2.0. Members are matched by their
// exact names, as the specification spells them.
func parseReplies(rec []byte) (replies []reply, batch bool) {
	var raws []json.RawMessage
	if json.Unmarshal(rec, &raws) == nil {
		batch = true
	} else {
		raws = []json.RawMessage{rec}
	}
	if len(raws) == 0 {
		return nil, false
	}
	replies = make([]reply, len(raws))
	for i, r := range raws {
		var m map[string]json.RawMessage
		if json.Unmarshal(r, &m) != nil {
			return nil, false
		}
		var version string
		id, hasID := m["id"]
		_, isResult := m["result"]
		_, isError := m["error"]
		_, isRequest := m["method"]
		if json.Unmarshal(m["jsonrpc"], &version) != nil || version != "2.0" || !hasID || isRequest || isResult == isError {
			return nil, false
		}
		replies[i] = reply{raw: r, id: id}
	}
	return replies, batch
}

// An ObjectStream is a sourcegraph/jsonrpc2 ObjectStream over a Conn:
// WriteObject sends each object as one message and ReadObject reads one.
type ObjectStream struct{ c *jsonconn.Conn }

// NewObjectStream returns an ObjectStream over c, for jsonrpc2.NewConn. The
// stream owns c: its Close closes c.
func NewObjectStream(c *jsonconn.Conn) *ObjectStream { return &ObjectStream{c} }

// WriteObject sends obj as one message. A request over the frame cap is
// refused with the *jsonconn.FrameSizeError, and nothing is sent; a reply
// over it is replaced by an error response for the same id, as the package
// doc says, and WriteObject returns an error matching [ErrReplaced], or one
// matching net.ErrClosed if the Conn had to be closed.
func (s *ObjectStream) WriteObject(obj any) error {
	err := s.c.Send(obj)
	if !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		return err
	}
	// jsonrpc2 hands its messages over in a type of its own: encode it
	// again, only on this path, to find out whether it is a reply.
	rec, merr := json.Marshal(obj)
	if merr != nil {
		return err
	}
	return sendReplies(s.c, rec, err)
}

// ReadObject reads the next message into v.
func (s *ObjectStream) ReadObject(v any) error { return s.c.Receive(v) }

// Close closes the Conn.
func (s *ObjectStream) Close() error { return s.c.Close() }

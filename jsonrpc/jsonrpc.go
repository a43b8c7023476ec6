// Package jsonrpc carries JSON-RPC 2.0 over a jsonconn.Conn, with the Go
// libraries that already implement it: a Channel for
// github.com/creachadair/jrpc2, and an ObjectStream for
// github.com/sourcegraph/jsonrpc2. Each request, response, notification or
// batch is one framed message, so a Node.js peer using json-rpc-2.0 over the
// same 4-byte framing talks to either.
//
// A reply that would exceed the frame cap cannot be sent, and JSON-RPC
// libraries drop a failed reply's error: jrpc2 v1.3.1's server discards it,
// and the client then waits for its ctx. So both adapters replace such a
// reply with an error response for the same id (code -32603, "reply exceeds
// the frame cap"): the call fails with that error, and the Conn stays
// usable. A batch of replies over the cap gets such an error response for
// each of its ids. A request over the cap is refused before anything is
// sent, and the call fails with the *jsonconn.FrameSizeError.
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

	"github.com/jsonconn/jsonconn"
)

// CodeFrameCap is the JSON-RPC error code of the error response that
// replaces a reply over the frame cap: -32603, the specification's internal
// error.
const CodeFrameCap = -32603

// msgFrameCap is the message of that error response.
const msgFrameCap = "reply exceeds the frame cap"

// A Channel is a jrpc2 channel.Channel over a Conn: Send writes each record
// as one message and Recv reads one. It may be used by one sender and one
// receiver at once, as jrpc2 requires; a Conn allows more.
type Channel struct{ c *jsonconn.Conn }

// NewChannel returns a Channel over c, for jrpc2.NewServer's Start or
// jrpc2.NewClient. The Channel owns c: its Close closes c.
func NewChannel(c *jsonconn.Conn) *Channel { return &Channel{c} }

// Send sends rec, a JSON-RPC message or batch, as one message. A response
// (or a batch of responses) over the frame cap is replaced by error
// responses for the same ids; a request over it is refused with the
// *jsonconn.FrameSizeError, and nothing is sent.
func (ch *Channel) Send(rec []byte) error {
	_, err := ch.c.Write(rec)
	if !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		return err
	}
	if reply := frameCapReplies(rec); reply != nil {
		_, err = ch.c.Write(reply)
	}
	return err
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

// frameCapReplies returns the error responses that replace rec, a response
// or a batch of responses over the frame cap, or nil if rec holds a request
// (or is not JSON-RPC at all).
func frameCapReplies(rec []byte) []byte {
	// Only the ids and whether each element is a request matter; the
	// decoder skips the rest.
	type element struct {
		ID     json.RawMessage `json:"id"`
		Method *string         `json:"method"`
	}
	var batch []element
	single := false
	if err := json.Unmarshal(rec, &batch); err != nil {
		var e element
		if json.Unmarshal(rec, &e) != nil {
			return nil
		}
		batch, single = []element{e}, true
	}
	replies := make([]json.RawMessage, len(batch))
	for i, e := range batch {
		if e.Method != nil || e.ID == nil {
			return nil // a request or a notification: the caller's, not a reply
		}
		replies[i] = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%q}}`, e.ID, CodeFrameCap, msgFrameCap)
	}
	if single {
		return replies[0]
	}
	out, err := json.Marshal(replies)
	if err != nil {
		return nil
	}
	return out
}

// An ObjectStream is a sourcegraph/jsonrpc2 ObjectStream over a Conn:
// WriteObject sends each object as one message and ReadObject reads one.
type ObjectStream struct{ c *jsonconn.Conn }

// NewObjectStream returns an ObjectStream over c, for jsonrpc2.NewConn. The
// stream owns c: its Close closes c.
func NewObjectStream(c *jsonconn.Conn) *ObjectStream { return &ObjectStream{c} }

// WriteObject sends obj as one message. A response over the frame cap is
// replaced by an error response for the same id; a request over it is
// refused with the *jsonconn.FrameSizeError, and nothing is sent.
func (s *ObjectStream) WriteObject(obj any) error {
	err := s.c.Send(obj)
	if !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		return err
	}
	// jsonrpc2 hands its messages over in a type of its own: encode it
	// again, only on this path, to find out whether it is a reply.
	if rec, merr := json.Marshal(obj); merr == nil {
		if reply := frameCapReplies(rec); reply != nil {
			_, err = s.c.Write(reply)
		}
	}
	return err
}

// ReadObject reads the next message into v.
func (s *ObjectStream) ReadObject(v any) error { return s.c.Receive(v) }

// Close closes the Conn.
func (s *ObjectStream) Close() error { return s.c.Close() }

// Package jsonconn speaks framed JSON over any net.Conn, io.Reader or
// io.Writer.
//
// # Wire format
//
// Every message is a frame: a 4-byte big-endian unsigned length N, then N bytes
// holding exactly one JSON value. N is at most the frame cap, 256 KiB
// (DefaultMaxFrameSize) unless Config.MaxFrameSize says otherwise. It is the
// format of the JsonSocket design for Node.js (a net.Socket decorator with a
// 4-byte length prefix), so Go programs can talk to Node.js, Python or
// anything else that frames messages this way. (It is not the framing of the
// npm package json-socket, which writes the length in decimal followed by
// '#'.) docs/protocol.md in the repository is the normative specification,
// with test vectors.
//
// # Types
//
// Conn wraps a net.Conn (TCP, Unix socket, TLS, net.Pipe) and is itself a
// net.Conn: Write sends exactly one message and Read returns payload bytes,
// never of two messages in one call, so json.NewEncoder, json.NewDecoder and
// net/rpc/jsonrpc work over it unchanged. Send and Receive marshal and
// unmarshal Go values (with encoding/json, or the codec in Config).
// ReadMessage and AppendMessage return whole payloads, and WriteBatch sends up
// to 512 messages per system call.
// Reader and Writer do the same over a plain io.Reader or io.Writer, such as
// standard input and output.
//
// Listen, NewListener, Dial and Dialer mirror their crypto/tls namesakes: they
// accept and dial *Conn over "tcp", "tcp4", "tcp6" and "unix", and compose
// with TLS. Server runs a handler per connection in the manner of net/http,
// with a connection limit, idle and write timeouts, panic recovery and
// graceful Shutdown.
//
// # Concurrency
//
// A Conn is safe for concurrent use, like any net.Conn. Reads and writes take
// separate locks: concurrent writers never interleave frames, concurrent
// readers each get whole messages, and a blocked Read never holds up a Write or
// Close. Close unblocks pending calls. A Conn starts no goroutines: it reads
// from the network only when the application asks for a message, which is what
// lets TCP flow control push back on a fast sender (see backpressure.go).
// Reader and Writer are not safe for concurrent use.
//
// # Errors
//
// A message the caller gets wrong is refused before any byte is written, and
// the connection stays usable: errors matching ErrFrameTooLarge (a
// *FrameSizeError), ErrInvalidJSON (an *InvalidJSONError), or the error from
// encoding/json.
//
// A peer that breaks the protocol (a header over the cap, a payload that is
// not JSON) ends the stream: the reading methods return a *FrameSizeError or an
// *InvalidJSONError, the Conn closes the wrapped conn, and every later read
// returns the same error. The end of the stream between frames is io.EOF, and
// inside a frame io.ErrUnexpectedEOF; both are sticky too. So is any
// non-timeout error from the wrapped conn, on its side.
//
// Timeouts are not sticky and never desynchronise the stream. They are
// net.Error values with Timeout true that match os.ErrDeadlineExceeded. A read
// that times out mid-frame resumes where it stopped. A write that times out
// before any byte of its frame left reports 0 bytes: the message was not sent.
// One that times out after part of the frame left reports len(p) and an error
// matching ErrPending: the message is committed, and its rest goes out ahead of
// the next message. A receive that fails to unmarshal a valid payload (a type
// mismatch) consumes that message and leaves the stream in sync.
//
// After Close, every method returns an error matching net.ErrClosed.
package jsonconn

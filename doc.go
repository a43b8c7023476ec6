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
// [Conn] wraps a net.Conn (TCP, Unix socket, TLS, net.Pipe) and is itself a
// net.Conn: [Conn.Write] sends exactly one message and [Conn.Read] returns
// payload bytes, never of two messages in one call, so json.NewEncoder,
// json.NewDecoder and net/rpc/jsonrpc work over it unchanged. [Conn.Send]
// and [Conn.Receive] marshal and unmarshal Go values (with encoding/json, or
// the codec in [Config]). [Conn.ReadMessage] and [Conn.AppendMessage] return
// whole payloads, and [Conn.WriteBatch] sends many messages per system call.
// [Reader] and [Writer] do the same over a plain io.Reader or io.Writer, such
// as standard input and output.
//
// [Listen], [NewListener], [Dial] and [Dialer] mirror their crypto/tls
// namesakes: they accept and dial *Conn over "tcp", "tcp4", "tcp6" and
// "unix", and compose with TLS. A [Listener] is a net.Listener whose
// [Listener.AcceptConn] returns the *Conn. [Server] runs a [Handler] per
// connection in the manner of net/http, with a connection limit, idle, frame
// and write timeouts, panic recovery, graceful [Server.Shutdown] and
// [Server.Stats].
//
// # Concurrency
//
// A Conn is safe for concurrent use, like any net.Conn. Reads and writes take
// separate locks: concurrent writers never interleave frames, concurrent
// readers each get whole messages, and a blocked Read never holds up a Write or
// Close. Close unblocks pending calls. A Conn starts no goroutines: it reads
// from the network only when the application asks for a message, which is what
// lets TCP flow control push back on a fast sender (see "Memory and flow
// control" below). Reader and Writer are not safe for concurrent use.
//
// A Config's Marshal and Unmarshal functions are called from many goroutines
// at once, and must be safe for concurrent use: Send encodes outside the
// Conn's locks, and a Server or Listener shares one Config among all its
// connections. A Dialer's methods, a Listener's, and a Server's Shutdown,
// Close and Stats may be called concurrently, the Server's while Serve runs.
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
// net.Error values with Timeout true that match os.ErrDeadlineExceeded (an
// error from the wrapped conn counts as a timeout if it matches
// os.ErrDeadlineExceeded or is a net.Error whose Timeout reports true). A
// read that times out mid-frame resumes where it stopped. A write that times
// out before any byte of its frame left reports 0 bytes: the message was not
// sent. One that times out after part of the frame left reports len(p) and an
// error matching ErrPending: the message is committed, and its rest goes out
// ahead of the next message or on Flush (Close does not send it). A message
// whose frame left whole is sent, even if an error came with its last byte:
// the call succeeds, and the error ends the write side for the next one. A
// receive that fails to unmarshal a valid payload (a type mismatch) consumes
// that message and leaves the stream in sync.
//
// ETIMEDOUT is no timeout here, though syscall.Errno reports Timeout true for
// it: a socket returns it once TCP keep-alive probes or TCP_USER_TIMEOUT
// found the peer gone, and it ends the side it was returned on, like any
// other I/O error (a Server counts it under IOErrors).
//
// After Close, every method returns an error matching net.ErrClosed.
//
// # Memory and flow control
//
// A [Conn] or [Reader] reads from its source only inside a call that asks
// for a message ([Conn.Read], [Conn.ReadMessage], [Conn.AppendMessage],
// [Conn.Receive] and the Reader's methods of the same names), and only when
// the bytes it already holds do not contain the whole next frame. No
// goroutine reads ahead. So a receiver that stops asking for messages stops
// reading: the kernel's receive buffer fills, the TCP window closes, and the
// sender's writes block or meet their deadline. That is the backpressure the
// wire protocol relies on, and what keeps a fast sender from filling a slow
// receiver's memory.
//
// What a Conn holds follows what the peer has sent, never what a frame
// header announces. A header over the cap ([Config.MaxFrameSize]) ends the
// stream before anything is sized by it, and below the cap a header sizes
// nothing either: the buffer grows only as bytes arrive.
//
//   - An idle Conn holds no read buffer, even while a goroutine is blocked
//     reading it. Once bytes arrive it takes one buffer from a pool shared by
//     all Conns, large enough for many small frames per read, and gives it
//     back as soon as every byte in it has been consumed.
//   - For a frame it has not finished, of which it holds k bytes, a Conn
//     over a TCP or Unix stream socket on a Unix system, which it reads
//     directly, holds less than 2k bytes of buffer while it waits (and a few
//     bytes at least). Over any other source (a TLS conn, a pipe, a type that
//     wraps a socket, any socket on Windows), whose Read blocks holding the
//     buffer it was given, it holds less than 2k bytes or its first buffer's
//     size, whichever is more, plus a small pad that a read between frames
//     lands in. crypto/tls keeps its own record buffer on top.
//   - [Conn.AppendMessage] reads a large frame straight into the caller's
//     buffer when its spare capacity holds the whole payload, and otherwise
//     through the Conn's buffer: it never grows the caller's buffer ahead of
//     the bytes.
//
// A Conn holds no buffer for writing between messages, with one exception:
// after a write deadline cut a frame part-way, it keeps the unsent rest (at
// most MaxFrameSize plus the header) until the next write or [Conn.Flush]
// sends it. A write to a destination that is not a stream socket copies the
// frame into a pooled buffer for the call (the same bound; never at once
// with a pending rest). Writers queued behind the one sending hold only
// their own messages, which are not copied; [Conn.WriteBatch] holds a header
// and two slice headers per message for the duration of the call. A
// [Server] bounds how long any of this lasts with IdleTimeout, FrameTimeout
// and WriteTimeout.
//
// The repository's docs/design.md and docs/operations.md give the sizes on
// today's implementation, which may change: the pooled buffers, the pad,
// and what a Server holds per hostile peer, measured.
package jsonconn

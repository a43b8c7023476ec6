'use strict';
// An echo server built on the npm package frame-stream, a third-party
// implementation of 4-byte length-prefixed framing, for `jsonconn check`
// (docs/interop.md). It is frame-stream's own documented composition, a
// decoder piped into an encoder, with nothing of jsonconn's: what check
// finds measures frame-stream, not this glue.
//
// Usage: node echo.js HOST PORT   (PORT 0: any free port)
// It prints "listening on HOST:PORT". FRAME_STREAM_MAX_SIZE, if set, is
// passed as the decoder's maxSize option; frame-stream's default is 0, no
// limit at all.

const net = require('node:net');
const frame = require('frame-stream');

const maxSize = Number(process.env.FRAME_STREAM_MAX_SIZE || 0);
const [host, port] = process.argv.slice(2);

// allowHalfOpen: the peer's end of stream ends the decoder, which ends the
// encoder, which ends the socket once every echo has gone.
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  const decoder = frame.decode({ maxSize });
  decoder.on('error', () => socket.destroy()); // over maxSize
  socket.on('error', () => {});
  socket.pipe(decoder).pipe(frame.encode()).pipe(socket);
});
server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port}`);
});

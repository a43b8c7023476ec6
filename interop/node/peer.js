'use strict';
// A jsonconn protocol peer in plain Node.js (node:net, no packages), for the
// Go interop tests and as a reference for Node users: each frame is a 4-byte
// big-endian length and one JSON value (docs/protocol.md).
//
// Usage:
//   node peer.js HOST PORT            connect to HOST:PORT
//   node peer.js --listen HOST PORT   listen on HOST:PORT (PORT 0: any free
//                                     port), print "listening on HOST:PORT"
// Either way it answers every message with its own re-encoding of it, on
// every connection. Two commands let a test see it send a broken frame:
//   {"cmd":"oversize"}  sends a header one byte over the cap;
//   {"cmd":"invalid"}   sends a frame that is not JSON.
// It closes the connection on a header over the cap or a payload that is
// not JSON, as the protocol requires. It stops reading while the socket's
// write buffer is full, so that a peer that does not read its answers is
// pushed back (protocol.md §6) rather than buffered without bound.

const net = require('node:net');

const MAX_FRAME = Number(process.env.JSONCONN_MAX_FRAME || 262144);

function header(n) {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n);
  return h;
}

function frame(body) {
  return Buffer.concat([header(body.length), body]);
}

// serve answers the messages of one connection.
function serve(sock) {
  // Each answer goes out at once, as Go's sockets do by default, rather than
  // waiting for the peer's acknowledgement of the last (Nagle's algorithm).
  sock.setNoDelay(true);
  let pending = Buffer.alloc(0);
  let paused = false;
  const send = (buf) => {
    if (!sock.write(buf) && !paused) {
      paused = true; // backpressure: read no more until the answers have gone
      sock.pause();
      sock.once('drain', () => {
        paused = false;
        sock.resume();
      });
    }
  };
  sock.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const n = pending.readUInt32BE(0);
      if (n > MAX_FRAME) {
        sock.destroy(); // hostile or broken peer: terminate before reading the body
        return;
      }
      if (pending.length < 4 + n) {
        break;
      }
      const body = pending.subarray(4, 4 + n);
      pending = pending.subarray(4 + n);
      let value;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch (e) {
        sock.destroy(); // not JSON: terminate
        return;
      }
      if (value !== null && typeof value === 'object' && value.cmd === 'oversize') {
        send(header(MAX_FRAME + 1));
      } else if (value !== null && typeof value === 'object' && value.cmd === 'invalid') {
        send(frame(Buffer.from('{"broken":', 'utf8')));
      } else {
        let text;
        try {
          text = JSON.stringify(value);
        } catch (e) {
          // JSON.parse takes nesting that JSON.stringify overflows its stack
          // on: this peer cannot answer, so it closes, as the Python peer
          // does. Uncaught, the exception would end every connection.
          console.error(`peer.js: cannot re-encode a message: ${e.message}`);
          sock.destroy();
          return;
        }
        send(frame(Buffer.from(text, 'utf8')));
      }
    }
  });
  sock.on('error', () => {});
}

const args = process.argv.slice(2);
if (args[0] === '--listen') {
  const [host, port] = args.slice(1);
  const server = net.createServer(serve);
  server.listen(Number(port), host, () => {
    const a = server.address();
    console.log(`listening on ${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
  });
} else {
  const [host, port] = args;
  const sock = net.connect({ host, port: Number(port) });
  serve(sock);
  sock.on('close', () => process.exit(0));
}

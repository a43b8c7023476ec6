'use strict';
// A jsonconn protocol peer in plain Node.js (node:net, no packages), for the
// Go interop tests and as a reference for Node users: each frame is a 4-byte
// big-endian length and one JSON value (docs/protocol.md).
//
// Usage: node peer.js HOST PORT
// It connects, then answers every message with its own re-encoding of it.
// Two commands let a test see it send a broken frame:
//   {"cmd":"oversize"}  sends a header one byte over the cap;
//   {"cmd":"invalid"}   sends a frame that is not JSON.
// It closes the connection on a header over the cap or a payload that is
// not JSON, as the protocol requires.

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

const [host, port] = process.argv.slice(2);
const sock = net.connect({ host, port: Number(port) });
let pending = Buffer.alloc(0);

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
      sock.write(header(MAX_FRAME + 1));
    } else if (value !== null && typeof value === 'object' && value.cmd === 'invalid') {
      sock.write(frame(Buffer.from('{"broken":', 'utf8')));
    } else {
      sock.write(frame(Buffer.from(JSON.stringify(value), 'utf8')));
    }
  }
});

sock.on('error', () => {});
sock.on('close', () => process.exit(0));

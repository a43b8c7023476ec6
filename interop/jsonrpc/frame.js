'use strict';
// The jsonconn framing for json-rpc-2.0: each message is a 4-byte big-endian
// length and one JSON value (docs/protocol.md). framed(sock, onMessage)
// calls onMessage with each value that arrives on sock and returns a send
// function for values to go out; a header over the cap, or a payload that is
// not JSON, ends the connection, as the protocol requires.

const MAX_FRAME = 262144;

function framed(sock, onMessage) {
  sock.setNoDelay(true); // each message at once, not after the peer's ACK (Nagle)
  let pending = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 4) {
      const n = pending.readUInt32BE(0);
      if (n > MAX_FRAME) {
        sock.destroy();
        return;
      }
      if (pending.length < 4 + n) {
        return;
      }
      const body = pending.subarray(4, 4 + n);
      pending = pending.subarray(4 + n);
      let value;
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch (e) {
        sock.destroy();
        return;
      }
      onMessage(value);
    }
  });
  return (value) => {
    const body = Buffer.from(JSON.stringify(value), 'utf8');
    if (body.length > MAX_FRAME) {
      throw new Error(`message of ${body.length} bytes is over the ${MAX_FRAME}-byte cap`);
    }
    const h = Buffer.alloc(4);
    h.writeUInt32BE(body.length);
    sock.write(Buffer.concat([h, body]));
  };
}

module.exports = { framed, MAX_FRAME };

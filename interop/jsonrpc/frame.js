'use strict';
// The jsonconn framing for json-rpc-2.0: each message is a 4-byte big-endian
// length and one JSON value (docs/protocol.md). framed(sock, onMessage)
// calls onMessage with each value that arrives on sock and returns a send
// function for values to go out; a header over the cap, or a payload that is
// not JSON, ends the connection, as the protocol requires. send throws an
// error whose code is 'ERR_FRAME_CAP' for a value over the cap, and sends
// nothing; sendReply(send, response) sends a server's response so that every
// id asked is answered even then, as the Go adapters do.

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
      const err = new Error(`message of ${body.length} bytes is over the ${MAX_FRAME}-byte cap`);
      err.code = 'ERR_FRAME_CAP';
      throw err;
    }
    const h = Buffer.alloc(4);
    h.writeUInt32BE(body.length);
    sock.write(Buffer.concat([h, body]));
  };
}

// The error response that replaces a reply over the cap, as the Go adapters
// send it (jsonrpc.CodeFrameCap, jsonrpc.MessageFrameCap).
const CODE_FRAME_CAP = -32603;
const MESSAGE_FRAME_CAP = 'reply exceeds the frame cap';

// sendReply sends response, a JSON-RPC 2.0 response or an array of them,
// with send. A response over the cap is replaced by an error response for
// its id; an array over the cap goes out one response per frame, with those
// over the cap replaced. Peers match replies by id, not by frame. Other
// errors are thrown.
function sendReply(send, response) {
  try {
    send(response);
  } catch (e) {
    if (e.code !== 'ERR_FRAME_CAP') {
      throw e;
    }
    if (Array.isArray(response)) {
      for (const r of response) {
        sendReply(send, r);
      }
      return;
    }
    send({ jsonrpc: '2.0', id: response.id, error: { code: CODE_FRAME_CAP, message: MESSAGE_FRAME_CAP } });
  }
}

module.exports = { framed, sendReply, MAX_FRAME, CODE_FRAME_CAP, MESSAGE_FRAME_CAP };

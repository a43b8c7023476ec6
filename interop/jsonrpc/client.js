'use strict';
// A JSON-RPC 2.0 client with json-rpc-2.0 over jsonconn framing, for the Go
// server of the jsonrpc module's interop test.
//   node client.js HOST:PORT N   makes N calls of echo and add, ten at a
//                                time, with payloads up to a little under the
//                                cap; prints "ok N calls" and exits 0, or
//                                reports the first wrong answer and exits 1.

const net = require('node:net');
const { JSONRPCClient } = require('json-rpc-2.0');
const { framed, MAX_FRAME } = require('./frame');

const [hostport, count] = process.argv.slice(2);
const i = hostport.lastIndexOf(':');
const sock = net.connect(Number(hostport.slice(i + 1)), hostport.slice(0, i));
let send;
const client = new JSONRPCClient((request) => send(request));
send = framed(sock, (response) => client.receive(response));

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

async function main() {
  const n = Number(count);
  // The envelope adds bytes to each payload: stay a little under the cap.
  const largest = MAX_FRAME - 200;
  for (let done = 0; done < n; done += 10) {
    const calls = [];
    for (let k = done; k < Math.min(n, done + 10); k++) {
      if (k % 2 === 0) {
        const size = k % 100 === 0 ? largest : (k * 997) % 4096;
        const text = 'x'.repeat(size);
        calls.push(client.request('echo', [text]).then((got) => {
          if (got !== text) fail(`echo ${k}: got ${String(got).length} bytes, want ${size}`);
        }));
      } else {
        calls.push(client.request('add', [k, 1]).then((got) => {
          if (got !== k + 1) fail(`add ${k}: got ${got}, want ${k + 1}`);
        }));
      }
    }
    await Promise.all(calls);
  }
  console.log(`ok ${n} calls`);
  sock.end();
}

sock.on('connect', () => main().catch((e) => fail(String(e))));
sock.on('error', (e) => fail(String(e)));

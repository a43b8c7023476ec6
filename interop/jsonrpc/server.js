'use strict';
// A JSON-RPC 2.0 server with json-rpc-2.0 over jsonconn framing, for the Go
// clients of the jsonrpc module's interop test.
//   node server.js   listens on 127.0.0.1, any free port; prints
//                    "listening on HOST:PORT"
// Methods: echo([x]) returns x; add([a, b]) returns a + b; fail() fails.
// (JSON-RPC 2.0 params are an array or an object, never a bare value.)

const net = require('node:net');
const { JSONRPCServer } = require('json-rpc-2.0');
const { framed } = require('./frame');

const rpc = new JSONRPCServer();
rpc.addMethod('echo', ([x]) => x);
rpc.addMethod('add', ([a, b]) => a + b);
rpc.addMethod('fail', () => {
  throw new Error('it failed, as asked');
});

const server = net.createServer((sock) => {
  const send = framed(sock, (request) => {
    rpc.receive(request).then((response) => {
      if (response) {
        send(response);
      }
    });
  });
  sock.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port}`);
});

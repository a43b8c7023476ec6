'use strict';
// A JSON-RPC 2.0 server with json-rpc-2.0 over jsonconn framing, for the Go
// clients of the jsonrpc module's interop test.
//   node server.js   listens on 127.0.0.1, any free port; prints
//                    "listening on HOST:PORT"
// Methods: echo([x]) returns x; add([a, b]) returns a + b; fail() fails;
// repeat([n]) returns a string of n "x", to make replies over the cap.
// (JSON-RPC 2.0 params are an array or an object, never a bare value.)

const net = require('node:net');
const { JSONRPCServer } = require('json-rpc-2.0');
const { framed, sendReply } = require('./frame');

const rpc = new JSONRPCServer();
rpc.addMethod('echo', ([x]) => x);
rpc.addMethod('add', ([a, b]) => a + b);
rpc.addMethod('repeat', ([n]) => 'x'.repeat(n));
rpc.addMethod('fail', () => {
  throw new Error('it failed, as asked');
});

const server = net.createServer((sock) => {
  const send = framed(sock, (request) => {
    // A reply over the cap is replaced by an error response (sendReply);
    // anything else that fails ends this connection, not the process.
    rpc.receive(request).then((response) => {
      if (response) {
        sendReply(send, response);
      }
    }).catch(() => sock.destroy());
  });
  sock.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port}`);
});

"""A jsonconn protocol peer in Python 3 (asyncio, standard library only), for
the Go interop tests and as a reference for Python users: each frame is a
4-byte big-endian length and one JSON value (docs/protocol.md).

Usage:
  python3 peer.py HOST PORT             connect to HOST:PORT
  python3 peer.py --listen HOST PORT    listen on HOST:PORT (PORT 0: any free
                                        port), print "listening on HOST:PORT"

Either way it answers every message with its own re-encoding of it, on every
connection, and waits for each answer to be taken (writer.drain()) before it
reads the next message, so that a peer that does not read is pushed back.
Two commands let a test see it send a broken frame:
  {"cmd":"oversize"}  sends a header one byte over the cap;
  {"cmd":"invalid"}   sends a frame that is not JSON.
It closes the connection on a header over the cap or a payload that is not
JSON, as the protocol requires.
"""

import asyncio
import json
import os
import struct
import sys

MAX_FRAME = int(os.environ.get("JSONCONN_MAX_FRAME", "262144"))


def reject_constant(name):
    # json.loads accepts NaN and Infinity, which are not JSON.
    raise ValueError(f"not JSON: {name}")


def encode(value):
    """Returns the frame of value. Raises ValueError for a number that was
    valid JSON but overflowed a float (1e400 became inf), which JSON cannot
    carry back."""
    try:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return frame(body.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" is valid JSON) has no UTF-8 form: keep
        # it escaped.
        body = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        return frame(body.encode("ascii"))


def frame(body):
    return struct.pack(">I", len(body)) + body


async def connect(host, port):
    reader, writer = await asyncio.open_connection(host, port)
    await serve(reader, writer)


async def listen(host, port):
    server = await asyncio.start_server(serve, host, port)
    addr = server.sockets[0].getsockname()
    print(f"listening on {addr[0]}:{addr[1]}", flush=True)
    async with server:
        await server.serve_forever()


async def serve(reader, writer):
    """Answers the messages of one connection until it ends."""
    try:
        while True:
            try:
                header = await reader.readexactly(4)
            except asyncio.IncompleteReadError:
                return  # end of stream
            (n,) = struct.unpack(">I", header)
            if n > MAX_FRAME:
                return  # hostile or broken peer: terminate before reading the body
            body = await reader.readexactly(n)
            try:
                # Invalid UTF-8 inside strings becomes U+FFFD, as in Go.
                text = body.decode("utf-8", errors="replace")
                value = json.loads(text, parse_constant=reject_constant)
            except (ValueError, RecursionError):
                return  # not JSON (or nested beyond Python's limit): terminate
            if isinstance(value, dict) and value.get("cmd") == "oversize":
                writer.write(struct.pack(">I", MAX_FRAME + 1))
            elif isinstance(value, dict) and value.get("cmd") == "invalid":
                writer.write(frame(b'{"broken":'))
            else:
                try:
                    writer.write(encode(value))
                except ValueError as e:
                    print(f"peer.py: cannot re-encode a message: {e}", file=sys.stderr)
                    return
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


if __name__ == "__main__":
    if sys.argv[1] == "--listen":
        asyncio.run(listen(sys.argv[2], int(sys.argv[3])))
    else:
        asyncio.run(connect(sys.argv[1], int(sys.argv[2])))

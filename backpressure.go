package jsonconn

import (
	"math/bits"
	"sync"
)

// This file holds the buffering policy of the package in one place: how much a
// Reader may hold, when it reads, and where its memory comes from and goes.
//
// Reading happens only on demand. A Reader calls Read on its source only from
// inside a caller's ReadMessage, AppendMessage, Receive or Read, and only when
// the bytes it already holds do not contain the whole next frame. No goroutine
// reads ahead. Each such Read fills at most the free part of a single buffer.
// Buffers come in size classes of a power of two plus headerLen, and a Reader
// moves to a larger one only to hold a frame that its header has announced
// and the cap allows, so it never holds more than
//
//	max(readBufferSize, MaxFrameSize rounded up to a power of two) + headerLen
//
// bytes for its peer, however fast the peer sends: 256 KiB + 4 with the
// default cap. A receiver that stops asking
// for messages stops reading; the kernel's receive buffer fills, the TCP window
// closes, and the sender's writes block (or meet their deadline). That is the
// backpressure the wire protocol relies on.
//
// An idle Reader holds no buffer, even while a caller is blocked waiting for
// a message: only once bytes have arrived is a buffer taken from a pool, and
// it goes back as soon as everything in it has been consumed. On a TCP or
// Unix stream socket (on Unix systems) the Reader waits for the socket to
// become readable and then reads into the pooled buffer (sockread_unix.go);
// from any other source the read lands in a 512-byte pad allocated with the
// Reader and is copied into the buffer. So thousands of idle connections cost
// only their structs. Several small frames that arrive together are served
// from one buffer filled by one Read call.
//
// A Writer holds no buffer either, except after a write deadline interrupted
// a frame part-way: then it keeps the unsent rest (at most MaxFrameSize +
// headerLen bytes, from the same pool) until the next write or Flush sends it.

const (
	// headerLen is the size of the big-endian length prefix of a frame.
	headerLen = 4

	// readBufferSize is the payload capacity of the buffer a Reader takes when
	// the next frame is no larger: small enough to be cheap, large enough that
	// one Read call brings in many small frames.
	readBufferSize = 16 << 10

	// padSize is the size of the buffer where a Reader that does not read a
	// socket directly lands a read while nothing is buffered. Such a Reader
	// blocked on a quiet peer holds only this; a pooled buffer is taken when
	// bytes arrive. It holds a typical small message whole, so that one read
	// system call suffices for it.
	padSize = 512

	// maxFrameLimit bounds Config.MaxFrameSize, so that a buffer for any frame
	// fits in an int on every platform.
	maxFrameLimit = 1 << 30

	// minBufShift and maxBufShift are the size classes of the smallest and
	// largest pooled buffers.
	minBufShift = 12
	maxBufShift = 30 // log2(maxFrameLimit)
)

// bufPools[k] holds buffers of length 1<<k + headerLen: room for a frame of
// up to 1<<k payload bytes with its header. Pools hold *[]byte so that Put
// does not allocate.
var bufPools [maxBufShift + 1]sync.Pool

// bufClass returns the size class of the smallest pooled buffer that holds n
// bytes.
func bufClass(n int) int {
	if n <= 1<<minBufShift+headerLen {
		return minBufShift
	}
	return bits.Len(uint(n - headerLen - 1))
}

// getBuf returns a buffer of at least n bytes, n <= maxFrameLimit+headerLen.
// Its contents are unspecified.
func getBuf(n int) *[]byte {
	k := bufClass(n)
	if b, ok := bufPools[k].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 1<<k+headerLen)
	return &b
}

// putBuf returns a buffer obtained from getBuf to its pool.
func putBuf(b *[]byte) {
	bufPools[bufClass(len(*b))].Put(b)
}

package jsonconn

import (
	"math/bits"
	"sync"
)

// The buffer pool. Readers take their buffers from it once bytes have
// arrived and give them back as soon as everything in them is consumed;
// Writers take one to copy a frame for a writer that cannot take a header
// and payload in one call, and one for the unsent rest of a frame cut by a
// timeout.
//
// Buffers come in size classes of a power of two plus headerLen, so that a
// frame of exactly a power-of-two cap (the default, 2^18) fits with its
// header in a buffer of its own class rather than the next one up.

const (
	// minBufShift and maxBufShift are the size classes of the smallest and
	// largest pooled buffers.
	minBufShift = 12
	maxBufShift = 30 // log2(MaxFrameSizeLimit)
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

// getBuf returns a buffer of at least n bytes, n <= MaxFrameSizeLimit +
// headerLen. Its contents are unspecified.
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

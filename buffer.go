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
// Buffers come in size classes of a payload capacity plus headerLen, so
// that a frame of exactly a power-of-two cap (the default, 2^18) fits with
// its header in a buffer of its own class rather than the next one up. The
// capacities are the powers of two from 16 bytes to 1 GiB and the halfway
// points between them (24, 48, 96, ...), so that a buffer sized to what a
// Reader holds, while it waits for the rest of a frame, is less than twice
// that even after the runtime rounds its allocation up (backpressure.go).

const (
	// minBufShift and maxBufShift are the powers of two of the smallest and
	// largest pooled payload capacities.
	minBufShift = 4
	maxBufShift = 30 // log2(MaxFrameSizeLimit)
)

// bufPools[c] holds buffers of length classLen(c). Pools hold *[]byte so
// that Put does not allocate. Class 2m has a payload capacity of 2^m, class
// 2m-1 one of 3 * 2^(m-2), halfway between 2^(m-1) and 2^m.
var bufPools [2*maxBufShift + 1]sync.Pool

// bufClass returns the class of the smallest pooled buffer that holds n
// bytes.
func bufClass(n int) int {
	p := n - headerLen // payload capacity needed
	if p <= 1<<minBufShift {
		return 2 * minBufShift
	}
	m := bits.Len(uint(p - 1)) // 2^(m-1) < p <= 2^m
	if p <= 3<<(m-2) {
		return 2*m - 1
	}
	return 2 * m
}

// classLen returns the length of the buffers of class c.
func classLen(c int) int {
	if c%2 == 1 {
		return 3<<((c+1)/2-2) + headerLen
	}
	return 1<<(c/2) + headerLen
}

// classSize returns the length of the smallest pooled buffer that holds n
// bytes: 20 for n up to 20, and otherwise less than 1.5 times n.
func classSize(n int) int {
	return classLen(bufClass(n))
}

// getBuf returns a buffer of at least n bytes, n <= MaxFrameSizeLimit +
// headerLen. Its contents are unspecified.
func getBuf(n int) *[]byte {
	c := bufClass(n)
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, classLen(c))
	return &b
}

// putBuf returns a buffer obtained from getBuf to its pool.
func putBuf(b *[]byte) {
	bufPools[bufClass(len(*b))].Put(b)
}

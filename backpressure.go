package jsonconn

// The read-on-demand and memory policy. The package documentation states
// the contract ("Memory and flow control"); this file holds the numbers and
// the rules that keep it.
//
// A Reader reads from its source only inside a caller's read, and only when
// what it holds does not contain the whole next frame: no goroutine reads
// ahead, so a receiver that stops asking for messages stops reading, its
// kernel buffer fills, the TCP window closes and the sender blocks.
//
// Memory follows what the peer has sent, never what a header announces. A
// Reader that holds no bytes holds no buffer. Once bytes arrive it holds
// one buffer from the pool (buffer.go), which moves to a larger size class
// only when it is full of the frame being read, and then by one class at a
// time (doubling), up to the frame's own class. How much it holds while it
// waits for the rest of a frame depends on whether it can tell that a read
// would block:
//
//   - A stream socket on a Unix system is read directly (sockSource), and
//     the Reader learns that nothing has arrived before its goroutine
//     parks. It then keeps the k bytes it holds of the frame in the
//     smallest size class that fits them (sockPark), so a parked Reader
//     holds less than 2k bytes of buffer, or 20 for k <= 20. A read at a
//     full buffer borrows a buffer of the frame's class (at least
//     firstBufSize) for that one read attempt (sockSpace), so that a frame
//     that has all arrived is read in one system call and one copy, as it
//     would be into a buffer of its size; the borrowed buffer is given back
//     if nothing arrived, and the next park shrinks it to what arrived.
//
//   - Any other source (a TLS conn, a pipe, a type that wraps a socket, any
//     socket on Windows) blocks in Read holding the space it was given. A
//     frame's first bytes land in a pad of padSize bytes, then in a buffer
//     of firstBufSize, which doubles when full (makeRoom). While it waits
//     for the rest of a frame of which it holds k bytes, such a Reader
//     holds at most max(firstBufSize, 2k) bytes of buffer and the pad.
//
// So the most a Reader holds for a peer that has sent k bytes of a frame it
// has not finished is
//
//	stream socket (Unix):  max(20, 2k) bytes, while parked
//	any other source:      max(firstBufSize, 2k) + padSize bytes
//
// with k at most MaxFrameSize + headerLen. AppendMessage reads a large
// frame straight into the caller's spare capacity only when that capacity
// already holds the whole payload; it never grows the caller's buffer ahead
// of the bytes.
//
// The write side holds no buffer of its own between messages. A peer that
// never reads leaves a Conn holding, at most, the unsent rest of one frame
// that a write deadline cut (MaxFrameSize + headerLen, until the next write
// or Flush sends it) or, during a blocked write to a destination that is not
// a stream socket, the copy of the frame being written (the same bound; the
// two are never held at once), plus Send's encoded message while it is
// being sent. Writers queued behind the one sending each hold their own
// message, which is never copied, and a pooled 64-byte request; WriteBatch
// holds 4 bytes of header and two slice headers per message for the
// duration of the call. The messages themselves are the callers' memory.

const (
	// readBufferSize is the payload capacity of the first buffer a Reader
	// takes when bytes arrive: small enough to be cheap, large enough that
	// one read brings in many small frames.
	readBufferSize = 16 << 10

	// firstBufSize is the length of that buffer.
	firstBufSize = readBufferSize + headerLen

	// padSize is the size of the pad where a Reader that does not read a
	// socket directly lands a read while nothing is buffered. It holds a
	// typical small message whole, so that one read system call suffices for
	// it.
	padSize = 512
)

// makeRoom makes free space at the end of the buffer for the next read of a
// frame that needs need bytes from r.r, from a source whose Read blocks
// holding the space it is given. A buffer larger than the bound for what it
// holds (a large frame's, with the start of the next frame in it) gives its
// bytes to a smaller one; what is buffered moves to the front if that frees
// space; a buffer full of the frame moves to the next size class, but no
// larger than the frame's own. So a Reader blocked in Read holds at most
// max(firstBufSize, 2k) bytes for the k bytes it has.
func (r *Reader) makeRoom(need int) {
	buf := *r.bufp
	held := r.w - r.r
	switch {
	case holdsTooMuch(len(buf), held):
		nb := getBuf(max(firstBufSize, held+1))
		copy(*nb, buf[r.r:r.w])
		putBuf(r.bufp)
		r.bufp, r.r, r.w = nb, 0, held
		return
	case r.w < len(buf):
		return
	case r.r > 0:
		r.w = copy(buf, buf[r.r:r.w])
		r.r = 0
		return
	}
	nb := getBuf(min(2*len(buf)-headerLen, classSize(need)))
	copy(*nb, buf[:r.w])
	putBuf(r.bufp)
	r.bufp = nb
}

// holdsTooMuch reports whether a buffer of size bytes is larger than the
// bound for held bytes of a frame, max(firstBufSize, 2*held). held may be up
// to MaxFrameSizeLimit + headerLen, so 2*held would overflow a 32-bit int
// (2^31 is negative there) and make every read copy a 1 GiB buffer; the
// comparison is made without it.
func holdsTooMuch(size, held int) bool {
	return size > firstBufSize && size-held > held
}

// sockSpace returns the space for the next read attempt of a stream socket,
// for a frame that needs need bytes from r.r: the free space at the end of
// the buffer, after making some. A Reader that holds nothing takes its
// first buffer. One whose buffer is full of the frame borrows a larger one,
// of the frame's size class (at least firstBufSize), and copies what it
// holds into it; sockTook or sockPark settles the borrowing, which is
// returned in prev, by the end of the attempt.
func (r *Reader) sockSpace(need int) (p []byte, prev *[]byte) {
	switch {
	case r.bufp == nil:
		r.bufp = getBuf(firstBufSize)
	case r.w < len(*r.bufp):
	case r.r > 0:
		buf := *r.bufp
		r.w = copy(buf, buf[r.r:r.w])
		r.r = 0
	default:
		prev = r.bufp
		r.bufp = getBuf(max(firstBufSize, need))
		copy(*r.bufp, (*prev)[:r.w])
	}
	return (*r.bufp)[r.w:], prev
}

// sockTook settles a read attempt that returned n bytes (n may be 0, for
// the end of the stream or an error): a borrowed buffer is kept if bytes
// arrived, the one before it otherwise.
func (r *Reader) sockTook(n int, prev *[]byte) {
	r.w += n
	if prev == nil {
		return
	}
	if n > 0 {
		putBuf(prev)
		return
	}
	putBuf(r.bufp)
	r.bufp = prev
}

// sockPark settles a read attempt that found nothing, before the goroutine
// parks until the socket is readable: a borrowed buffer goes back, and what
// the Reader holds moves to the smallest size class that fits it, or, if it
// holds nothing, the buffer goes back to the pool.
func (r *Reader) sockPark(prev *[]byte) {
	if prev != nil {
		putBuf(r.bufp)
		r.bufp = prev
	}
	held := r.w - r.r
	switch {
	case held == 0:
		putBuf(r.bufp)
		r.bufp, r.r, r.w = nil, 0, 0
	case classSize(held) < len(*r.bufp):
		nb := getBuf(held)
		copy(*nb, (*r.bufp)[r.r:r.w])
		putBuf(r.bufp)
		r.bufp, r.r, r.w = nb, 0, held
	}
}

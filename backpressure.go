package jsonconn

// The read-on-demand and memory policy. The package documentation states
// the contract ("Memory and flow control"); this file holds the numbers and
// the rules that keep it.
//
// A Reader reads from its source only inside a caller's read, and only when
// what it holds does not contain the whole next frame: no goroutine reads
// ahead, so a receiver that stops asking for messages stops reading, its
// kernel buffer fills, the TCP window closes and the sender blocks. Each
// read fills at most the free part of the one buffer the Reader holds.
//
// A Reader holds no buffer while it holds no bytes: it takes one from the
// pool (buffer.go) when bytes arrive and gives it back once every byte in it
// has been consumed. A stream socket on a Unix system is read straight into
// the pooled buffer once it is readable (sockSource); any other source is
// read into a pad of padSize bytes first, allocated with the Reader, since
// its Read blocks while holding the buffer it was given.
//
// The buffer starts at readBufferSize and moves to a larger size class only
// to hold a frame whose header the cap check has passed.

const (
	// readBufferSize is the payload capacity of the buffer a Reader takes when
	// the next frame is no larger: small enough to be cheap, large enough that
	// one Read call brings in many small frames.
	readBufferSize = 16 << 10

	// padSize is the size of the pad where a Reader that does not read a
	// socket directly lands a read while nothing is buffered. It holds a
	// typical small message whole, so that one read system call suffices for
	// it.
	padSize = 512
)

// firstBufSize is the size of the buffer a Reader that holds nothing takes
// once bytes arrive, for a read that needs need bytes in all.
func firstBufSize(need int) int {
	return max(need, readBufferSize+headerLen)
}

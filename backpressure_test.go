package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// TestBackpressure checks that a receiver that stops reading stops its
// sender through the transport's flow control, holding nothing itself, and
// that every committed message still arrives once it reads again.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		if tr.name == "pipe" || tr.name == "tls" {
			continue // net.Pipe has no buffer at all; TLS adds nothing to TCP here
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			a, b := connPair(t, tr, nil)
			pad := strings.Repeat("b", 1000)
			const limit = 256 << 20 // a sender that gets this far was never stopped
			var sent, committed int
			var err error
			for sent < limit {
				// A fresh deadline for each message: only a full window
				// makes a Send wait this long.
				a.SetWriteDeadline(time.Now().Add(time.Second))
				m := seqMsg{committed, pad}
				if err = a.Send(m); err != nil {
					break
				}
				committed++
				sent += 4 + len(`{"seq":,"pad":""}`) + len(fmt.Sprint(m.Seq)) + len(pad)
			}
			checkTimeout(t, err)
			if errors.Is(err, jsonconn.ErrPending) {
				committed++
			}
			held := b.Held()
			t.Logf("%s: the sender got %d bytes (%d messages) out before blocking; the idle receiver held %d bytes", tr.name, sent, committed, held)
			if sent >= 64<<20 {
				t.Errorf("the sender got %d bytes out with nobody reading: flow control did not stop it", sent)
			}
			if held != 0 {
				t.Errorf("a receiver that was never asked for a message holds %d bytes, want 0", held)
			}

			// Reading one message takes one read buffer, no more.
			b.SetReadDeadline(time.Now().Add(hangTimeout))
			var m seqMsg
			if err := b.Receive(&m); err != nil || m.Seq != 0 {
				t.Fatalf("Receive = %d, %v", m.Seq, err)
			}
			if held := b.Held(); held > jsonconn.ReadBufferSize+4 {
				t.Errorf("after one small message the receiver holds %d bytes, want at most %d", held, jsonconn.ReadBufferSize+4)
			}
			finishSeq(t, a, b, 1, committed, pad)
			if held := b.Held(); held != 0 {
				t.Errorf("a drained receiver holds %d bytes, want 0", held)
			}
		})
	}
}

// TestIdleConnMemory measures the heap that an idle Conn holds beyond its
// wrapped conn, after it has carried traffic both ways, and while a
// goroutine is blocked reading it: the usual state of a server's conn.
func TestIdleConnMemory(t *testing.T) {
	// Not parallel: it reads the process-wide heap.
	const pairs = 100
	raw := make([][2]net.Conn, pairs)
	for i := range raw {
		a, b := tcpPair(t)
		raw[i] = [2]net.Conn{a, b}
		t.Cleanup(func() { a.Close(); b.Close() })
	}
	reads := make(chan struct{}, pairs)
	var clients, servers []*jsonconn.Conn
	before := liveHeap()
	for _, r := range raw {
		a := jsonconn.New(r[0], nil)
		b := jsonconn.New(&signalConn{Conn: r[1], reads: reads, writes: make(chan struct{})}, nil)
		clients, servers = append(clients, a), append(servers, b)
		// Traffic both ways, so that every buffer has been taken and
		// given back.
		var got record
		if err := a.Send(records[0]); err != nil {
			t.Fatal(err)
		}
		if err := b.Receive(&got); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(records[0]); err != nil {
			t.Fatal(err)
		}
		if err := a.Receive(&got); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range append(clients, servers...) {
		if held := c.Held(); held != 0 {
			t.Fatalf("an idle Conn holds a %d-byte buffer, want none", held)
		}
	}
	idle := (liveHeap() - before) / (2 * pairs)

	// Now block a reader on each server Conn.
	for len(reads) > 0 {
		<-reads
	}
	done := make(chan error, pairs)
	for _, b := range servers {
		go func() { done <- b.Receive(new(any)) }()
	}
	for i := 0; i < pairs; i++ {
		<-reads
	}
	waiting := (liveHeap() - before - idle*pairs) / pairs
	t.Logf("an idle Conn holds %d bytes of heap beyond its wrapped conn; one with a reader blocked on it, %d", idle, waiting)
	if idle > 8<<10 || waiting > 8<<10 {
		t.Errorf("idle Conns hold %d and %d bytes, want under 8 KiB", idle, waiting)
	}
	closeAndAwaitEOF(t, clients, done)
	runtime.KeepAlive(servers)
}

// closeAndAwaitEOF closes clients and checks that each of the Receives
// blocked on their peers, which report to done, ends with io.EOF.
func closeAndAwaitEOF(t *testing.T, clients []*jsonconn.Conn, done <-chan error) {
	t.Helper()
	for _, a := range clients {
		a.Close()
	}
	for range clients {
		if err := <-done; err != io.EOF {
			t.Fatalf("blocked Receive ended with %v, want io.EOF", err)
		}
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
// Two cycles also empty the sync.Pools.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// stallSource serves its bytes in reads of at most chunk bytes, then times
// out on every read, as a conn whose peer stopped sending does at its
// deadline.
type stallSource struct {
	data  []byte
	chunk int
}

func (s *stallSource) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestReaderHoldsWhatArrived checks the memory policy for a source that
// blocks in Read (anything but a stream socket on a Unix system): a Reader
// that has k bytes of a frame announcing 256 KiB holds at most
// max(firstBufSize, 2k), however much the header announced, and
// AppendMessage never grows the caller's buffer ahead of the bytes.
func TestReaderHoldsWhatArrived(t *testing.T) {
	t.Parallel()
	const first = jsonconn.ReadBufferSize + 4
	announced := binary.BigEndian.AppendUint32(nil, jsonconn.DefaultMaxFrameSize)
	for _, k := range []int{0, 1, 1000, 16 << 10, 16<<10 + 1, 40 << 10, 100 << 10, 200 << 10, 256<<10 - 1} {
		for _, read := range []string{"ReadMessage", "AppendMessage", "AppendMessage into room"} {
			stream := append(append([]byte(nil), announced...), bytes.Repeat([]byte(" "), k)...)
			r := jsonconn.NewReader(&stallSource{data: stream, chunk: 4096}, nil)
			var dst []byte
			if read == "AppendMessage into room" {
				dst = make([]byte, 0, jsonconn.DefaultMaxFrameSize)
			}
			var err error
			if read == "ReadMessage" {
				_, err = r.ReadMessage()
			} else {
				var got []byte
				got, err = r.AppendMessage(dst)
				if cap(got) != cap(dst) {
					t.Errorf("k=%d, %s: the caller's buffer grew from %d to %d bytes ahead of the payload", k, read, cap(dst), cap(got))
				}
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("k=%d, %s: got %v, want the source's timeout", k, read, err)
			}
			held, limit := r.Held(), max(first, 2*(4+k))
			if held > limit {
				t.Errorf("k=%d, %s: the Reader holds %d bytes for %d received, want at most %d", k, read, held, 4+k, limit)
			}
		}
	}
}

// TestReaderShedsALargeBufferBeforeBlocking: after a large frame whose read
// brought in the start of the next one, a Reader over a source that blocks
// in Read keeps the next frame's few bytes within the bound, not in the
// large frame's buffer.
func TestReaderShedsALargeBufferBeforeBlocking(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("b", 200<<10) + `"`
	stream := append(frame(big), frame(`{"next":"frame"}`)[:11]...)
	r := jsonconn.NewReader(&stallSource{data: stream, chunk: 64 << 10}, nil)
	if m, err := r.ReadMessage(); err != nil || len(m) != len(big) {
		t.Fatalf("first message: %d bytes, %v", len(m), err)
	}
	if _, err := r.ReadMessage(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second message: %v, want the source's timeout", err)
	}
	if held, limit := r.Held(), jsonconn.ReadBufferSize+4; held > limit {
		t.Errorf("blocked on 11 bytes of the next frame, the Reader holds %d bytes, want at most %d", held, limit)
	}
}

// TestHoldsTooMuchAtTheLimit checks the rule that sheds a buffer larger than
// max(firstBufSize, 2*held) for held bytes, at the sizes near
// MaxFrameSizeLimit where 2*held overflows a 32-bit int. There the old
// formula found every buffer too large, and a Reader fed by a source other
// than a socket copied its 1 GiB buffer on every read. (The overflow shows
// only where int has 32 bits: CI runs this test on 386 where the host can.)
func TestHoldsTooMuchAtTheLimit(t *testing.T) {
	t.Parallel()
	const first = jsonconn.ReadBufferSize + 4
	const limit = jsonconn.MaxFrameSizeLimit + 4
	sizes := []int{first, 2 * first, 1 << 29, 3<<28 + 4, limit}
	helds := []int{0, 1, first / 2, first, 1<<29 - 1, 1 << 29, 1<<29 + 3, 3 << 28, 1<<30 - 1, 1 << 30, limit}
	for _, size := range sizes {
		for _, held := range helds {
			if held > size {
				continue
			}
			want := int64(size) > max(int64(first), 2*int64(held))
			if got := jsonconn.HoldsTooMuch(size, held); got != want {
				t.Errorf("a %d-byte buffer holding %d bytes: too much %t, want %t", size, held, got, want)
			}
		}
	}
}

package jsonconn_test

import (
	"errors"
	"fmt"
	"net"
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
// wrapped conn, after it has carried traffic both ways.
func TestIdleConnMemory(t *testing.T) {
	// Not parallel: it reads the process-wide heap.
	const pairs = 100
	raw := make([][2]net.Conn, pairs)
	for i := range raw {
		a, b := tcpPair(t)
		raw[i] = [2]net.Conn{a, b}
		t.Cleanup(func() { a.Close(); b.Close() })
	}
	conns := make([]*jsonconn.Conn, 0, 2*pairs)
	before := liveHeap()
	for _, r := range raw {
		a, b := jsonconn.New(r[0], nil), jsonconn.New(r[1], nil)
		conns = append(conns, a, b)
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
	perConn := (liveHeap() - before) / int64(len(conns))
	runtime.KeepAlive(conns)
	t.Logf("an idle Conn holds %d bytes of heap beyond its wrapped conn", perConn)
	if perConn > 8<<10 {
		t.Errorf("an idle Conn holds %d bytes, want under 8 KiB", perConn)
	}
	for _, c := range conns {
		if held := c.Held(); held != 0 {
			t.Fatalf("an idle Conn holds a %d-byte buffer, want none", held)
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

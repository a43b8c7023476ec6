//go:build unix

package jsonconn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// TestServerHeapPerHostilePeer measures how much heap a Server holds for
// each of many hostile peers, with the peers in another process: the
// targets of "memory follows bytes received" on the read side, and the
// rest of a frame that a write deadline cut on the write side. The heap is
// HeapInuse after two collections, so that sync.Pool's caches are empty;
// goroutine stacks are not in it. The first case also pays for the
// runtime's own growth (the descriptors of 2,000 new goroutines, about 1.1
// KiB per connection here), which the later cases reuse.
func TestServerHeapPerHostilePeer(t *testing.T) {
	// Not parallel: it measures the process's heap.
	many := 2000
	if raceEnabled || testing.Short() {
		many = 200
	}
	readOnce := jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		var buf []byte
		c.AppendMessage(buf)
	})
	pushMsg := strings.Repeat("p", 64<<10-2) // a 64 KiB payload as a JSON string
	push := jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for c.Send(pushMsg) == nil {
		}
		<-ctx.Done() // keep the Conn, and the rest of the frame the deadline cut
	})
	for _, tc := range []struct {
		mode    string
		n       int
		handler jsonconn.Handler
		sent    int                             // bytes each peer sent, for the log
		ready   func(jsonconn.ServerStats) bool // the state to measure, beyond all n served
		limit   int64                           // heap per peer, at most
	}{
		// At most 4 KiB per connection, goroutine stacks apart, for a
		// header announcing 256 KiB with nothing or one byte after it.
		{"header", many, readOnce, 4, nil, 4 << 10},
		{"byte", many, readOnce, 5, nil, 4 << 10},
		// A peer that drips a frame a byte every 100 ms holds about what it
		// has sent so far.
		{"drip", 200, readOnce, 0, nil, 4 << 10},
		// At most 2.25 times what a peer sent, for half a frame.
		{"half", 40, readOnce, 4 + hostileCap/2, nil, 9 * (4 + hostileCap/2) / 4},
		// Peers cut off at once leave nothing behind.
		{"oversize", 200, readOnce, 4, func(s jsonconn.ServerStats) bool { return s.FramesTooLarge == 200 }, 1 << 10},
		{"invalid", 200, readOnce, 9, func(s jsonconn.ServerStats) bool { return s.InvalidJSON == 200 }, 1 << 10},
		// A peer that never reads, pushed 64 KiB messages until a write
		// deadline cut one: the Conn keeps the rest of that frame (at most
		// the frame, 64 KiB + 4 in a buffer that the runtime rounds up to
		// 72 KiB) and the connection.
		{"idle", 200, push, 0, func(s jsonconn.ServerStats) bool { return s.WriteTimeouts == 200 }, 72<<10 + 4<<10},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			srv := &jsonconn.Server{
				Config:       &jsonconn.Config{MaxFrameSize: hostileCap},
				Handler:      tc.handler,
				WriteTimeout: 200 * time.Millisecond,
				Logger:       quietLogger(new(syncBuffer)),
			}
			addr, done := serveSmallBuffers(t, srv)
			before := heapInuse()
			p := startHostilePeers(t, tc.mode, tc.n, addr)
			waitUntil(t, fmt.Sprintf("the %s peers in the state to measure", tc.mode), func() bool {
				st := srv.Stats()
				if tc.ready != nil {
					return st.Accepted == int64(tc.n) && tc.ready(st)
				}
				return st.Open == tc.n && parkedSocketReads() >= tc.n
			})
			perPeer := (heapInuse() - before) / int64(tc.n)
			t.Logf("%s: %d peers: %d bytes of heap per connection (limit %d)", tc.mode, tc.n, perPeer, tc.limit)
			if perPeer > tc.limit {
				t.Errorf("%s: %d bytes of heap per connection, want at most %d", tc.mode, perPeer, tc.limit)
			}
			p.stop()
			done()
		})
	}
}

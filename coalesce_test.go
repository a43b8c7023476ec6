package jsonconn_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// waitUntil polls cond until it holds, failing the test if it never does.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

// queueWriters has a writer send lead over c, whose peer is rawPeer, and
// waits until the first byte of its frame reaches the peer: the writer is
// then sending, with the queue taken. It then queues one writer for each of
// msgs, in order, and returns that first byte and the writers' results,
// which arrive once the peer reads on.
func queueWriters(t *testing.T, c *jsonconn.Conn, rawPeer net.Conn, lead string, msgs []string) ([]byte, []<-chan writeResult) {
	t.Helper()
	results := []<-chan writeResult{goWrite(c, lead)}
	first := make([]byte, 1)
	if _, err := io.ReadFull(rawPeer, first); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		results = append(results, goWrite(c, m))
		waitUntil(t, fmt.Sprintf("%d writers queue", i+1), func() bool { return c.Queued() == i+1 })
	}
	return first, results
}

type writeResult struct {
	n   int
	err error
}

func goWrite(c *jsonconn.Conn, m string) <-chan writeResult {
	ch := make(chan writeResult, 1)
	go func() {
		n, err := c.Write([]byte(m))
		ch <- writeResult{n, err}
	}()
	return ch
}

func awaitWrite(t *testing.T, ch <-chan writeResult) writeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("a write never returned")
		return writeResult{}
	}
}

// TestConnCoalescesQueuedWriters checks that writers queued behind a
// sender go out together, in one batch, and each gets its own result.
func TestConnCoalescesQueuedWriters(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	var mu sync.Mutex
	var batches []int
	c.OnBatch(func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() })

	msgs := []string{`1`, `"two"`, `[3]`, `{"four":4}`, `5.5`, `"six"`, `null`}
	first, results := queueWriters(t, c, rawPeer, `"lead"`, msgs)
	r := jsonconn.NewReader(io.MultiReader(bytesReader(first), rawPeer), nil)
	for _, want := range append([]string{`"lead"`}, msgs...) {
		m, err := r.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("peer got %q, %v; want %q, in the order the writers queued", m, err, want)
		}
	}
	for i, ch := range results {
		if res := awaitWrite(t, ch); res.err != nil || res.n == 0 {
			t.Errorf("writer %d: Write = %d, %v; want its length and no error", i, res.n, res.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(batches, []int{1, 7}) {
		t.Errorf("batches sent = %v, want [1 7]: the lead message alone, then the 7 queued behind it together", batches)
	}
}

// TestConnCoalescedTimeoutIsAllOrNothingPerMessage cuts a batch of queued
// writers in the middle of its third message with a write deadline: the
// first two are sent, the third is committed with its rest pending, the
// others are not sent, and the peer then receives exactly the committed
// messages, whole.
func TestConnCoalescedTimeoutIsAllOrNothingPerMessage(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })

	msgs := []string{`"aaaa"`, `"bbbb"`, `"cccccccc"`, `"dddd"`, `"eeee"`}
	first, results := queueWriters(t, c, rawPeer, `"lead"`, msgs)
	// The lead frame, the first two queued ones, and 5 bytes of the
	// third: its header and one payload byte. The pipe write then blocks
	// in the third frame of the batch.
	got := make([]byte, (4+6)+2*(4+6)+5)
	got[0] = first[0]
	if _, err := io.ReadFull(rawPeer, got[1:]); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))

	want := []struct {
		n       int
		pending bool // ErrPending: committed, rest pending
		timeout bool // a plain timeout: not sent
	}{{6, false, false}, {6, false, false}, {6, false, false}, {10, true, false}, {0, false, true}, {0, false, true}}
	for i, ch := range results {
		res := awaitWrite(t, ch)
		switch w := want[i]; {
		case res.n != w.n,
			w.pending && !errors.Is(res.err, jsonconn.ErrPending),
			w.timeout && (errors.Is(res.err, jsonconn.ErrPending) || !isTimeoutErr(res.err)),
			!w.pending && !w.timeout && res.err != nil:
			t.Errorf("writer %d: Write = %d, %v; want %d, pending %t, timeout %t", i, res.n, res.err, w.n, w.pending, w.timeout)
		}
	}
	c.SetWriteDeadline(time.Time{})
	sent := goWrite(c, `"after"`) // the third message's rest goes first
	r := jsonconn.NewReader(io.MultiReader(bytesReader(got), rawPeer), nil)
	for _, want := range []string{`"lead"`, `"aaaa"`, `"bbbb"`, `"cccccccc"`, `"after"`} {
		m, err := r.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("peer got %q, %v; want %q", m, err, want)
		}
	}
	if res := awaitWrite(t, sent); res.err != nil {
		t.Fatal(res.err)
	}
}

// TestConnSenderReturnsWhenItsBatchIsOut checks that a writer whose message
// has left returns, though others queued behind it are still being sent:
// it hands the write side over rather than send their batches itself.
func TestConnSenderReturnsWhenItsBatchIsOut(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	first, results := queueWriters(t, c, rawPeer, `"lead"`, []string{`"queued"`})
	rest := make([]byte, 4+len(`"lead"`)-1)
	if _, err := io.ReadFull(rawPeer, rest); err != nil {
		t.Fatal(err)
	}
	if got := string(append(first, rest...)); got != string(frameBytes(`"lead"`)) {
		t.Fatalf("peer got %q, want the lead frame", got)
	}
	// The queued writer's frame is now being written, and nobody reads.
	if res := awaitWrite(t, results[0]); res.err != nil {
		t.Fatalf("lead Write = %d, %v", res.n, res.err)
	}
	r := jsonconn.NewReader(rawPeer, nil)
	if m, err := r.ReadMessage(); err != nil || string(m) != `"queued"` {
		t.Fatalf("peer got %q, %v; want the queued message", m, err)
	}
	if res := awaitWrite(t, results[1]); res.err != nil {
		t.Fatalf("queued Write = %d, %v", res.n, res.err)
	}
}

// TestConnCoalescesOverTCP checks the batching where it pays: on a socket,
// a batch is one writev. The lead message is larger than the socket
// buffers, so that its writer blocks until the peer reads.
func TestConnCoalescesOverTCP(t *testing.T) {
	t.Parallel()
	cfg := &jsonconn.Config{MaxFrameSize: 64 << 20}
	w, rw := tcpPair(t)
	c := jsonconn.New(w, cfg)
	t.Cleanup(func() { c.Close(); rw.Close() })
	var mu sync.Mutex
	var batches []int
	c.OnBatch(func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() })
	lead := `"` + strings.Repeat("x", 32<<20) + `"`
	msgs := []string{`1`, `2`, `3`, `4`, `5`}
	first, results := queueWriters(t, c, rw, lead, msgs)
	r := jsonconn.NewReader(io.MultiReader(bytesReader(first), rw), cfg)
	for i, want := range append([]string{lead}, msgs...) {
		m, err := r.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("message %d: peer got %.20q (%d bytes), %v; want %.20q", i, m, len(m), err, want)
		}
	}
	for i, ch := range results {
		if res := awaitWrite(t, ch); res.err != nil {
			t.Errorf("writer %d: %v", i, res.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(batches, []int{1, 5}) {
		t.Errorf("batches sent = %v, want [1 5]", batches)
	}
}

// TestConnServedConnDoesNotCoalesce checks that with a Server's
// WriteTimeout, a deadline per message, every message goes alone.
func TestConnServedConnDoesNotCoalesce(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	c.SetServerWriteTimeout(time.Hour)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	var mu sync.Mutex
	var batches []int
	c.OnBatch(func(n int) { mu.Lock(); batches = append(batches, n); mu.Unlock() })
	first, results := queueWriters(t, c, rawPeer, `"lead"`, []string{`1`, `2`, `3`})
	r := jsonconn.NewReader(io.MultiReader(bytesReader(first), rawPeer), nil)
	for _, want := range []string{`"lead"`, `1`, `2`, `3`} {
		if m, err := r.ReadMessage(); err != nil || string(m) != want {
			t.Fatalf("peer got %q, %v; want %q", m, err, want)
		}
	}
	for _, ch := range results {
		awaitWrite(t, ch)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(batches, []int{1, 1, 1, 1}) {
		t.Errorf("batches sent = %v, want each message alone", batches)
	}
}

// TestConnCoalescesEmptyPayloads checks that a queued empty message (nil,
// with validation off) is sent like any other.
func TestConnCoalescesEmptyPayloads(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, &jsonconn.Config{DisableValidation: true})
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	results := []<-chan writeResult{goWrite(c, "lead")}
	first := make([]byte, 1)
	if _, err := io.ReadFull(rawPeer, first); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		ch := make(chan writeResult, 1)
		go func() { n, err := c.Write(nil); ch <- writeResult{n, err} }()
		results = append(results, ch)
		waitUntil(t, "the empty writes queue", func() bool { return c.Queued() == i+1 })
	}
	results = append(results, goWrite(c, "last"))
	waitUntil(t, "the last write queues", func() bool { return c.Queued() == 3 })
	r := jsonconn.NewReader(io.MultiReader(bytesReader(first), rawPeer), &jsonconn.Config{DisableValidation: true})
	for _, want := range []string{"lead", "", "", "last"} {
		if m, err := r.ReadMessage(); err != nil || string(m) != want {
			t.Fatalf("peer got %q, %v; want %q", m, err, want)
		}
	}
	for i, ch := range results {
		if res := awaitWrite(t, ch); res.err != nil {
			t.Errorf("writer %d: %v", i, res.err)
		}
	}
}

// panicConn is a net.Conn whose writes wait for a turn, and the second of
// which panics.
type panicConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	turn   chan struct{}
}

func (p *panicConn) Write(b []byte) (int, error) {
	p.mu.Lock()
	p.writes++
	n := p.writes
	p.mu.Unlock()
	if n <= 2 {
		<-p.turn
	}
	if n == 2 {
		panic("wrapped conn broke")
	}
	return p.Conn.Write(b)
}

// TestConnSurvivesAPanickingWrite has the wrapped conn's Write panic in the
// middle of a batch: the sender panics, the writer queued in its batch gets
// an error, and the Conn goes on working.
func TestConnSurvivesAPanickingWrite(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	pc := &panicConn{Conn: rawConn, turn: make(chan struct{})}
	c := jsonconn.New(pc, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	go io.Copy(io.Discard, rawPeer)

	// A batch holds the write lock (write 1) while the next writer becomes
	// the sender and another queues behind it, so that both are in the
	// batch whose write (write 2) panics.
	batched := async(func() error { _, err := c.WriteBatch([][]byte{[]byte(`"batch"`)}); return err })
	waitUntil(t, "write 1 starts", func() bool { pc.mu.Lock(); defer pc.mu.Unlock(); return pc.writes == 1 })
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		c.Write([]byte(`"sender"`))
	}()
	waitUntil(t, "the sender waits for the lock", c.Sending)
	queued := goWrite(c, `"queued"`)
	waitUntil(t, "a writer queues", func() bool { return c.Queued() == 1 })
	pc.turn <- struct{}{} // write 1 goes through
	if err := await(t, batched); err != nil {
		t.Fatal(err)
	}
	pc.turn <- struct{}{} // write 2 panics
	select {
	case v := <-panicked:
		if v == nil {
			t.Fatal("the sender's Write did not panic")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sender never returned")
	}
	if res := awaitWrite(t, queued); res.err == nil || res.n != 0 {
		t.Errorf("queued Write = %d, %v; want 0 and an error", res.n, res.err)
	}
	if res := awaitWrite(t, goWrite(c, `"after"`)); res.err != nil {
		t.Errorf("Write after the panic = %d, %v; want the Conn still usable", res.n, res.err)
	}
}

// TestConnCloseUnblocksQueuedWriters closes a Conn with a writer blocked
// sending and others queued behind it: all return net.ErrClosed.
func TestConnCloseUnblocksQueuedWriters(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { rawPeer.Close() })
	_, results := queueWriters(t, c, rawPeer, `"lead"`, []string{`1`, `2`, `3`, `4`})
	c.Close()
	for i, ch := range results {
		if res := awaitWrite(t, ch); !errors.Is(res.err, net.ErrClosed) {
			t.Errorf("writer %d: Write = %d, %v; want net.ErrClosed", i, res.n, res.err)
		}
	}
}

// TestConnCoalescingKeepsEachWritersMessages floods a Conn with small
// messages from 8 goroutines, so that batches form and hand over many
// times, and checks that every message arrives once, intact, in its
// writer's order.
func TestConnCoalescingKeepsEachWritersMessages(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 8, 3000
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		wait := concurrently(writers, perWriter, func(w, n int) error {
			m := fmt.Sprintf("[%d,%d]", w, n)
			if k, err := a.Write([]byte(m)); err != nil || k != len(m) {
				return fmt.Errorf("writer %d: Write %d = %d, %v", w, n, k, err)
			}
			return nil
		})
		next := make([]int, writers)
		var buf []byte
		for i := 0; i < writers*perWriter; i++ {
			var err error
			if buf, err = b.AppendMessage(buf[:0]); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			var w, n int
			if _, err := fmt.Sscanf(string(buf), "[%d,%d]", &w, &n); err != nil || w < 0 || w >= writers || n != next[w] {
				t.Fatalf("got %q; want writer %d's message %d next", buf, w, next[w])
			}
			next[w]++
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func frameBytes(p string) []byte {
	return append([]byte{byte(len(p) >> 24), byte(len(p) >> 16), byte(len(p) >> 8), byte(len(p))}, p...)
}

type byteSliceReader struct{ b []byte }

func (r *byteSliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &byteSliceReader{b} }

package jsonconn_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
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

// queueWriters has a writer send lead over c, which nobody reads yet, so
// that it blocks while sending, and then queues one writer for each of
// msgs, in order. It returns the results, which arrive once the peer reads.
func queueWriters(t *testing.T, c *jsonconn.Conn, lead string, msgs []string) []<-chan writeResult {
	t.Helper()
	results := []<-chan writeResult{goWrite(c, lead)}
	waitUntil(t, "the first writer sends", c.Sending)
	for i, m := range msgs {
		results = append(results, goWrite(c, m))
		waitUntil(t, fmt.Sprintf("%d writers queue", i+1), func() bool { return c.Queued() == i+1 })
	}
	return results
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
	results := queueWriters(t, c, `"lead"`, msgs)
	r := jsonconn.NewReader(rawPeer, nil)
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
	results := queueWriters(t, c, `"lead"`, msgs)
	// The lead frame, the first two queued ones, and 5 bytes of the
	// third: its header and one payload byte.
	got := make([]byte, (4+6)+2*(4+6)+5)
	if _, err := io.ReadFull(rawPeer, got); err != nil {
		t.Fatal(err)
	}
	// Wait for the batch to be under way (the pipe write blocks in the
	// third frame), then strike.
	waitUntil(t, "the batch is sent", func() bool { return c.Queued() == 0 })
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

// TestConnCloseUnblocksQueuedWriters closes a Conn with a writer blocked
// sending and others queued behind it: all return net.ErrClosed.
func TestConnCloseUnblocksQueuedWriters(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { rawPeer.Close() })
	results := queueWriters(t, c, `"lead"`, []string{`1`, `2`, `3`, `4`})
	c.Close()
	for i, ch := range results {
		if res := awaitWrite(t, ch); !errors.Is(res.err, net.ErrClosed) {
			t.Errorf("writer %d: Write = %d, %v; want net.ErrClosed", i, res.n, res.err)
		}
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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

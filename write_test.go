package jsonconn_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jsonconn/jsonconn"
)

func TestWriterSendIsCompactAndNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := jsonconn.NewWriter(&buf, nil)
	v := map[string]any{"html": "<a href=\"x\">&</a>", "list": []int{1, 2}, "emoji": "🙂\u2028"}
	if err := w.Send(v); err != nil {
		t.Fatal(err)
	}
	want := frame(`{"emoji":"🙂\u2028","html":"<a href=\"x\">&</a>","list":[1,2]}`)
	if got := buf.Bytes(); !bytes.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestWriterRefusesBadMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		send func(w *jsonconn.Writer) (int, error)
		want error // matched with errors.Is, or a type via errors.As below
	}{
		{"too large", func(w *jsonconn.Writer) (int, error) { return w.Write([]byte(`"` + strings.Repeat("x", 15) + `"`)) }, jsonconn.ErrFrameTooLarge},
		{"not JSON", func(w *jsonconn.Writer) (int, error) { return w.Write([]byte(`{"a":}`)) }, jsonconn.ErrInvalidJSON},
		{"empty", func(w *jsonconn.Writer) (int, error) { return w.Write(nil) }, jsonconn.ErrInvalidJSON},
		{"two values", func(w *jsonconn.Writer) (int, error) { return w.Write([]byte(`1 2`)) }, jsonconn.ErrInvalidJSON},
		{"send too large", func(w *jsonconn.Writer) (int, error) { return 0, w.Send(strings.Repeat("x", 15)) }, jsonconn.ErrFrameTooLarge},
		{"send unmarshalable", func(w *jsonconn.Writer) (int, error) { return 0, w.Send(make(chan int)) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := jsonconn.NewWriter(&buf, &jsonconn.Config{MaxFrameSize: 16})
			n, err := tt.send(w)
			if n != 0 || err == nil {
				t.Fatalf("got %d, %v; want 0 and an error", n, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var ute *json.UnsupportedTypeError
			if tt.want == nil && !errors.As(err, &ute) {
				t.Fatalf("got %v, want *json.UnsupportedTypeError", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("a refused message wrote %q", buf.Bytes())
			}
			// The Writer is still usable.
			if n, err := w.Write([]byte(`"ok"`)); n != 4 || err != nil {
				t.Fatalf("Write after a refusal = %d, %v", n, err)
			}
			if got, want := buf.Bytes(), frame(`"ok"`); !bytes.Equal(got, want) {
				t.Fatalf("peer got %q, want %q", got, want)
			}
		})
	}
}

func TestWriterErrorDetails(t *testing.T) {
	t.Parallel()
	w := jsonconn.NewWriter(io.Discard, &jsonconn.Config{MaxFrameSize: 8})
	_, err := w.Write([]byte(`[1,2,3,4,5]`))
	var fse *jsonconn.FrameSizeError
	if !errors.As(err, &fse) || fse.Size != 11 || fse.Max != 8 {
		t.Errorf("got %#v, want *FrameSizeError{Size: 11, Max: 8}", err)
	}
	_, err = w.Write([]byte(`[1,,2]`))
	var ije *jsonconn.InvalidJSONError
	if !errors.As(err, &ije) || ije.Offset != 4 {
		t.Errorf("got %#v, want *InvalidJSONError at offset 4 (after the second comma)", err)
	}
}

// stallWriter accepts limit bytes, then fails every write with err (after
// writing what still fits).
type stallWriter struct {
	buf   bytes.Buffer
	limit int
	err   error
}

func (s *stallWriter) Write(p []byte) (int, error) {
	room := s.limit - s.buf.Len()
	if room >= len(p) {
		return s.buf.Write(p)
	}
	s.buf.Write(p[:max(room, 0)])
	return max(room, 0), s.err
}

// readAll decodes every frame of b.
func readAll(t testing.TB, b []byte) []string {
	t.Helper()
	r := jsonconn.NewReader(bytes.NewReader(b), nil)
	var got []string
	for {
		m, err := r.ReadMessage()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("decoding what was written: %v (after %q)", err, got)
		}
		got = append(got, string(m))
	}
}

// TestWriterTimeoutIsAllOrNothing interrupts a frame with a timeout after
// each possible number of bytes and checks that the stream stays whole.
func TestWriterTimeoutIsAllOrNothing(t *testing.T) {
	t.Parallel()
	first, second := `{"msg":"first"}`, `["second"]`
	size := 4 + len(first)
	for stall := 0; stall < size; stall++ {
		sw := &stallWriter{limit: stall, err: os.ErrDeadlineExceeded}
		w := jsonconn.NewWriter(sw, nil)
		n, err := w.Write([]byte(first))
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stall %d: got %#v, want a net.Error timeout matching os.ErrDeadlineExceeded", stall, err)
		}
		committed := stall > 0
		if errors.Is(err, jsonconn.ErrPending) != committed {
			t.Fatalf("stall %d: errors.Is(err, ErrPending) = %t, want %t", stall, !committed, committed)
		}
		if wantN := map[bool]int{true: len(first)}[committed]; n != wantN {
			t.Fatalf("stall %d: n = %d, want %d", stall, n, wantN)
		}
		if wantPending := map[bool]int{true: size - stall}[committed]; w.Pending() != wantPending {
			t.Fatalf("stall %d: Pending = %d, want %d", stall, w.Pending(), wantPending)
		}
		// Still stalled: the next message is not sent and the rest stays.
		if n, err := w.Write([]byte(second)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, jsonconn.ErrPending) {
			t.Fatalf("stall %d: Write while stalled = %d, %v; want 0 and a plain timeout", stall, n, err)
		}
		// The deadline moves: the rest goes out ahead of the next message.
		sw.limit = 1 << 20
		if n, err := w.Write([]byte(second)); n != len(second) || err != nil {
			t.Fatalf("stall %d: Write after the stall = %d, %v", stall, n, err)
		}
		want := []string{second}
		if committed {
			want = []string{first, second}
		}
		if diff := cmp.Diff(want, readAll(t, sw.buf.Bytes())); diff != "" {
			t.Fatalf("stall %d: peer got (-want +got):\n%s", stall, diff)
		}
	}
}

func TestWriterFlushSendsPendingRest(t *testing.T) {
	t.Parallel()
	sw := &stallWriter{limit: 6, err: os.ErrDeadlineExceeded}
	w := jsonconn.NewWriter(sw, nil)
	msg := `{"flush":"me"}`
	if err := w.Send(map[string]string{"flush": "me"}); !errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Send = %v, want ErrPending", err)
	}
	sw.limit = 10
	if err := w.Flush(); !errors.Is(err, os.ErrDeadlineExceeded) || w.Pending() != 4+len(msg)-10 {
		t.Fatalf("Flush while stalled = %v with %d pending; want a timeout and %d pending", err, w.Pending(), 4+len(msg)-10)
	}
	sw.limit = 1 << 20
	if err := w.Flush(); err != nil || w.Pending() != 0 {
		t.Fatalf("Flush = %v with %d pending; want nil and 0", err, w.Pending())
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush with nothing pending = %v", err)
	}
	if diff := cmp.Diff([]string{msg}, readAll(t, sw.buf.Bytes())); diff != "" {
		t.Fatalf("peer got (-want +got):\n%s", diff)
	}
}

func TestWriterIOErrorIsSticky(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection reset")
	for _, stall := range []int{0, 2, 7} {
		sw := &stallWriter{limit: stall, err: broken}
		w := jsonconn.NewWriter(sw, nil)
		if _, err := w.Write([]byte(`"hello"`)); err != broken {
			t.Fatalf("stall %d: got %v, want %v", stall, err, broken)
		}
		sw.limit = 1 << 20
		before := sw.buf.Len()
		if n, err := w.Write([]byte(`"again"`)); n != 0 || err != broken {
			t.Fatalf("stall %d: Write after the failure = %d, %v; want 0, %v", stall, n, err, broken)
		}
		if err := w.Flush(); err != broken {
			t.Fatalf("stall %d: Flush after the failure = %v; want %v", stall, err, broken)
		}
		if sw.buf.Len() != before || w.Pending() != 0 {
			t.Fatalf("stall %d: a broken Writer wrote more or kept a rest", stall)
		}
	}
}

// shortWriter violates io.Writer by writing less without an error.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterShortWriteIsAnError(t *testing.T) {
	t.Parallel()
	w := jsonconn.NewWriter(shortWriter{}, nil)
	if _, err := w.Write([]byte(`"x"`)); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("got %v, want io.ErrShortWrite", err)
	}
}

func TestWriterDisableValidation(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := jsonconn.NewWriter(&buf, &jsonconn.Config{DisableValidation: true, MaxFrameSize: 4})
	for _, p := range []string{"", "\x00\xff", "abcd"} {
		if n, err := w.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if _, err := w.Write([]byte("abcde")); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		t.Fatalf("the cap still applies: got %v", err)
	}
	if got, want := buf.Bytes(), frames("", "\x00\xff", "abcd"); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// countingWriter counts Write calls.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.Buffer.Write(p)
}

func TestWriterOneWriteCallPerFrame(t *testing.T) {
	t.Parallel()
	var cw countingWriter
	w := jsonconn.NewWriter(&cw, nil)
	msgs := []string{`1`, `"two"`, `[` + strings.Repeat(`3,`, 8000) + `3]`, `"` + strings.Repeat("x", 200<<10) + `"`}
	for _, m := range msgs {
		if _, err := w.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if cw.calls != len(msgs) {
		t.Errorf("%d frames took %d write calls, want one each", len(msgs), cw.calls)
	}
	if diff := cmp.Diff(msgs, readAll(t, cw.Bytes())); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// lateTimeoutWriter writes limit bytes and a timeout on its first call, then
// everything but still a timeout on its second, then behaves.
type lateTimeoutWriter struct {
	bytes.Buffer
	limit, calls int
}

func (l *lateTimeoutWriter) Write(p []byte) (int, error) {
	l.calls++
	switch l.calls {
	case 1:
		l.Buffer.Write(p[:l.limit])
		return l.limit, os.ErrDeadlineExceeded
	case 2:
		l.Buffer.Write(p)
		return len(p), os.ErrDeadlineExceeded
	}
	return l.Buffer.Write(p)
}

// TestWriterTimeoutAfterEverythingLeft checks that a timeout reported along
// with the last byte neither keeps a buffer nor reports the message pending.
func TestWriterTimeoutAfterEverythingLeft(t *testing.T) {
	t.Parallel()
	lw := &lateTimeoutWriter{limit: 3}
	w := jsonconn.NewWriter(lw, nil)
	if _, err := w.Write([]byte(`"hello"`)); !errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write = %v, want ErrPending", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush that wrote the whole rest = %v, want nil", err)
	}
	if w.Pending() != 0 || w.HeldPending() != 0 {
		t.Fatalf("after the rest left: Pending %d, holding %d bytes; want 0 and 0", w.Pending(), w.HeldPending())
	}
	lw2 := &lateTimeoutWriter{limit: 0}
	w = jsonconn.NewWriter(lw2, nil)
	lw2.calls = 1 // the next call writes everything with a timeout
	if n, err := w.Write([]byte(`"whole"`)); n != 7 || err != nil || w.HeldPending() != 0 {
		t.Fatalf("Write that left whole with a timeout = %d, %v (holding %d); want 7, nil, 0", n, err, w.HeldPending())
	}
	if diff := cmp.Diff([]string{`"hello"`}, readAll(t, lw.Bytes())); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

func TestWriterBatchRefusesWholeBatch(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := jsonconn.NewWriter(&buf, &jsonconn.Config{MaxFrameSize: 16})
	n, err := w.WriteBatch([][]byte{[]byte(`1`), []byte(`{"bad"`), []byte(`3`)})
	var ije *jsonconn.InvalidJSONError
	if n != 0 || !errors.As(err, &ije) || !strings.Contains(err.Error(), "message 1") {
		t.Fatalf("WriteBatch with a bad message = %d, %v; want 0 and an *InvalidJSONError naming message 1", n, err)
	}
	if n, err := w.WriteBatch([][]byte{[]byte(`1`), []byte(`"` + strings.Repeat("x", 20) + `"`)}); n != 0 || !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		t.Fatalf("WriteBatch with a large message = %d, %v; want 0, ErrFrameTooLarge", n, err)
	}
	if buf.Len() != 0 {
		t.Fatalf("a refused batch wrote %q", buf.Bytes())
	}
}

// TestWriterBatchTimeoutIsAllOrNothingPerMessage stalls a batch after every
// possible byte count, on the sequential path and on the writev path, and
// checks the count and the stream. Empty payloads are in the batch because a
// committed empty message reports no bytes of its own.
func TestWriterBatchTimeoutIsAllOrNothingPerMessage(t *testing.T) {
	t.Parallel()
	batch := []string{`"first"`, ``, `{"second":2}`, ``, `[3]`, ``}
	wire := frames(batch...)
	for _, vectored := range []bool{false, true} {
		for stall := 0; stall <= len(wire); stall++ {
			sw := &stallWriter{limit: stall, err: os.ErrDeadlineExceeded}
			w := jsonconn.NewWriter(sw, &jsonconn.Config{DisableValidation: true})
			if vectored {
				w.ForceVectored()
			}
			msgs := make([][]byte, len(batch))
			for i, m := range batch {
				msgs[i] = []byte(m)
			}
			n, err := w.WriteBatch(msgs)
			// The frames that left whole, plus one cut in the middle.
			whole, end := 0, 0
			for whole < len(batch) && end+4+len(batch[whole]) <= stall {
				end += 4 + len(batch[whole])
				whole++
			}
			cut := stall > end && whole < len(batch)
			want := whole
			if cut {
				want++
			}
			if stall == len(wire) {
				if n != len(batch) || err != nil {
					t.Fatalf("vectored %t: a batch that left whole = %d, %v", vectored, n, err)
				}
			} else {
				checkTimeout(t, err)
				if n != want || errors.Is(err, jsonconn.ErrPending) != cut {
					t.Fatalf("vectored %t, stall %d: WriteBatch = %d, %v; want %d committed, ErrPending %t", vectored, stall, n, err, want, cut)
				}
			}
			sw.limit = 1 << 20
			if _, err := w.Write([]byte(`"after"`)); err != nil {
				t.Fatalf("vectored %t, stall %d: Write after the stall: %v", vectored, stall, err)
			}
			r := jsonconn.NewReader(bytes.NewReader(sw.buf.Bytes()), &jsonconn.Config{DisableValidation: true})
			got, err := readMessages(r)
			if err != io.EOF {
				t.Fatalf("vectored %t, stall %d: stream ended with %v", vectored, stall, err)
			}
			var gotStrings []string
			for _, m := range got {
				gotStrings = append(gotStrings, string(m))
			}
			if diff := cmp.Diff(append(batch[:n:n], `"after"`), gotStrings); diff != "" {
				t.Fatalf("vectored %t, stall %d: peer got (-want +got):\n%s", vectored, stall, diff)
			}
		}
	}
}

func TestWriterEmptyBatch(t *testing.T) {
	t.Parallel()
	broken := errors.New("broken")
	sw := &stallWriter{limit: 0, err: broken}
	w := jsonconn.NewWriter(sw, nil)
	if n, err := w.WriteBatch(nil); n != 0 || err != nil {
		t.Fatalf("empty batch on a healthy Writer = %d, %v", n, err)
	}
	w.Write([]byte(`1`)) // breaks the Writer for good
	if n, err := w.WriteBatch(nil); n != 0 || err != broken {
		t.Fatalf("empty batch after a write failure = %d, %v; want 0, %v", n, err, broken)
	}
}

// Coalescing concurrent writers.

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
	c, rawPeer, batches := batchedPipe(t)

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
	if got := batches(); !slices.Equal(got, []int{1, 7}) {
		t.Errorf("batches sent = %v, want [1 7]: the lead message alone, then the 7 queued behind it together", got)
	}
}

// batchedPipe returns a Conn over a pipe, the pipe's other end, and a
// function that returns the sizes of the batches the Conn has sent so far.
func batchedPipe(t *testing.T) (c *jsonconn.Conn, rawPeer net.Conn, batches func() []int) {
	t.Helper()
	rawPeer, rawConn := net.Pipe()
	c = jsonconn.New(rawConn, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })
	var mu sync.Mutex
	var sizes []int
	c.OnBatch(func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() })
	return c, rawPeer, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(sizes)
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

// TestConnPanickingWriteEndsTheWriteSide has the wrapped conn's Write panic
// in the middle of a batch: the sender panics, the writer queued in its
// batch gets an error, and so does every later write, as after an I/O
// error, since what the panicking Write sent of the stream is unknown. The
// Conn is not wedged: the writes return, and reading still works.
func TestConnPanickingWriteEndsTheWriteSide(t *testing.T) {
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
	if res := awaitWrite(t, goWrite(c, `"after"`)); res.err == nil || res.n != 0 || !strings.Contains(res.err.Error(), "panicked") {
		t.Errorf("Write after the panic = %d, %v; want 0 and the error of the panicked write", res.n, res.err)
	}
	go rawPeer.Write([]byte("\x00\x00\x00\x011"))
	if m, err := c.ReadMessage(); err != nil || string(m) != "1" {
		t.Errorf("ReadMessage after the panic = %q, %v; want 1", m, err)
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

// wholeThenFail writes everything it is given, and on its call numbered
// failAt returns its error along with the full count, as an io.Writer may;
// later calls write nothing and return the error.
type wholeThenFail struct {
	net.Conn // nil, or where the bytes also go
	buf      bytes.Buffer
	failAt   int
	calls    int
	err      error
}

func (w *wholeThenFail) Write(p []byte) (int, error) {
	w.calls++
	if w.calls > w.failAt {
		return 0, w.err
	}
	w.buf.Write(p)
	if w.Conn != nil {
		if n, err := w.Conn.Write(p); err != nil {
			return n, err
		}
	}
	if w.calls == w.failAt {
		return len(p), w.err
	}
	return len(p), nil
}

// TestWriterFrameThatLeftWholeIsCommitted: a message whose frame left whole
// is committed even when the write that carried its last byte returned an
// error, on every write path: the call succeeds (a caller that retried it
// would send it twice), and the error ends the stream, returned by the next
// call.
func TestWriterFrameThatLeftWholeIsCommitted(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection broke")
	msgs := [][]byte{[]byte(`"a"`), []byte(`"b"`), []byte(`"c"`)}
	tests := []struct {
		name      string
		vectored  bool // a header and a payload are two Write calls
		msgs      int  // messages in the batch
		failAt    int
		committed int
		err       error
	}{
		{"one message", false, 1, 1, 1, nil},
		{"the last of a batch", false, 3, 3, 3, nil},
		{"inside a batch", false, 3, 2, 2, broken},
		{"vectored: the last of a batch", true, 3, 6, 3, nil},
		{"vectored: inside a batch", true, 3, 4, 2, broken},
		{"vectored: after a header", true, 3, 3, 1, broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fw := &wholeThenFail{failAt: tt.failAt, err: broken}
			w := jsonconn.NewWriter(fw, nil)
			if tt.vectored {
				w.ForceVectored()
			}
			k, err := w.WriteBatch(msgs[:tt.msgs])
			if k != tt.committed || err != tt.err {
				t.Fatalf("WriteBatch = %d, %v; want %d, %v", k, err, tt.committed, tt.err)
			}
			var want []string
			for _, m := range msgs[:k] {
				want = append(want, string(m))
			}
			if diff := cmp.Diff(want, readAllUntilCut(fw.buf.Bytes())); diff != "" {
				t.Errorf("stream (-committed +whole frames written):\n%s", diff)
			}
			if n, err := w.Write([]byte(`"next"`)); n != 0 || err != broken {
				t.Errorf("Write after = %d, %v; want 0, %v", n, err, broken)
			}
		})
	}

	t.Run("Write and Send", func(t *testing.T) {
		w := jsonconn.NewWriter(&wholeThenFail{failAt: 1, err: broken}, nil)
		if n, err := w.Write([]byte(`"x"`)); n != 3 || err != nil {
			t.Errorf("Write = %d, %v; want 3, nil", n, err)
		}
		w = jsonconn.NewWriter(&wholeThenFail{failAt: 1, err: broken}, nil)
		if err := w.Send("x"); err != nil {
			t.Errorf("Send = %v; want nil: the message left", err)
		}
		if err := w.Send("y"); err != broken {
			t.Errorf("Send after = %v; want %v", err, broken)
		}
	})
}

// readAllUntilCut decodes the whole frames at the start of b, up to the
// first one cut short.
func readAllUntilCut(b []byte) []string {
	r := jsonconn.NewReader(bytes.NewReader(b), nil)
	var got []string
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return got
		}
		got = append(got, string(m))
	}
}

// TestConnFrameThatLeftWholeIsCommitted checks the same rule through a Conn:
// WriteBatch over a TCP conn that a wrapper hides from the writev path, and
// writers coalesced over a pipe, where a queued writer's frame left whole
// with an error. Each committed message reaches the peer and its caller is
// told so; the others are not sent.
func TestConnFrameThatLeftWholeIsCommitted(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection broke")

	t.Run("WriteBatch over TCP", func(t *testing.T) {
		t.Parallel()
		peer, raw := tcpPair(t)
		c := jsonconn.New(&wholeThenFail{Conn: raw, failAt: 1, err: broken}, nil)
		t.Cleanup(func() { c.Close(); peer.Close() })
		if k, err := c.WriteBatch([][]byte{[]byte(`"only"`)}); k != 1 || err != nil {
			t.Fatalf("WriteBatch = %d, %v; want 1, nil: the frame left", k, err)
		}
		peer.SetReadDeadline(time.Now().Add(hangTimeout))
		if m, err := jsonconn.NewReader(peer, nil).ReadMessage(); err != nil || string(m) != `"only"` {
			t.Fatalf("peer got %q, %v", m, err)
		}
		if _, err := c.Write([]byte(`"next"`)); !errors.Is(err, broken) {
			t.Fatalf("Write after = %v, want %v", err, broken)
		}
	})

	t.Run("coalesced writers", func(t *testing.T) {
		t.Parallel()
		rawPeer, rawConn := net.Pipe()
		// Write call 1 is the lead's frame, 2 and 3 those of the first two
		// queued writers: the third carries its last byte with the error.
		c := jsonconn.New(&wholeThenFail{Conn: rawConn, failAt: 3, err: broken}, nil)
		t.Cleanup(func() { c.Close(); rawPeer.Close() })
		msgs := []string{`1`, `2`, `3`}
		first, results := queueWriters(t, c, rawPeer, `"lead"`, msgs)
		r := jsonconn.NewReader(io.MultiReader(bytesReader(first), rawPeer), nil)
		for _, want := range []string{`"lead"`, `1`, `2`} {
			if m, err := r.ReadMessage(); err != nil || string(m) != want {
				t.Fatalf("peer got %q, %v; want %q", m, err, want)
			}
		}
		for i, want := range []writeResult{{6, nil}, {1, nil}, {1, nil}, {0, broken}} {
			if res := awaitWrite(t, results[i]); res.n != want.n || !errors.Is(res.err, want.err) || (want.err == nil) != (res.err == nil) {
				t.Errorf("writer %d: Write = %d, %v; want %d, %v", i, res.n, res.err, want.n, want.err)
			}
		}
	})
}

// negativeWriter returns a count below zero with a timeout, breaking the
// io.Writer contract, on its call numbered at; it writes everything before.
type negativeWriter struct {
	bytes.Buffer
	at, calls, limit int
}

func (w *negativeWriter) Write(p []byte) (int, error) {
	w.calls++
	if w.calls == w.at {
		return -1, os.ErrDeadlineExceeded
	}
	if w.limit > 0 && len(p) > w.limit {
		w.Buffer.Write(p[:w.limit])
		return w.limit, os.ErrDeadlineExceeded
	}
	return w.Buffer.Write(p)
}

// TestWriterInvalidCountEndsTheStream: a destination that returns a count
// below 0 (or above what it was given) ends the stream with an error instead
// of panicking the Writer, on a frame's write and on the flush of a pending
// rest, as the Reader guards against such counts from its source.
func TestWriterInvalidCountEndsTheStream(t *testing.T) {
	t.Parallel()
	t.Run("write", func(t *testing.T) {
		w := jsonconn.NewWriter(&negativeWriter{at: 1}, nil)
		n, err := w.Write([]byte(`"x"`))
		if n != 0 || err == nil || isTimeoutErr(err) {
			t.Fatalf("Write = %d, %v; want 0 and an error that is no timeout", n, err)
		}
		if _, err2 := w.Write([]byte(`"y"`)); err2 != err {
			t.Fatalf("next Write = %v, want the same error", err2)
		}
	})
	t.Run("flush", func(t *testing.T) {
		w := jsonconn.NewWriter(&negativeWriter{at: 2, limit: 2}, nil)
		if _, err := w.Write([]byte(`"pending"`)); !errors.Is(err, jsonconn.ErrPending) {
			t.Fatalf("first Write = %v, want ErrPending", err)
		}
		err := w.Flush()
		if err == nil || isTimeoutErr(err) {
			t.Fatalf("Flush = %v; want an error that is no timeout", err)
		}
	})
	t.Run("more than given", func(t *testing.T) {
		w := jsonconn.NewWriter(writerFunc(func(p []byte) (int, error) { return len(p) + 1, nil }), nil)
		if n, err := w.Write([]byte(`"x"`)); n != 0 || err == nil {
			t.Fatalf("Write = %d, %v; want 0 and an error", n, err)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWriterDeadPeerIsNoTimeout: ETIMEDOUT from a write (TCP_USER_TIMEOUT
// ran out, or keep-alive found the peer gone) is no deadline: the message
// cut by it is not committed as pending, and the stream ends.
func TestWriterDeadPeerIsNoTimeout(t *testing.T) {
	t.Parallel()
	dead := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ETIMEDOUT)}
	sw := &stallWriter{limit: 2, err: dead}
	w := jsonconn.NewWriter(sw, nil)
	if n, err := w.Write([]byte(`"cut"`)); n != 0 || err != dead || errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write = %d, %v; want 0 and the error, not ErrPending", n, err)
	}
	sw.limit = 1 << 20
	if n, err := w.Write([]byte(`"next"`)); n != 0 || err != dead {
		t.Fatalf("Write after = %d, %v; want 0 and the same error: the stream ended", n, err)
	}
	if w.Pending() != 0 {
		t.Fatal("the Writer kept a rest to send after the stream ended")
	}
}

// scriptedWriter returns, call by call, the scripted count (a negative
// count means "all of p") and error, and keeps what it was said to accept.
type scriptedWriter struct {
	buf    bytes.Buffer
	script []struct {
		n   int
		err error
	}
}

func (w *scriptedWriter) Write(p []byte) (int, error) {
	if len(w.script) == 0 {
		w.buf.Write(p)
		return len(p), nil
	}
	s := w.script[0]
	w.script = w.script[1:]
	n := s.n
	if n < 0 || n > len(p) {
		n = len(p)
	}
	w.buf.Write(p[:n])
	return n, s.err
}

// TestWriterFlushOfARestThatLeftWholeSucceeds: a frame whose rest Flush sent
// whole is committed, whatever error came with its last byte, as for a
// frame written at once: Flush succeeds and the next call returns the error.
// A Flush that failed would tell a caller that saw ErrPending that the peer
// lacks the message, and the caller would send it again elsewhere.
func TestWriterFlushOfARestThatLeftWholeSucceeds(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection broke")
	dst := &scriptedWriter{}
	dst.script = append(dst.script,
		struct {
			n   int
			err error
		}{2, os.ErrDeadlineExceeded}, // half of the header, then the deadline
		struct {
			n   int
			err error
		}{-1, broken}, // the whole rest, with an error
	)
	w := jsonconn.NewWriter(dst, nil)
	if n, err := w.Write([]byte(`"msg"`)); n != 5 || !errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write = %d, %v; want 5, ErrPending", n, err)
	}
	err := w.Flush()
	m, rerr := jsonconn.NewReader(bytes.NewReader(dst.buf.Bytes()), nil).ReadMessage()
	if rerr != nil || string(m) != `"msg"` {
		t.Fatalf("setup: the peer got %q, %v; want the whole message", m, rerr)
	}
	if err != nil {
		t.Errorf("Flush = %v, with the whole frame on the wire; want nil (and %v from the next call)", err, broken)
	}
	if n, err := w.Write([]byte(`"next"`)); n != 0 || err != broken {
		t.Errorf("Write after = %d, %v; want 0, %v", n, err, broken)
	}
}

// panicAfterWriter accepts 2 bytes with a deadline, then panics.
type panicAfterWriter struct{ calls int }

func (w *panicAfterWriter) Write(p []byte) (int, error) {
	if w.calls++; w.calls == 1 {
		return 2, os.ErrDeadlineExceeded
	}
	panic("destination broke")
}

// TestWriterPanickingFlushReleasesThePendingRest: a Flush whose Write panics
// ends the stream, and the pending rest it could never send (up to
// MaxFrameSize+4 bytes) is let go, as on every other end of the stream.
func TestWriterPanickingFlushReleasesThePendingRest(t *testing.T) {
	t.Parallel()
	w := jsonconn.NewWriter(&panicAfterWriter{}, nil)
	if _, err := w.Write([]byte(`"` + string(bytes.Repeat([]byte("x"), 100<<10)) + `"`)); !errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write = %v; want ErrPending", err)
	}
	func() {
		defer func() { recover() }()
		w.Flush()
	}()
	if err := w.Flush(); err == nil {
		t.Fatal("the stream did not end")
	}
	if h := w.HeldPending(); h != 0 {
		t.Errorf("after the stream ended by a panic, the Writer holds %d bytes for a rest it can never send; want 0", h)
	}
}

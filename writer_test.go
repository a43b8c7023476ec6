package jsonconn_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"

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

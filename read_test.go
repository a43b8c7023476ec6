package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/jsonconn/jsonconn"
)

// frame returns the wire bytes of one frame with payload p.
func frame(p string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(p)))
	return append(b, p...)
}

// frames returns the wire bytes of one frame per payload.
func frames(ps ...string) []byte {
	var b []byte
	for _, p := range ps {
		b = append(b, frame(p)...)
	}
	return b
}

func TestReaderReadNeverSpansMessages(t *testing.T) {
	t.Parallel()
	msgs := []string{`{"first":true}`, `[1,2,3]`, `"third message, longer than the buffer"`}
	for _, size := range []int{1, 3, 7, 64} {
		r := jsonconn.NewReader(bytes.NewReader(frames(msgs...)), nil)
		var got []string
		var cur []byte
		p := make([]byte, size)
		for {
			n, err := r.Read(p)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("size %d: Read: %v", size, err)
			}
			cur = append(cur, p[:n]...)
			// A Read ends exactly at a message boundary or inside one
			// message; it is complete once it is valid JSON and the
			// next Read starts a new one.
			if len(got) < len(msgs) && string(cur) == msgs[len(got)] {
				got = append(got, string(cur))
				cur = nil
			} else if len(got) < len(msgs) && !strings.HasPrefix(msgs[len(got)], string(cur)) {
				t.Fatalf("size %d: Read returned %q, which spans messages", size, cur)
			}
		}
		if diff := cmp.Diff(msgs, got); diff != "" || len(cur) != 0 {
			t.Errorf("size %d: messages (-want +got):\n%s\nleftover %q", size, diff, cur)
		}
	}
}

func TestReaderReadOneMessagePerCall(t *testing.T) {
	t.Parallel()
	r := jsonconn.NewReader(bytes.NewReader(frames(`1`, `22`, `333`)), nil)
	p := make([]byte, 100)
	for _, want := range []string{"1", "22", "333"} {
		n, err := r.Read(p)
		if err != nil || string(p[:n]) != want {
			t.Fatalf("Read = %q, %v; want %q, nil", p[:n], err, want)
		}
	}
	if n, err := r.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("Read at end = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReaderSkipsEmptyPayloadsInRead(t *testing.T) {
	t.Parallel()
	r := jsonconn.NewReader(bytes.NewReader(frames(``, `ab`, ``, ``, `c`)), &jsonconn.Config{DisableValidation: true})
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "abc" {
		t.Fatalf("ReadAll = %q, %v; want %q, nil", got, err, "abc")
	}
	r = jsonconn.NewReader(bytes.NewReader(frames(``, `ab`)), &jsonconn.Config{DisableValidation: true})
	if m, err := r.ReadMessage(); err != nil || m == nil || len(m) != 0 {
		t.Fatalf("ReadMessage = %q (nil %t), %v; want an empty non-nil payload", m, m == nil, err)
	}
}

func TestReaderMixedReadAndReadMessage(t *testing.T) {
	t.Parallel()
	r := jsonconn.NewReader(bytes.NewReader(frames(`"abcdef"`, `2`)), nil)
	p := make([]byte, 3)
	if n, err := r.Read(p); n != 3 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	// ReadMessage returns the unread rest first, then whole messages.
	for _, want := range []string{`cdef"`, `2`} {
		if m, err := r.ReadMessage(); err != nil || string(m) != want {
			t.Fatalf("ReadMessage = %q, %v; want %q", m, err, want)
		}
	}
}

// stutterReader returns at most chunk bytes per call and a deadline error
// after every chunk, as a conn with a short deadline would.
type stutterReader struct {
	data    []byte
	chunk   int
	timeout bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if s.timeout = !s.timeout; s.timeout {
		return 0, os.ErrDeadlineExceeded
	}
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

func TestReaderTimeoutLosesNothing(t *testing.T) {
	t.Parallel()
	msgs := []string{`{"a":"` + strings.Repeat("x", 40<<10) + `"}`, `[true,false,null]`, `1e10`}
	for _, chunk := range []int{1, 2, 3, 5, 4096} {
		src := &stutterReader{data: frames(msgs...), chunk: chunk}
		r := jsonconn.NewReader(src, nil)
		var got []string
		timeouts := 0
		for {
			m, err := r.ReadMessage()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				timeouts++
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			got = append(got, string(m))
		}
		if diff := cmp.Diff(msgs, got); diff != "" {
			t.Errorf("chunk %d: messages (-want +got):\n%s", chunk, diff)
		}
		if timeouts == 0 {
			t.Errorf("chunk %d: no timeout was seen; the test did not test", chunk)
		}
	}
}

// TestReaderAppendLargeFrameLosesNothing reads frames larger than the read
// buffer, which AppendMessage reads straight into the caller's buffer,
// through timeouts after every chunk: each timeout leaves dst as it was and
// the next call goes on where the frame stopped.
func TestReaderAppendLargeFrameLosesNothing(t *testing.T) {
	t.Parallel()
	msgs := []string{`"small"`, `{"a":"` + strings.Repeat("x", 40<<10) + `"}`, `[` + strings.Repeat("1,", 50000) + `1]`, `"last"`}
	for _, chunk := range []int{7, 1000, 4096, 65536} {
		src := &stutterReader{data: frames(msgs...), chunk: chunk}
		r := jsonconn.NewReader(src, nil)
		var got []string
		timeouts := 0
		buf := []byte("prefix:")
		for {
			out, err := r.AppendMessage(buf)
			if string(out) != "prefix:" && err != nil {
				t.Fatalf("chunk %d: AppendMessage returned %.20q with error %v; want dst unchanged", chunk, out, err)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				timeouts++
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			got = append(got, string(out[len("prefix:"):]))
		}
		if diff := cmp.Diff(msgs, got); diff != "" {
			t.Errorf("chunk %d: messages (-want +got):\n%s", chunk, diff)
		}
		if timeouts == 0 {
			t.Errorf("chunk %d: no timeout was seen; the test did not test", chunk)
		}
	}
}

// TestReaderAppendLargeFrameErrors covers the ends of a large frame read
// straight into dst: a payload that is not JSON, the source ending inside
// the frame, a source that returns nothing, and one that returns the last
// bytes together with io.EOF.
func TestReaderAppendLargeFrameErrors(t *testing.T) {
	t.Parallel()
	big := `[` + strings.Repeat("1,", 50000) + `1]`
	for _, tc := range []struct {
		name string
		src  io.Reader
		want error // of the first AppendMessage; nil means it succeeds
		next error // of the second
	}{
		{"invalid", bytes.NewReader(frame(big[:len(big)-1] + `,]`)), jsonconn.ErrInvalidJSON, jsonconn.ErrInvalidJSON},
		{"truncated", bytes.NewReader(frame(big)[:60000]), io.ErrUnexpectedEOF, io.ErrUnexpectedEOF},
		{"no progress", io.MultiReader(bytes.NewReader(frame(big)[:20000]), zeroReader{}), io.ErrNoProgress, io.ErrNoProgress},
		{"EOF with the last bytes", iotest.DataErrReader(bytes.NewReader(frame(big))), nil, io.EOF},
		// The source fails together with the header's bytes: that error
		// comes first, as ReadMessage returns it.
		{"error with the header", &errOnce{frame(big)[:100], errBoom, bytes.NewReader(frame(big)[100:])}, errBoom, errBoom},
	} {
		r := jsonconn.NewReader(tc.src, nil)
		out, err := r.AppendMessage([]byte("prefix:"))
		if tc.want == nil && (err != nil || string(out) != "prefix:"+big) {
			t.Errorf("%s: AppendMessage = %.20q…, %v; want the message", tc.name, out, err)
		}
		if tc.want != nil && (!errors.Is(err, tc.want) || string(out) != "prefix:") {
			t.Errorf("%s: AppendMessage = %.20q, %v; want dst unchanged and %v", tc.name, out, err, tc.want)
		}
		if _, err := r.AppendMessage(nil); !errors.Is(err, tc.next) {
			t.Errorf("%s: next AppendMessage error = %v, want %v", tc.name, err, tc.next)
		}
	}
}

var errBoom = errors.New("boom")

// errOnce returns first together with err, then reads from rest, as a
// source whose error is transient would.
type errOnce struct {
	first []byte
	err   error
	rest  io.Reader
}

func (e *errOnce) Read(p []byte) (int, error) {
	if e.first == nil {
		return e.rest.Read(p)
	}
	n := copy(p, e.first)
	e.first = nil
	return n, e.err
}

// zeroReader returns no bytes and no error, forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderSourceErrorIsSticky(t *testing.T) {
	t.Parallel()
	// iotest.ErrTimeout is not a net.Error: it ends the stream like any error.
	src := iotest.TimeoutReader(bytes.NewReader(frames(`1`, `2`)))
	r := jsonconn.NewReader(iotest.OneByteReader(src), nil)
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = r.ReadMessage()
	}
	if err != iotest.ErrTimeout {
		t.Fatalf("got %v, want iotest.ErrTimeout", err)
	}
	if _, err2 := r.ReadMessage(); err2 != err {
		t.Fatalf("after the error: got %v, want it again", err2)
	}
}

// headerThenFail returns a header and fails the test if it is read again.
type headerThenFail struct {
	t    *testing.T
	hdr  []byte
	done bool
}

func (h *headerThenFail) Read(p []byte) (int, error) {
	if h.done {
		h.t.Error("Reader waited for the body of an oversized frame")
		return 0, io.EOF
	}
	h.done = true
	return copy(p, h.hdr), nil
}

func TestReaderOversizeStopsAtHeader(t *testing.T) {
	t.Parallel()
	for _, n := range []uint32{DefaultCap + 1, 1 << 30, 0xFFFFFFFF} {
		r := jsonconn.NewReader(&headerThenFail{t: t, hdr: binary.BigEndian.AppendUint32(nil, n)}, nil)
		_, err := r.ReadMessage()
		var fse *jsonconn.FrameSizeError
		if !errors.As(err, &fse) || !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Fatalf("header %#x: got %v, want a *FrameSizeError", n, err)
		}
		if fse.Size != int64(n) || fse.Max != DefaultCap {
			t.Errorf("header %#x: got Size %d Max %d, want %d and %d", n, fse.Size, fse.Max, n, DefaultCap)
		}
		if r.Held() != 0 {
			t.Errorf("header %#x: Reader holds %d bytes after the error, want 0", n, r.Held())
		}
	}
}

const DefaultCap = jsonconn.DefaultMaxFrameSize

func TestReaderHugeHeaderAllocatesNothingLarge(t *testing.T) {
	// Not parallel: it reads the process-wide allocation counter.
	stream := append(binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF), make([]byte, 1<<20)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 10; i++ {
		r := jsonconn.NewReader(bytes.NewReader(stream), nil)
		if _, err := r.ReadMessage(); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Fatalf("got %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	perHeader := (after.TotalAlloc - before.TotalAlloc) / 10
	t.Logf("a 0xFFFFFFFF header cost %d bytes of allocation", perHeader)
	// The read buffer (16 KiB, pooled) and the error are all it may cost.
	if limit := uint64(2 * (jsonconn.ReadBufferSize + 4)); perHeader > limit {
		t.Errorf("a 0xFFFFFFFF header allocated %d bytes, want at most %d", perHeader, limit)
	}
}

func TestReaderBufferReleasedWhenDrained(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("b", 100<<10) + `"`
	r := jsonconn.NewReader(iotest.HalfReader(bytes.NewReader(frames(`1`, big, `2`))), nil)
	if r.Held() != 0 {
		t.Fatalf("new Reader holds %d bytes, want 0", r.Held())
	}
	for i := 0; i < 3; i++ {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		// Buffers come in power-of-two payload sizes.
		if held, limit := r.Held(), 128<<10+4; held > limit {
			t.Errorf("message %d: Reader holds %d bytes, more than the %d of one frame's buffer", i, held, limit)
		}
		_ = m
	}
	if r.Held() != 0 {
		t.Errorf("drained Reader holds %d bytes, want 0", r.Held())
	}
}

// loopReader repeats data forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestReaderAppendMessageDoesNotAllocate(t *testing.T) {
	for _, validate := range []bool{false, true} {
		// A small frame, one of 4 KiB, and one of 100 KiB, which is read
		// straight into the caller's buffer.
		src := &loopReader{data: frames(`{"id":1,"name":"small message","tags":["a","b"]}`, `[`+strings.Repeat("1,", 2000)+`1]`, `[`+strings.Repeat("1,", 50000)+`1]`)}
		r := jsonconn.NewReader(src, &jsonconn.Config{DisableValidation: !validate})
		buf := make([]byte, 0, 8<<10)
		allocs := testing.AllocsPerRun(1000, func() {
			var err error
			if buf, err = r.AppendMessage(buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("validate=%t: AppendMessage allocated %.1f times per message, want 0", validate, allocs)
		}
	}
}

func TestReaderReceive(t *testing.T) {
	t.Parallel()
	type point struct{ X, Y int }
	stream := frames(`{"X":1,"Y":2}`, `"not a point"`, `{"X":3,"Y":4}`, `{"X":`)
	r := jsonconn.NewReader(bytes.NewReader(stream), nil)

	var p point
	if err := r.Receive(p); err == nil {
		t.Fatal("Receive into a non-pointer succeeded")
	}
	if err := r.Receive(&p); err != nil || p != (point{1, 2}) {
		t.Fatalf("Receive = %+v, %v; want {1 2}, nil (the refused call must not consume)", p, err)
	}
	// A type mismatch consumes the message and leaves the stream usable.
	var ute *json.UnmarshalTypeError
	if err := r.Receive(&p); !errors.As(err, &ute) {
		t.Fatalf("Receive of a string into a struct: got %v, want *json.UnmarshalTypeError", err)
	}
	if err := r.Receive(&p); err != nil || p != (point{3, 4}) {
		t.Fatalf("Receive after a type mismatch = %+v, %v; want {3 4}, nil", p, err)
	}
	// A syntax error is the peer's fault: it ends the stream.
	err := r.Receive(&p)
	var ije *jsonconn.InvalidJSONError
	var se *json.SyntaxError
	if !errors.As(err, &ije) || !errors.As(err, &se) || ije.Offset != 5 {
		t.Fatalf("Receive of a truncated object: got %#v, want *InvalidJSONError at offset 5 wrapping *json.SyntaxError", err)
	}
	if err2 := r.Receive(&p); err2 != err {
		t.Fatalf("after invalid JSON: got %v, want the same error again", err2)
	}

	// Without validation a syntax error in Receive is the caller's business.
	r = jsonconn.NewReader(bytes.NewReader(frames(`{`, `{"X":5,"Y":6}`)), &jsonconn.Config{DisableValidation: true})
	if err := r.Receive(&p); !errors.As(err, &se) || errors.Is(err, jsonconn.ErrInvalidJSON) {
		t.Fatalf("unvalidated Receive of %q: got %v, want a plain *json.SyntaxError", "{", err)
	}
	if err := r.Receive(&p); err != nil || p != (point{5, 6}) {
		t.Fatalf("Receive after it = %+v, %v; want {5 6}, nil", p, err)
	}
}

// embedded decodes a JSON document carried inside a JSON string, so its
// UnmarshalJSON can fail with a *json.SyntaxError on a valid payload.
type embedded struct{ V any }

func (e *embedded) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), &e.V)
}

func TestReaderReceiveUnmarshalerSyntaxErrorIsNotThePeers(t *testing.T) {
	t.Parallel()
	r := jsonconn.NewReader(bytes.NewReader(frames(`{"X":"{not json"}`, `{"X":"[1]"}`)), nil)
	var v struct{ X embedded }
	var se *json.SyntaxError
	if err := r.Receive(&v); !errors.As(err, &se) || errors.Is(err, jsonconn.ErrInvalidJSON) {
		t.Fatalf("got %v, want the UnmarshalJSON's *json.SyntaxError, not ErrInvalidJSON", err)
	}
	if err := r.Receive(&v); err != nil {
		t.Fatalf("Receive after a decode error on a valid payload: %v; want the next message", err)
	}
	if diff := cmp.Diff([]any{1.0}, v.X.V); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

// badCountReader serves src through Reads that report count in place of the
// real one once after bytes of src have gone.
type badCountReader struct {
	src   io.Reader
	after int // good bytes before the bad count
	count func(p []byte) int
}

func (b *badCountReader) Read(p []byte) (int, error) {
	if b.after <= 0 {
		return b.count(p), nil
	}
	n, err := b.src.Read(p[:min(len(p), b.after)])
	b.after -= n
	return n, err
}

// TestReaderRefusesInvalidCounts: a source whose Read reports a count below
// 0 or above len(p) ends the stream with an error, as bufio guards against
// the same, wherever in a frame it happens; it never panics or reads out of
// bounds.
func TestReaderRefusesInvalidCounts(t *testing.T) {
	t.Parallel()
	big := `"` + strings.Repeat("b", 20<<10) + `"` // read into place by AppendMessage
	for _, count := range []struct {
		name string
		f    func(p []byte) int
	}{
		{"negative", func([]byte) int { return -1 }},
		{"beyond p", func(p []byte) int { return len(p) + 1 }},
	} {
		for _, at := range []struct {
			name  string
			after int
		}{
			{"first read", 0},
			{"mid-header", 2},
			{"mid-body", 6 + 100},
		} {
			for _, read := range []string{"ReadMessage", "AppendMessage"} {
				r := jsonconn.NewReader(&badCountReader{src: bytes.NewReader(frame(big)), after: at.after, count: count.f}, nil)
				var err error
				if read == "ReadMessage" {
					_, err = r.ReadMessage()
				} else {
					_, err = r.AppendMessage(nil)
				}
				if err == nil || !strings.Contains(err.Error(), "invalid count") {
					t.Errorf("%s count, %s, %s: got %v, want the invalid-count error", count.name, at.name, read, err)
					continue
				}
				if _, again := r.ReadMessage(); again != err {
					t.Errorf("%s count, %s, %s: the next read got %v, want the same error again", count.name, at.name, read, again)
				}
			}
		}
	}
}

// TestReaderDeadPeerEndsTheStream: ETIMEDOUT, which a read returns once
// TCP keep-alive found the peer gone, reports Timeout true like a deadline
// but is no deadline: it ends the stream, on a Reader and on a client Conn,
// where a deadline would have left the stream to resume.
func TestReaderDeadPeerEndsTheStream(t *testing.T) {
	t.Parallel()
	dead := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}
	if !dead.Timeout() {
		t.Fatal("ETIMEDOUT does not report Timeout true here: the test would prove nothing")
	}
	wire := frame(`"after"`)
	t.Run("Reader", func(t *testing.T) {
		// Part of a frame, then the dead peer, then the rest, which a
		// resumed stream would deliver.
		steps := []func(p []byte) (int, error){
			func(p []byte) (int, error) { return copy(p, wire[:3]), nil },
			func([]byte) (int, error) { return 0, dead },
			func(p []byte) (int, error) { return copy(p, wire[3:]), nil },
		}
		r := jsonconn.NewReader(readerFunc(func(p []byte) (int, error) {
			if len(steps) == 0 {
				return 0, io.EOF
			}
			step := steps[0]
			steps = steps[1:]
			return step(p)
		}), nil)
		for i := range 2 {
			if _, err := r.ReadMessage(); !errors.Is(err, syscall.ETIMEDOUT) {
				t.Fatalf("read %d = %v, want ETIMEDOUT", i, err)
			}
		}
	})
	t.Run("Conn", func(t *testing.T) {
		peer, raw := net.Pipe()
		calls := 0
		c := jsonconn.New(readFunc{raw, func(p []byte) (int, error) {
			if calls++; calls == 1 {
				return 0, dead
			}
			return raw.Read(p)
		}}, nil)
		t.Cleanup(func() { c.Close(); peer.Close() })
		go peer.Write(wire)
		for i := range 2 {
			if _, err := c.ReadMessage(); !errors.Is(err, syscall.ETIMEDOUT) {
				t.Fatalf("read %d = %v, want ETIMEDOUT: the read side ended", i, err)
			}
		}
	})
}

// readFunc is a net.Conn whose Read is read.
type readFunc struct {
	net.Conn
	read func([]byte) (int, error)
}

func (r readFunc) Read(p []byte) (int, error) { return r.read(p) }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestReaderNamesWhatATextHeaderProbablyIs: a header over the cap whose
// bytes are not a length (a PROXY protocol header, HTTP, a TLS record,
// text) gets a FrameSizeError that quotes them and names the likely cause.
// A header that is merely too large, and a caller's own oversized message,
// get none.
func TestReaderNamesWhatATextHeaderProbablyIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stream string
		want         string // in the message; "" for no hint
	}{
		{"PROXY v1", "PROXY TCP4 192.0.2.1 192.0.2.2 5000 7000\r\n", `its header "PROX" looks like a PROXY protocol v1 header`},
		{"PROXY v2", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c", `its header "\r\n\r\n" looks like a PROXY protocol v2 header`},
		{"HTTP", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", `its header "GET " looks like HTTP`},
		{"TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", `its header "\x16\x03\x01\x02" looks like a TLS record`},
		{"newline-delimited JSON", `{"op":"ping"}` + "\n", `looks like JSON text without a length header`},
		{"too large", "\x00\x04\x00\x01", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := jsonconn.NewReader(strings.NewReader(tt.stream), nil).ReadMessage()
			var fe *jsonconn.FrameSizeError
			if !errors.As(err, &fe) || !errors.Is(err, jsonconn.ErrFrameTooLarge) {
				t.Fatalf("got %v, want a *FrameSizeError", err)
			}
			msg := err.Error()
			if tt.want == "" && strings.Contains(msg, "looks like") || !strings.Contains(msg, tt.want) {
				t.Fatalf("got %q, want it to say %q", msg, tt.want)
			}
		})
	}
	t.Run("legal lengths over a smaller cap", func(t *testing.T) {
		// A framed-JSON peer whose cap is larger than ours may send these
		// lengths: its JSON body must not be taken for another protocol.
		for _, n := range []uint32{0x16030101, 0x0D0A0D0A, 0x2A303132} {
			stream := append(binary.BigEndian.AppendUint32(nil, n), `["x"]`...)
			_, err := jsonconn.NewReader(bytes.NewReader(stream), &jsonconn.Config{MaxFrameSize: 128 << 20}).ReadMessage()
			if !errors.Is(err, jsonconn.ErrFrameTooLarge) || strings.Contains(err.Error(), "looks like") {
				t.Errorf("a frame of %d bytes: got %v, want a FrameSizeError with no guess at another protocol", n, err)
			}
		}
	})
	t.Run("the caller's own message", func(t *testing.T) {
		w := jsonconn.NewWriter(io.Discard, &jsonconn.Config{MaxFrameSize: 8, DisableValidation: true})
		_, err := w.Write([]byte("GET / HTTP/1.1\r\n"))
		if !errors.Is(err, jsonconn.ErrFrameTooLarge) || strings.Contains(err.Error(), "looks like") {
			t.Fatalf("got %v, want a FrameSizeError with no hint", err)
		}
	})
}

// nthReadConn runs fail on its nth Read; the others read the conn.
type nthReadConn struct {
	net.Conn
	n     int32
	calls atomic.Int32
	fail  func() (int, error)
}

func (c *nthReadConn) Read(p []byte) (int, error) {
	if c.calls.Add(1) == c.n {
		return c.fail()
	}
	return c.Conn.Read(p)
}

// TestConnPanickingReadReleasesTheBuffer: a source whose Read panics ends the
// stream, and the buffer of the frame it was reading goes, as on every other
// end of the stream, rather than staying for as long as the Conn lives.
func TestConnPanickingReadReleasesTheBuffer(t *testing.T) {
	t.Parallel()
	for _, panics := range []bool{false, true} {
		name := "error"
		if panics {
			name = "panic"
		}
		t.Run(name, func(t *testing.T) {
			a, b := net.Pipe()
			defer b.Close()
			src := &nthReadConn{Conn: a, n: 4, fail: func() (int, error) {
				if panics {
					panic("source broke")
				}
				return 0, errors.New("source broke")
			}}
			c := jsonconn.New(src, nil)
			defer c.Close()
			go func() {
				frame := binary.BigEndian.AppendUint32(nil, 200<<10)
				frame = append(frame, '"')
				frame = append(frame, strings.Repeat("x", 100<<10)...)
				b.Write(frame) // the first half of a 200 KiB frame
			}()
			func() {
				defer func() { recover() }()
				c.ReadMessage()
			}()
			if _, err := c.ReadMessage(); err == nil {
				t.Fatal("the stream did not end")
			}
			if h := c.Held(); h != 0 {
				t.Errorf("after the stream ended by a %s of the source, the Conn holds %d bytes of buffer; want 0", name, h)
			}
			c.Close()
			if h := c.Held(); h != 0 {
				t.Errorf("after Close, the Conn holds %d bytes of buffer; want 0", h)
			}
		})
	}
}

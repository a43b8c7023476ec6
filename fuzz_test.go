package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"

	"github.com/jsonconn/jsonconn"
)

// fuzzCap maps the fuzzer's cap byte to a frame cap: small caps make the
// cap's edges reachable, and 0 stands for the default.
func fuzzCap(c uint8) int {
	if c == 0 {
		return jsonconn.DefaultMaxFrameSize
	}
	return int(c)
}

// referenceDecode is the protocol written as plainly as possible, with
// io.ReadFull, to compare the Reader against.
func referenceDecode(stream []byte, maxSize int) (msgs [][]byte, end error) {
	r := bytes.NewReader(stream)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return msgs, err // io.EOF or io.ErrUnexpectedEOF
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if uint64(n) > uint64(maxSize) {
			return msgs, jsonconn.ErrFrameTooLarge
		}
		if int64(n) > int64(r.Len()) {
			return msgs, io.ErrUnexpectedEOF
		}
		p := make([]byte, n)
		io.ReadFull(r, p)
		if !json.Valid(p) {
			return msgs, jsonconn.ErrInvalidJSON
		}
		msgs = append(msgs, p)
	}
}

// FuzzReader feeds arbitrary streams to a Reader. It must never panic,
// deliver exactly what the plain reference decoder delivers (so never more
// than the cap and only valid JSON), end in io.EOF, io.ErrUnexpectedEOF or a
// typed error, and do so however the source splits the stream.
func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, stream []byte, capByte uint8) {
		maxSize := fuzzCap(capByte)
		wantMsgs, wantEnd := referenceDecode(stream, maxSize)
		for _, sr := range shortReads {
			r := jsonconn.NewReader(sr.wrap(bytes.NewReader(stream)), &jsonconn.Config{MaxFrameSize: maxSize})
			got, err := readMessages(r)
			for _, m := range got {
				if len(m) > maxSize || !json.Valid(m) {
					t.Fatalf("%s: delivered %q: over the cap of %d or not JSON", sr.name, m, maxSize)
				}
			}
			if !errors.Is(err, wantEnd) {
				t.Fatalf("%s: stream ended with %v, want %v", sr.name, err, wantEnd)
			}
			var fse *jsonconn.FrameSizeError
			var ije *jsonconn.InvalidJSONError
			if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &fse) && !errors.As(err, &ije) {
				t.Fatalf("%s: untyped end %#v", sr.name, err)
			}
			if len(got) != len(wantMsgs) {
				t.Fatalf("%s: got %d messages, want %d", sr.name, len(got), len(wantMsgs))
			}
			for i := range got {
				if !bytes.Equal(got[i], wantMsgs[i]) {
					t.Fatalf("%s: message %d = %q, want %q", sr.name, i, got[i], wantMsgs[i])
				}
			}
		}
		// Read returns the same bytes, never spanning two messages.
		r := jsonconn.NewReader(bytes.NewReader(stream), &jsonconn.Config{MaxFrameSize: maxSize})
		buf := make([]byte, 7)
		for i := 0; i < len(wantMsgs); i++ {
			var m []byte
			for len(m) < len(wantMsgs[i]) {
				n, err := r.Read(buf[:min(len(buf), len(wantMsgs[i])-len(m))])
				if err != nil {
					t.Fatalf("Read of message %d: %v", i, err)
				}
				m = append(m, buf[:n]...)
			}
			if !bytes.Equal(m, wantMsgs[i]) {
				t.Fatalf("Read message %d = %q, want %q", i, m, wantMsgs[i])
			}
		}
		if _, err := r.Read(buf); !errors.Is(err, wantEnd) {
			t.Fatalf("Read at the end = %v, want %v", err, wantEnd)
		}
	})
}

// FuzzRoundTrip writes arbitrary payloads through a Writer and reads them
// back through a Reader: each comes back byte-exact, or is refused with a
// typed error before anything is written.
func FuzzRoundTrip(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte, capByte uint8, validate bool) {
		maxSize := fuzzCap(capByte)
		cfg := &jsonconn.Config{MaxFrameSize: maxSize, DisableValidation: !validate}
		var wire bytes.Buffer
		w := jsonconn.NewWriter(&wire, cfg)
		n, err := w.Write(payload)
		tooLarge := len(payload) > maxSize
		invalid := validate && !json.Valid(payload)
		switch {
		case tooLarge:
			var fse *jsonconn.FrameSizeError
			if n != 0 || !errors.As(err, &fse) || fse.Size != int64(len(payload)) {
				t.Fatalf("Write of %d bytes over a cap of %d = %d, %v; want 0, *FrameSizeError", len(payload), maxSize, n, err)
			}
		case invalid:
			var ije *jsonconn.InvalidJSONError
			if n != 0 || !errors.As(err, &ije) || ije.Offset < 0 || ije.Offset > int64(len(payload)) {
				t.Fatalf("Write of invalid JSON %q = %d, %v; want 0, *InvalidJSONError", payload, n, err)
			}
		case err != nil || n != len(payload):
			t.Fatalf("Write(%q) = %d, %v", payload, n, err)
		}
		if err != nil {
			if wire.Len() != 0 {
				t.Fatalf("a refused payload wrote %d bytes", wire.Len())
			}
			return
		}
		r := jsonconn.NewReader(&wire, cfg)
		got, err := r.ReadMessage()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("read back %q, %v; want %q", got, err, payload)
		}
		if _, err := r.ReadMessage(); err != io.EOF {
			t.Fatalf("after the message: %v, want io.EOF", err)
		}
		// Send of the decoded value also round-trips, as compact JSON.
		if !validate || len(payload) == 0 {
			return
		}
		var v any
		if json.Unmarshal(payload, &v) != nil {
			return
		}
		wire.Reset()
		if err := w.Send(v); errors.Is(err, jsonconn.ErrFrameTooLarge) {
			return // compact output can still exceed a tiny cap if the input escaped less
		} else if err != nil {
			t.Fatalf("Send(%#v): %v", v, err)
		}
		var back any
		if err := jsonconn.NewReader(iotest.HalfReader(&wire), cfg).Receive(&back); err != nil {
			t.Fatalf("Receive after Send: %v", err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("Send/Receive changed %#v into %#v", v, back)
		}
	})
}

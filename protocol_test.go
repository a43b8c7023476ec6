package jsonconn_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/jsonconn/jsonconn"
)

// A vector is one row of the test-vector table in docs/protocol.md.
type vector struct {
	name     string
	cap      int
	stream   []byte
	payloads [][]byte
	end      error // io.EOF, io.ErrUnexpectedEOF, ErrFrameTooLarge or ErrInvalidJSON
}

var ends = map[string]error{
	"io.EOF":              io.EOF,
	"io.ErrUnexpectedEOF": io.ErrUnexpectedEOF,
	"ErrFrameTooLarge":    jsonconn.ErrFrameTooLarge,
	"ErrInvalidJSON":      jsonconn.ErrInvalidJSON,
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// protocolVectors parses the test vectors of docs/protocol.md, so that the
// spec and the code are checked against each other.
func protocolVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "| name | cap |") {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			t.Fatalf("docs/protocol.md: malformed vector row %q", line)
		}
		v := vector{name: strings.TrimSpace(cells[0])}
		if v.cap, err = strconv.Atoi(strings.TrimSpace(cells[1])); err != nil {
			t.Fatalf("vector %q: cap: %v", v.name, err)
		}
		hexText := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if hexText != "(empty)" {
			if v.stream, err = hex.DecodeString(strings.ReplaceAll(hexText, " ", "")); err != nil {
				t.Fatalf("vector %q: stream: %v", v.name, err)
			}
		}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[3], -1) {
			s := m[1]
			if end, ok := ends[s]; ok {
				v.end = end
				continue
			}
			if h, ok := strings.CutPrefix(s, "hex:"); ok {
				b, err := hex.DecodeString(h)
				if err != nil {
					t.Fatalf("vector %q: payload: %v", v.name, err)
				}
				v.payloads = append(v.payloads, b)
				continue
			}
			v.payloads = append(v.payloads, []byte(s))
		}
		if v.end == nil {
			t.Fatalf("vector %q: no end of stream", v.name)
		}
		vs = append(vs, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("docs/protocol.md: found %d vectors, want the whole table", len(vs))
	}
	return vs
}

// shortReads are the ways a source may hand out a stream: whole, a byte at a
// time, half of each request, or with its last data and the EOF together.
var shortReads = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"onebyte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"dataerr", iotest.DataErrReader},
}

// readMessages reads messages until the stream ends, and returns them with
// the error that ended it.
func readMessages(r *jsonconn.Reader) ([][]byte, error) {
	var msgs [][]byte
	for {
		m, err := r.ReadMessage()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// TestProtocolVectorsDecode checks that a Reader delivers what each vector of
// docs/protocol.md says, however the source splits the stream.
func TestProtocolVectorsDecode(t *testing.T) {
	t.Parallel()
	for _, v := range protocolVectors(t) {
		for _, sr := range shortReads {
			t.Run(v.name+"/"+sr.name, func(t *testing.T) {
				r := jsonconn.NewReader(sr.wrap(bytes.NewReader(v.stream)), &jsonconn.Config{MaxFrameSize: v.cap})
				got, err := readMessages(r)
				if diff := cmp.Diff(v.payloads, got); diff != "" {
					t.Errorf("payloads (-want +got):\n%s", diff)
				}
				if !errors.Is(err, v.end) {
					t.Errorf("end: got %v, want %v", err, v.end)
				}
				if v.end == io.EOF && err != io.EOF {
					t.Errorf("end: got %#v, want io.EOF itself", err)
				}
				// The end is sticky.
				if _, err2 := r.ReadMessage(); err2 != err {
					t.Errorf("after the end: got %v, want %v again", err2, err)
				}
			})
		}
	}
}

// TestProtocolVectorsEncode checks that writing the payloads of each cleanly
// ending vector produces exactly its bytes.
func TestProtocolVectorsEncode(t *testing.T) {
	t.Parallel()
	for _, v := range protocolVectors(t) {
		if v.end != io.EOF {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := jsonconn.NewWriter(&buf, &jsonconn.Config{MaxFrameSize: v.cap})
			for _, p := range v.payloads {
				if n, err := w.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", p, n, err, len(p))
				}
			}
			if got := buf.Bytes(); !bytes.Equal(got, v.stream) {
				t.Errorf("got % x, want % x", got, v.stream)
			}
		})
	}
}

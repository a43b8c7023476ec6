package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jsonconn/jsonconn"
)

// A lineReader reads stdin one line at a time. However long a line is, it
// holds at most max+2 bytes of it (the line and its "\r\n"), besides its
// 64 KiB read buffer.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
	n   int // number of the line last returned, from 1
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its "\n" or "\r\n" and its length. A
// line longer than max comes back as nil with its full length; its bytes are
// discarded as they are read. A last line without "\n" is returned before
// io.EOF. The line is valid until the next call.
func (lr *lineReader) next() (line []byte, size int64, err error) {
	lr.buf = lr.buf[:0]
	long := false
	for {
		chunk, err := lr.r.ReadSlice('\n')
		size += int64(len(chunk))
		if !long && len(lr.buf)+len(chunk) <= lr.max+2 { // the line, '\r' and '\n'
			lr.buf = append(lr.buf, chunk...)
		} else {
			long = true
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && size > 0:
			// The last line has no '\n'.
		case err != nil:
			return nil, 0, err
		}
		lr.n++
		// Take the line end off: from the line if it was kept, from the
		// size alone if not.
		end := chunk
		if !long {
			end = lr.buf
		}
		n := len(end)
		if n > 0 && end[n-1] == '\n' {
			n--
			if n > 0 && end[n-1] == '\r' {
				n--
			}
		}
		size -= int64(len(end) - n)
		if long || size > int64(lr.max) {
			return nil, size, nil
		}
		return lr.buf[:n], size, nil
	}
}

// A sender sends the lines of stdin to whoever sendLine says, applying the
// -bad policy to the lines that cannot be sent.
type sender struct {
	e      *env
	cmd    string // for messages: "dial" or "listen"
	policy badPolicy
	max    int
	bad    atomic.Int64 // lines refused
	line   int          // the stdin line being sent, while send runs
}

// errStopped reports that -bad=stop ended the input.
var errStopped = errors.New("stopped at a refused line")

// run reads stdin to its end and calls send for each line that is not blank.
// For a line it refuses, send returns an error for which refused reports
// true (as the library's Write does for a line that is not JSON); run
// reports those and applies the policy, and returns any other error at once. It returns nil at the end
// of stdin, or errStopped.
func (s *sender) run(stdin io.Reader, send func(line []byte) error) error {
	lr := newLineReader(stdin, s.max)
	for {
		line, size, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading stdin: %w", err)
		}
		// Whitespace around the value is not sent, and a blank line is
		// not a message.
		lead := 0
		if line != nil {
			trimmed := bytes.TrimLeft(line, " \t\r")
			lead = len(line) - len(trimmed)
			if line = bytes.TrimRight(trimmed, " \t\r"); len(line) == 0 {
				continue
			}
		}
		if line == nil {
			err = &jsonconn.FrameSizeError{Size: size, Max: int64(s.max)}
		} else {
			s.line = lr.n
			err = send(line)
		}
		if err == nil {
			continue
		}
		if !refused(err) {
			return fmt.Errorf("stdin:%d: not sent: %w", lr.n, err)
		}
		s.bad.Add(1)
		fmt.Fprintf(s.e.stderr, "jsonconn %s: stdin:%d: %s; not sent\n", s.cmd, lr.n, describeRefusal(err, size, s.max, lead))
		if s.policy == badStop {
			return errStopped
		}
	}
}

// refused reports whether err refuses one line, rather than ending the
// input: the line is not JSON, or is over the cap.
func refused(err error) bool {
	return errors.Is(err, jsonconn.ErrInvalidJSON) || errors.Is(err, jsonconn.ErrFrameTooLarge)
}

// describeRefusal says why a line was refused, in the words of a user who
// typed it; lead is the number of blanks that began the line.
func describeRefusal(err error, size int64, max, lead int) string {
	var fse *jsonconn.FrameSizeError
	if errors.As(err, &fse) {
		return fmt.Sprintf("line of %d bytes is over the %d-byte cap (-max-frame)", size, max)
	}
	var ije *jsonconn.InvalidJSONError
	if errors.As(err, &ije) {
		// Offset counts the bytes read when the error was found, which is
		// the error's column in a line that starts at column 1, unless
		// the line ended first.
		where := fmt.Sprintf("column %d", lead+int(ije.Offset))
		if ije.Offset >= size-int64(lead) {
			where = "at the end of the line"
		}
		if ije.Err != nil {
			return fmt.Sprintf("not JSON: %v (%s)", ije.Err, where)
		}
		return fmt.Sprintf("not JSON (%s)", where)
	}
	return err.Error()
}

// A printer writes messages to stdout, one line each, or indented with
// -pretty. It is safe for concurrent use and flushes after every message,
// so that output appears as messages arrive.
type printer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	pretty bool
	tmp    bytes.Buffer
}

func newPrinter(w io.Writer, pretty bool) *printer {
	return &printer{w: bufio.NewWriterSize(w, 64<<10), pretty: pretty}
}

// print writes prefix, payload and suffix as one line (or one indented
// block). The payload must be valid JSON, as a jsonconn Conn delivers it.
func (p *printer) print(prefix string, payload []byte, suffix string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tmp.Reset()
	p.tmp.WriteString(prefix)
	p.tmp.Write(payload)
	p.tmp.WriteString(suffix)
	out := p.tmp.Bytes()
	if p.pretty {
		var ind bytes.Buffer
		if err := json.Indent(&ind, out, "", "  "); err != nil {
			return err
		}
		out = ind.Bytes()
	} else if bytes.ContainsAny(payload, "\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, out); err != nil {
			return err
		}
		out = c.Bytes()
	}
	p.w.Write(out)
	p.w.WriteByte('\n')
	return p.w.Flush()
}

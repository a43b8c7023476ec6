package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jsonconn/jsonconn/internal/sniff"
)

// tap: a transparent proxy that prints the frames passing through it.

func runTap(args []string, e *env) int {
	fs := newFlagSet(e, "tap", "[flags] LISTEN_ADDR TARGET_ADDR", `Accept connections on LISTEN_ADDR, connect each to TARGET_ADDR, forward every
byte unchanged in both directions, and print what passes: one line per frame
with the connection's number, the direction (c>s from the client that
connected to tap, s>c from the target), the time, the length and the message;
the connections as they open and close, with the side that closed and how
(FIN, passed on as a half-close; RST, passed on as a reset); and protocol
violations, naming the side that broke the rule and the rule: a header over
the cap (-max-frame, the cap tap checks against), a payload that is not JSON,
a frame cut by the end of the stream.

tap never changes, reorders or drops traffic, and holds none of it back beyond
its own copy: a violation is reported and its bytes still pass, so the output
shows what the real peer does with them. A peer that stops reading stops the
other side, as it would without tap. A message longer than -max-print is
shortened in the output only. Memory per connection stays under about
2 x (cap + 4) bytes plus fixed buffers, whatever the peers announce: after a
header over the cap, the rest of that direction passes unparsed. TLS passes as
opaque bytes, and tap says so; it shows no frames of an encrypted connection.

The table goes to stdout; -json prints one JSON object per line instead. The
address listened on is printed on stderr. tap runs until SIGINT or SIGTERM.`)
	maxFrame := maxFrameFlag(fs)
	jsonOut := fs.Bool("json", false, "print NDJSON, one object per frame or event, instead of the table")
	maxPrint := sizeValue(256)
	fs.Var(&maxPrint, "max-print", "print at most this many `bytes` of each message (the traffic is never shortened)")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "how long connecting to TARGET_ADDR may take")
	if status, ok := fs.parse(args, 2); !ok {
		return status
	}
	lnet, laddr, err := parseAddr(fs.pos[0])
	if err != nil {
		return fs.usageError("%v", err)
	}
	tnet, taddr, err := parseAddr(fs.pos[1])
	if err != nil {
		return fs.usageError("%v", err)
	}
	if *dialTimeout <= 0 {
		return fs.usageError("-dial-timeout must be positive")
	}
	ctx, signalStatus, stop := interrupts(e, "tap")
	defer stop()

	ln, err := net.Listen(lnet, laddr)
	if err != nil {
		fmt.Fprintf(e.stderr, "jsonconn tap: %v\n", err)
		return exitError
	}
	if lnet == "unix" {
		atForcedExit(func() { os.Remove(laddr) })
	}
	fmt.Fprintf(e.stderr, "jsonconn tap: listening on %s, forwarding to %s\n", addrString(ln.Addr()), fs.pos[1])

	t := newTap(&tapPrinter{w: e.stdout, json: *jsonOut, maxPrint: int(maxPrint)}, int(*maxFrame), tnet, taddr, *dialTimeout)
	accepted := make(chan error, 1)
	go func() { accepted <- t.serve(ln) }()
	status := exitOK
	select {
	case <-ctx.Done():
		status = signalStatus()
	case err := <-accepted:
		fmt.Fprintf(e.stderr, "jsonconn tap: %v\n", err)
		status = exitError
	}
	ln.Close()
	t.closeAll()
	return status
}

// A tap serves the connections of one listener.
type tap struct {
	out              *tapPrinter
	max              int // the cap tap checks against
	network, address string
	dialTimeout      time.Duration

	ctx    context.Context // ends at closeAll, cutting pending dials short
	cancel context.CancelFunc

	mu     sync.Mutex
	last   int
	conns  map[*tapConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newTap(out *tapPrinter, max int, network, address string, dialTimeout time.Duration) *tap {
	ctx, cancel := context.WithCancel(context.Background())
	return &tap{out: out, max: max, network: network, address: address, dialTimeout: dialTimeout,
		ctx: ctx, cancel: cancel, conns: make(map[*tapConn]struct{})}
}

// serve accepts connections until the listener is closed.
func (t *tap) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			c.Close()
			return nil
		}
		t.last++
		tc := &tapConn{t: t, id: t.last, client: c}
		t.conns[tc] = struct{}{}
		t.wg.Add(1)
		t.mu.Unlock()
		go tc.run()
	}
}

// closeAll closes every connection and waits for their goroutines.
func (t *tap) closeAll() {
	t.cancel()
	t.mu.Lock()
	t.closed = true
	for tc := range t.conns {
		tc.client.Close()
		if tc.target != nil {
			tc.target.Close()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// A tapConn is one client's connection and the one tap made for it to the
// target.
type tapConn struct {
	t      *tap
	id     int
	client net.Conn
	target net.Conn    // set under t.mu
	opaque atomic.Bool // TLS seen: parse nothing more, either way
}

// Directions, as the output names them.
const (
	clientToTarget = "c>s"
	targetToClient = "s>c"
)

func (tc *tapConn) run() {
	t := tc.t
	defer func() {
		t.mu.Lock()
		delete(t.conns, tc)
		t.mu.Unlock()
		t.wg.Done()
	}()
	defer tc.client.Close()
	ctx, cancel := context.WithTimeout(t.ctx, t.dialTimeout)
	var d net.Dialer
	target, err := d.DialContext(ctx, t.network, t.address)
	cancel()
	if err != nil {
		t.out.event(tc.id, "error", "", "", fmt.Sprintf("connecting to the target: %v; closing the client's connection", err))
		return
	}
	t.mu.Lock()
	tc.target = target
	closed := t.closed
	t.mu.Unlock()
	defer target.Close()
	if closed {
		return
	}
	t.out.event(tc.id, "open", "", "", fmt.Sprintf("client %s, target %s", peerName(tc.client.RemoteAddr()), addrString(target.RemoteAddr())))
	var wg sync.WaitGroup
	wg.Add(2)
	var up, down string
	go func() { defer wg.Done(); up = tc.pump(tc.client, target, clientToTarget) }()
	go func() { defer wg.Done(); down = tc.pump(target, tc.client, targetToClient) }()
	wg.Wait()
	t.out.event(tc.id, "close", "", "", fmt.Sprintf("closed (c>s: %s; s>c: %s)", up, down))
}

// side names the sender of a direction.
func side(dir string) string {
	if dir == clientToTarget {
		return "client"
	}
	return "target"
}

// pump copies src to dst, each read written whole before the next read,
// so that a dst that does not read stops src, and follows the frames it
// copies. It passes on a FIN as a half-close and a reset as a reset, and
// returns how the direction ended.
func (tc *tapConn) pump(src, dst net.Conn, dir string) string {
	out := tc.t.out
	s := &tapStream{max: tc.t.max}
	emit := func(ev tapEvent) {
		switch ev.kind {
		case "frame":
			out.frame(tc.id, dir, ev.payload, ev.valid)
		case "tls":
			tc.opaque.Store(true)
			out.event(tc.id, "tls", dir, side(dir), "TLS: the connection is encrypted; tap forwards it as opaque bytes and shows no frames")
		default:
			out.event(tc.id, "violation", dir, side(dir), "violation by the "+side(dir)+": "+ev.detail)
		}
	}
	buf := make([]byte, 32<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				// dst has gone. A reset passes on as a reset (the other
				// direction may have ended already, after a FIN); otherwise
				// its own direction says how. Close both so that src
				// learns of it.
				if errors.Is(werr, syscall.ECONNRESET) || errors.Is(werr, syscall.EPIPE) {
					out.event(tc.id, "reset", otherDir(dir), side(otherDir(dir)), "RST: the "+side(otherDir(dir))+" reset the connection; passed on as a reset")
					if tcp, ok := src.(*net.TCPConn); ok {
						tcp.SetLinger(0)
					}
				}
				src.Close()
				dst.Close()
				return "the " + side(otherDir(dir)) + " went away"
			}
			if !tc.opaque.Load() {
				s.feed(buf[:n], emit)
			}
		}
		if rerr == nil {
			continue
		}
		switch {
		case errors.Is(rerr, io.EOF):
			// Only the sender's own end of stream cuts its frame: a reset
			// or tap's close is not the sender's doing.
			if detail := s.cut(); detail != "" {
				if !tc.opaque.Load() {
					emit(tapEvent{kind: "violation", detail: detail})
				}
			}
			out.event(tc.id, "fin", dir, side(dir), "FIN: the "+side(dir)+" closed its side; passed on as a half-close")
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
			return "FIN"
		case errors.Is(rerr, syscall.ECONNRESET):
			out.event(tc.id, "reset", dir, side(dir), "RST: the "+side(dir)+" reset the connection; passed on as a reset")
			if tcp, ok := dst.(*net.TCPConn); ok {
				tcp.SetLinger(0)
			}
			dst.Close()
			src.Close()
			return "RST"
		case errors.Is(rerr, net.ErrClosed):
			return "closed by tap"
		}
		out.event(tc.id, "error", dir, side(dir), fmt.Sprintf("reading from the %s: %v", side(dir), rerr))
		dst.Close()
		src.Close()
		return rerr.Error()
	}
}

func otherDir(dir string) string {
	if dir == clientToTarget {
		return targetToClient
	}
	return clientToTarget
}

// A tapEvent is what a tapStream found: a frame, a violation, or TLS.
type tapEvent struct {
	kind    string // "frame", "violation" or "tls"
	payload []byte // a frame's payload, valid until feed returns
	valid   bool   // a frame's payload is JSON
	detail  string // a violation's description, with its rule
}

// A tapStream follows the frames of one direction of a connection from the
// bytes that pass, without holding any of them back. It holds at most the
// 4 bytes of a header and the payload of one frame, at most the cap, and
// only as much of it as has arrived; after a header over the cap it stops.
type tapStream struct {
	max    int
	hdr    [4]byte
	nhdr   int
	want   int    // the payload's length, once the header is whole
	body   []byte // the payload so far, while nhdr == 4
	frames int    // frames seen
	off    bool   // framing lost: the rest passes unparsed
	first  []byte // the first bytes of the direction, up to 16, for naming a protocol
}

// feed follows the frames in p, calling emit for each whole frame, each
// violation and TLS.
func (s *tapStream) feed(p []byte, emit func(tapEvent)) {
	if len(s.first) < 16 {
		s.first = append(s.first, p[:min(len(p), 16-len(s.first))]...)
	}
	for len(p) > 0 && !s.off {
		if s.nhdr < 4 {
			k := copy(s.hdr[s.nhdr:], p)
			s.nhdr += k
			p = p[k:]
			if s.nhdr < 4 {
				return
			}
			n := uint64(s.hdr[0])<<24 | uint64(s.hdr[1])<<16 | uint64(s.hdr[2])<<8 | uint64(s.hdr[3])
			if n > uint64(s.max) {
				s.off = true
				// What follows the header helps name what it is.
				look := append(s.hdr[:4:4], p[:min(len(p), 12)]...)
				if s.frames == 0 {
					look = s.first
				}
				hint := sniff.Header(look, uint32(s.max))
				if strings.Contains(hint, "TLS record") {
					emit(tapEvent{kind: "tls"})
					return
				}
				detail := fmt.Sprintf("a header of %d bytes, over the cap of %d (protocol.md §2): a receiver closes the connection", n, s.max)
				if hint != "" {
					detail += "; the bytes look like " + hint
				}
				emit(tapEvent{kind: "violation", detail: detail + "; the rest of this direction passes unparsed"})
				s.body = nil
				return
			}
			s.want = int(n)
			if s.body == nil {
				s.body = make([]byte, 0, min(s.want, 4<<10))
			}
		}
		k := min(len(p), s.want-len(s.body))
		if len(s.body)+k > cap(s.body) {
			// Grow to what has arrived, doubling, never past the frame;
			// 2*cap is taken only below want/2, so it cannot overflow an
			// int on 32-bit platforms, where want may be 1 GiB.
			size := s.want
			if c := cap(s.body); c < s.want/2 {
				size = max(2*c, len(s.body)+k)
			}
			grown := make([]byte, len(s.body), size)
			copy(grown, s.body)
			s.body = grown
		}
		s.body = append(s.body, p[:k]...)
		p = p[k:]
		if len(s.body) < s.want {
			return
		}
		s.frames++
		valid := json.Valid(s.body)
		emit(tapEvent{kind: "frame", payload: s.body, valid: valid})
		if !valid {
			emit(tapEvent{kind: "violation", detail: fmt.Sprintf("a payload that is not JSON (protocol.md §3): a receiver that validates closes the connection; it began %s", quoteClip(s.body, 40))})
		}
		s.nhdr = 0
		if cap(s.body) > 64<<10 {
			s.body = nil // an idle connection keeps no large buffer
		} else {
			s.body = s.body[:0]
		}
	}
}

// cut returns the violation of a stream that ends in the middle of a frame,
// or "" if it ends between frames (or unparsed).
func (s *tapStream) cut() string {
	if s.off || s.nhdr == 0 {
		return ""
	}
	if s.nhdr < 4 {
		return fmt.Sprintf("the stream ended %d bytes into a frame header (protocol.md §4): a truncated frame", s.nhdr)
	}
	return fmt.Sprintf("the stream ended %d bytes into a payload of %d (protocol.md §4): a truncated frame, which a receiver does not deliver", len(s.body), s.want)
}

// quoteClip quotes at most n bytes of b, saying how long it was.
func quoteClip(b []byte, n int) string {
	if len(b) <= n {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:n])) + "…"
}

// A tapPrinter writes tap's output, a line at a time.
type tapPrinter struct {
	mu       sync.Mutex
	w        io.Writer
	json     bool
	maxPrint int
	line     []byte // the line being written, reused; guarded by mu
}

// tapLine is one line of -json output.
type tapLine struct {
	Conn      int             `json:"conn"`
	Event     string          `json:"event"`
	Dir       string          `json:"dir,omitempty"`
	Side      string          `json:"side,omitempty"`
	Time      string          `json:"time"`
	Len       *int            `json:"len,omitempty"`
	Msg       json.RawMessage `json:"msg,omitempty"`
	Text      string          `json:"text,omitempty"`
	Truncated bool            `json:"truncated,omitempty"`
	Detail    string          `json:"detail,omitempty"`
}

// frame prints a frame's line; valid says whether payload is JSON. A
// payload that is JSON and valid UTF-8 is printed as JSON, compacted;
// anything else as a quoted string, so that no peer can put raw bytes on
// the terminal or invalid UTF-8 in a -json line.
func (p *tapPrinter) frame(id int, dir string, payload []byte, valid bool) {
	now := time.Now()
	printable := valid && utf8.Valid(payload)
	shown, truncated := p.shorten(payload, printable)
	if p.json {
		n := len(payload)
		l := tapLine{Conn: id, Event: "frame", Dir: dir, Side: side(dir), Time: now.Format(time.RFC3339Nano), Len: &n}
		if printable && !truncated {
			l.Msg = shown
		} else {
			l.Text, l.Truncated = string(shown), truncated
		}
		p.writeJSON(l)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.prefix(p.line[:0], id, dir, now)
	b = append(b, "  "...)
	var num [20]byte
	n := strconv.AppendInt(num[:0], int64(len(payload)), 10)
	for range 7 - len(n) {
		b = append(b, ' ')
	}
	b = append(b, n...)
	b = append(b, "  "...)
	if printable {
		b = append(b, shown...) // compact JSON, valid UTF-8: one line, no control bytes
	} else {
		b = strconv.AppendQuote(b, string(shown))
	}
	if truncated {
		b = append(b, "… ("...)
		b = strconv.AppendInt(b, int64(len(payload)), 10)
		b = append(b, " bytes)"...)
	}
	b = append(b, '\n')
	p.w.Write(b)
	p.line = b
}

// prefix appends the columns every table line starts with: the
// connection, the direction or event, the time.
func (p *tapPrinter) prefix(b []byte, id int, col string, now time.Time) []byte {
	b = append(b, '#')
	var num [20]byte
	n := strconv.AppendInt(num[:0], int64(id), 10)
	b = append(b, n...)
	for range 3 - len(n) {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	b = append(b, col...)
	for range 5 - len(col) {
		b = append(b, ' ')
	}
	b = append(b, ' ')
	return now.AppendFormat(b, "15:04:05.000000")
}

// shorten returns what the output shows of payload: at most maxPrint
// bytes, cut at a character's boundary, and whether that is all of it. A
// JSON payload is compacted as it is cut, so that a frame never costs more
// than maxPrint bytes of output buffer, whatever white space it holds.
func (p *tapPrinter) shorten(payload []byte, isJSON bool) ([]byte, bool) {
	shown := payload
	if isJSON && bytes.ContainsAny(payload, " \t\r\n") {
		shown = compactPrefix(payload, p.maxPrint+1)
	}
	if len(shown) <= p.maxPrint {
		return shown, false
	}
	cut := p.maxPrint
	for cut > 0 && !utf8.RuneStart(shown[cut]) {
		cut--
	}
	return shown[:cut], true
}

// compactPrefix returns the first n bytes (or fewer) of valid JSON b
// without its insignificant white space: the white space outside strings.
func compactPrefix(b []byte, n int) []byte {
	out := make([]byte, 0, min(n, len(b)))
	inString, escaped := false, false
	for _, c := range b {
		if len(out) == n {
			break
		}
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		}
		out = append(out, c)
	}
	return out
}

// event prints an event's line: open, close, fin, reset, violation, tls or
// error.
func (p *tapPrinter) event(id int, kind, dir, who, detail string) {
	now := time.Now()
	if p.json {
		p.writeJSON(tapLine{Conn: id, Event: kind, Dir: dir, Side: who, Time: now.Format(time.RFC3339Nano), Detail: detail})
		return
	}
	col := kind
	if dir != "" {
		col = dir
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.prefix(p.line[:0], id, col, now)
	b = append(append(append(b, "  "...), detail...), '\n')
	p.w.Write(b)
	p.line = b
}

// writeJSON writes l as one line of JSON, with <, > and & as themselves:
// "c>s", as the table prints it.
func (p *tapPrinter) writeJSON(l tapLine) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		b.Reset()
		fmt.Fprintf(&b, "%q\n", err.Error())
	}
	p.writeLine(b.String())
}

func (p *tapPrinter) writeLine(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, s)
}

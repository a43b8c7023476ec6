package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jsonconn/jsonconn"
)

// startTap runs jsonconn tap in front of target and returns it and the
// address it listens on.
func startTap(t *testing.T, target string, flags ...string) (*proc, string) {
	t.Helper()
	args := append(append([]string{"tap"}, flags...), "127.0.0.1:0", target)
	p := start(t, strings.NewReader(""), args...)
	return p, awaitOutput(t, p.stderr, `listening on (127\.0\.0\.1:\d+), forwarding`)
}

// tapLines returns tap's table output one string per line, with the times
// as T and each run of spaces as one.
func tapLines(out string) []string {
	times := regexp.MustCompile(` \d\d:\d\d:\d\d\.\d{6} `)
	spaces := regexp.MustCompile(` +`)
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" {
			lines = append(lines, times.ReplaceAllString(spaces.ReplaceAllString(l, " "), " T "))
		}
	}
	return lines
}

// awaitLines waits until tap has printed at least n lines.
func awaitLines(t *testing.T, p *proc, n int) []string {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		lines := tapLines(p.stdout.String())
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("tap printed %d lines, want %d:\n%s", len(lines), n, strings.Join(lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTapInterop: the reference Node.js and Python peers connect through
// tap to jsonconn listen, which sends them stdin lines; they echo each. The
// traffic passes unchanged (listen prints the echoes), and tap's output is
// checked line by line, a violation of the peer's included: on
// {"cmd":"invalid"} the peer sends a frame that is not JSON, tap reports it
// and passes it on, and listen closes the connection.
func TestTapInterop(t *testing.T) {
	t.Parallel()
	for _, peer := range []struct{ name, cmd, script string }{
		{"node", "node", "../../interop/node/peer.js"},
		{"python", "python3", "../../interop/python/peer.py"},
	} {
		t.Run(peer.name, func(t *testing.T) {
			t.Parallel()
			path, err := exec.LookPath(peer.cmd)
			if err != nil {
				t.Fatalf("%s is not installed: %v", peer.cmd, err)
			}
			l := start(t, nil, "listen", "127.0.0.1:0")
			target := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
			tp, addr := startTap(t, target)
			host, port, _ := net.SplitHostPort(addr)
			cmd := exec.Command(path, peer.script, host, port)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })

			awaitOutput(t, l.stderr, `conn 1: opened`)
			io.WriteString(l.stdin, `{"hello":"`+peer.name+`","n":[1,2.5,"é🙂"]}`+"\n")
			awaitOutput(t, l.stdout, `\{"conn":1,"msg":\{"hello"`)
			awaitLines(t, tp, 3) // the echo's line, before the next message
			io.WriteString(l.stdin, `{"cmd":"invalid"}`+"\n")
			awaitOutput(t, l.stderr, `conn 1: closed`)

			hello := `{"hello":"` + peer.name + `","n":[1,2.5,"é🙂"]}`
			want := []string{
				`#1 open T client 127.0.0.1:\d+, target ` + regexp.QuoteMeta(target) + `$`,
				`#1 s>c T ` + strconv.Itoa(len(hello)) + ` ` + regexp.QuoteMeta(hello) + `$`,
				`#1 c>s T \d+ \{"hello":"` + peer.name + `",.*\}$`,
				`#1 s>c T 17 \{"cmd":"invalid"\}$`,
				`#1 c>s T \d+ ".*"$`,
				`#1 c>s T violation by the client: a payload that is not JSON \(protocol\.md §3\)`,
			}
			lines := awaitLines(t, tp, len(want)+1)
			for i, re := range want {
				if !regexp.MustCompile(`^` + re).MatchString(lines[i]) {
					t.Errorf("line %d = %q, want %q", i+1, lines[i], re)
				}
			}
			// listen closed the connection: the target's FIN passes on.
			awaitOutput(t, tp.stdout, `#1\s+s>c\s+\S+\s+FIN: the target closed its side; passed on as a half-close`)
		})
	}
}

// TestTapViolations: a client that breaks the protocol through tap to
// listen -echo. Each violation is reported with the side and the rule, and
// its bytes still reach listen, which closes as it would without tap.
func TestTapViolations(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "-echo", "127.0.0.1:0")
	target := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	tp, addr := startTap(t, target, "-max-frame", "1KiB")

	// A header over tap's cap (1 KiB), which listen's 256 KiB allows: tap
	// reports it and passes the frame on; listen echoes it.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := `"` + strings.Repeat("b", 2000) + `"`
	c.Write(frame(big))
	r := jsonconn.NewReader(c, nil)
	c.SetDeadline(time.Now().Add(hang))
	if m, err := r.ReadMessage(); err != nil || string(m) != big {
		t.Fatalf("the echo through tap of a frame over tap's cap = %d bytes, %v; want it passed on", len(m), err)
	}
	awaitOutput(t, tp.stdout, `#1\s+c>s\s+\S+\s+violation by the client: a header of 2002 bytes, over the cap of 1024 \(protocol\.md §2\).*passes unparsed`)
	awaitOutput(t, tp.stdout, `#1\s+s>c\s+\S+\s+violation by the target: a header of 2002 bytes`)
	c.Close()

	// A frame cut by the end of the stream.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(frame(`{"cut":"here"}`)[:9])
	c2.(*net.TCPConn).CloseWrite()
	awaitOutput(t, tp.stdout, `#2\s+c>s\s+\S+\s+violation by the client: the stream ended 5 bytes into a payload of 14 \(protocol\.md §4\)`)
	awaitOutput(t, tp.stdout, `#2\s+c>s\s+\S+\s+FIN: the client closed its side`)
	awaitOutput(t, l.stderr, `conn 2: closed: .*unexpected EOF`)
}

// TestTapHalfCloseAndReset: a FIN passes as a half-close, so the other
// side can still answer; a reset passes as a reset.
func TestTapHalfCloseAndReset(t *testing.T) {
	t.Parallel()
	got := make(chan string, 2)
	target := rawServer(t, func(c net.Conn) {
		b, err := io.ReadAll(c) // to the client's FIN
		if err != nil {
			got <- "read: " + err.Error()
			return
		}
		got <- string(b)
		c.Write(frame(`"after your FIN"`))
		// The second connection: read until the reset.
	})
	tp, addr := startTap(t, target)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hang))
	c.Write(frame(`"one"`))
	c.(*net.TCPConn).CloseWrite()
	if s := <-got; s != string(frame(`"one"`)) {
		t.Fatalf("the target read %q before the FIN", s)
	}
	m, err := jsonconn.NewReader(c, nil).ReadMessage()
	if err != nil || string(m) != `"after your FIN"` {
		t.Fatalf("the answer after a half-close = %q, %v", m, err)
	}
	awaitOutput(t, tp.stdout, `#1\s+c>s\s+\S+\s+FIN: the client closed its side; passed on as a half-close`)

	// A reset: the target's read fails with ECONNRESET, not EOF.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c2.Write(frame(`"two"`)[:3])
	awaitOutput(t, tp.stdout, `#2\s+open`)
	c2.(*net.TCPConn).SetLinger(0)
	c2.Close()
	select {
	case s := <-got:
		if !strings.Contains(s, "reset") {
			t.Errorf("the target's read after the client's reset = %q, want a reset", s)
		}
	case <-time.After(hang):
		t.Fatal("the reset did not reach the target")
	}
	awaitOutput(t, tp.stdout, `#2\s+c>s\s+\S+\s+RST: the client reset the connection; passed on as a reset`)
}

// TestTapBackpressure: a target that does not read stops the client: tap
// holds back nothing beyond its own 32 KiB copy, so what the client can
// write is the sockets' buffers, megabytes, not the 64 MiB check's
// stalled-reader case takes for buffering without bound.
func TestTapBackpressure(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	target := rawServer(t, func(c net.Conn) { <-release })
	defer close(release)
	_, addr := startTap(t, target)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chunk := bytes.Repeat(frame(`"`+strings.Repeat("p", 16<<10)+`"`), 16)
	sent := 0
	for sent < 64<<20 {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			if !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
				t.Fatalf("writing: %v", err)
			}
			break
		}
	}
	if sent >= 64<<20 {
		t.Fatalf("the client wrote %d bytes to a target that reads nothing: tap buffers without bound", sent)
	}
	t.Logf("pushed back after %.1f MiB", float64(sent)/(1<<20))
}

// TestTapBench: bench through tap to listen -echo checks every echoed byte,
// over several connections: tap is transparent under load.
func TestTapBench(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "-echo", "127.0.0.1:0")
	target := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	tp, addr := startTap(t, target, "-json", "-max-print", "1KiB")
	b := expect(t, exitOK, "", "bench", "-count", "3000", "-conns", "3", "-size", "300", addr)
	if !strings.Contains(b.stdout.String(), "3000 messages of 300 bytes echoed over 3 connection(s)") {
		t.Fatalf("bench through tap: %q", b.stdout)
	}
	// Each message, both ways, is one NDJSON line of tap's.
	deadline := time.Now().Add(hang)
	for strings.Count(tp.stdout.String(), `"event":"frame"`) < 6000 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	frames := 0
	for _, line := range strings.Split(strings.TrimSpace(tp.stdout.String()), "\n") {
		var l tapLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("a line of tap -json is not JSON: %q", line)
		}
		if l.Event == "violation" {
			t.Errorf("a violation in bench's traffic: %s", line)
		}
		if l.Event == "frame" {
			frames++
			if l.Len == nil || *l.Len != 300 || !json.Valid(l.Msg) || l.Dir == "" || l.Time == "" {
				t.Fatalf("frame line %s", line)
			}
		}
	}
	if frames != 6000 {
		t.Errorf("tap printed %d frames, want 6000", frames)
	}
}

// TestTapTLS: TLS passes through as opaque bytes, and tap says so once,
// with no frames and no violations.
func TestTapTLS(t *testing.T) {
	t.Parallel()
	cert, key := testCertFiles(t)
	l := start(t, strings.NewReader(""), "listen", "-echo", "-tls-cert", cert, "-tls-key", key, "127.0.0.1:0")
	target := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	tp, addr := startTap(t, target)
	d := expect(t, exitOK, "{\"over\":\"tls\"}\n", "dial", "-tls-ca", cert, addr)
	if got := d.stdout.String(); got != "{\"over\":\"tls\"}\n" {
		t.Fatalf("dial over TLS through tap printed %q", got)
	}
	awaitOutput(t, tp.stdout, `#1\s+close`)
	out := tp.stdout.String()
	if strings.Count(out, "TLS: the connection is encrypted") != 1 || strings.Contains(out, "violation") {
		t.Errorf("tap's output for a TLS connection:\n%s", out)
	}
}

// TestTapStreamMemory holds a direction's memory to the bound tap
// documents: at most the cap (plus the 4 header bytes, held apart) of
// payload, and no more than has arrived, whatever the peer announces.
func TestTapStreamMemory(t *testing.T) {
	t.Parallel()
	const max = 256 << 10
	var frames, violations int
	emit := func(ev tapEvent) {
		switch ev.kind {
		case "frame":
			frames++
		case "violation":
			violations++
		}
	}
	s := &tapStream{max: max}
	// A header of exactly the cap, then its body a byte at a time for a
	// while: the buffer never exceeds twice what arrived.
	s.feed([]byte{0, 4, 0, 0}, emit)
	for i := 1; i <= 10000; i++ {
		s.feed([]byte{'"'}, emit)
		if cap(s.body) > 2*i+4<<10 {
			t.Fatalf("after %d bytes of the body the buffer holds %d", i, cap(s.body))
		}
	}
	// The rest in large pieces: never past the cap.
	rest := bytes.Repeat([]byte{'"'}, max-10000)
	for len(rest) > 0 {
		k := min(len(rest), 50000)
		s.feed(rest[:k], emit)
		rest = rest[k:]
		if cap(s.body) > max {
			t.Fatalf("the buffer holds %d, over the cap of %d", cap(s.body), max)
		}
	}
	if frames != 1 || violations != 1 { // '"' × 262144 is not JSON
		t.Fatalf("%d frames, %d violations; want 1 and 1", frames, violations)
	}
	if s.body != nil {
		t.Errorf("an idle direction keeps a buffer of %d bytes after a large frame", cap(s.body))
	}
	// Headers over the cap: the direction stops holding anything.
	for _, h := range [][]byte{{0, 4, 0, 1}, {0xff, 0xff, 0xff, 0xff}} {
		s := &tapStream{max: max}
		s.feed(append(frame(`{"ok":1}`), h...), emit)
		for range 100 {
			s.feed(make([]byte, 64<<10), emit)
		}
		if !s.off || s.body != nil {
			t.Errorf("after a header of %x and 6.4 MB: off %v, buffer %d", h, s.off, cap(s.body))
		}
	}
}

// TestTapStreamFrames: frames split anywhere are found whole, and the
// violations are named.
func TestTapStreamFrames(t *testing.T) {
	t.Parallel()
	stream := append(append(frame(`{"a":1}`), frame(`[1, 2]`)...), frame(`{"a":`)...)
	stream = append(stream, frame(`"x"`)[:5]...)
	for _, size := range []int{1, 2, 3, 5, 7, len(stream)} {
		s := &tapStream{max: 1024}
		var got []string
		emit := func(ev tapEvent) {
			if ev.kind == "frame" {
				got = append(got, string(ev.payload))
			} else {
				got = append(got, ev.kind+": "+ev.detail)
			}
		}
		for p := stream; len(p) > 0; p = p[min(size, len(p)):] {
			s.feed(p[:min(size, len(p))], emit)
		}
		got = append(got, s.cut())
		want := []string{`{"a":1}`, `[1, 2]`, `{"a":`, `violation: a payload that is not JSON (protocol.md §3): a receiver that validates closes the connection; it began "{\"a\":"`,
			`the stream ended 1 bytes into a payload of 3 (protocol.md §4): a truncated frame, which a receiver does not deliver`}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("in pieces of %d:\n%s\nwant\n%s", size, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// A TLS ClientHello is named, and nothing more is parsed.
	s := &tapStream{max: 1024}
	var kinds []string
	s.feed([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), func(ev tapEvent) { kinds = append(kinds, ev.kind) })
	if strings.Join(kinds, ",") != "tls" || !s.off {
		t.Errorf("a ClientHello gave %v, off %v", kinds, s.off)
	}
}

// BenchmarkTap measures what tap costs the traffic through it: 1 KiB
// messages echoed by a jsonconn server, 64 in flight, directly and through
// tap (printing its table to io.Discard), in the same run.
func BenchmarkTap(b *testing.B) {
	srvLn, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srvLn.Close()
	go func() {
		for {
			c, err := srvLn.AcceptConn()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					m, err := c.ReadMessage()
					if err != nil {
						return
					}
					if _, err := c.Write(m); err != nil {
						return
					}
				}
			}()
		}
	}()
	tapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	tp := newTap(&tapPrinter{w: io.Discard, maxPrint: 256}, jsonconn.DefaultMaxFrameSize, "tcp", srvLn.Addr().String(), hang)
	go tp.serve(tapLn)
	defer func() { tapLn.Close(); tp.closeAll() }()

	msg := []byte(`"` + strings.Repeat("m", 1022) + `"`)
	for _, bc := range []struct{ name, addr string }{{"direct", srvLn.Addr().String()}, {"tap", tapLn.Addr().String()}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := jsonconn.Dial("tcp", bc.addr, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			window := make(chan struct{}, 64)
			done := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := c.ReadMessage(); err != nil {
						done <- err
						return
					}
					<-window
				}
				done <- nil
			}()
			b.ResetTimer()
			for range b.N {
				window <- struct{}{}
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// startTapInProcess serves a tap in this process in front of target, its
// output in the returned buffer, until the test ends.
func startTapInProcess(t *testing.T, target string, jsonOut bool, dialTimeout time.Duration) (*tap, net.Listener, *syncBuffer) {
	t.Helper()
	out := new(syncBuffer)
	tp := newTap(&tapPrinter{w: out, json: jsonOut, maxPrint: 256}, jsonconn.DefaultMaxFrameSize, "tcp", target, dialTimeout)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tp.serve(ln)
	t.Cleanup(func() { ln.Close(); tp.closeAll() })
	return tp, ln, out
}

// TestTapBlamesNoOneForItsOwnClose: when the target resets while the
// client is in the middle of a frame, tap passes the reset on and closes
// the client's side; the client's cut frame is not the client's violation.
func TestTapBlamesNoOneForItsOwnClose(t *testing.T) {
	t.Parallel()
	target := rawServer(t, func(c net.Conn) {
		io.ReadFull(c, make([]byte, 14)) // the header and 10 bytes of the body
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	_, ln, out := startTapInProcess(t, target, false, hang)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(append([]byte{0, 0, 0, 100}, `"aaaaaaaaa`...))
	awaitOutput(t, out, `#1\s+close`)
	if !strings.Contains(out.String(), "RST: the target reset the connection") || strings.Contains(out.String(), "violation") {
		t.Errorf("tap's output:\n%s", out)
	}
}

// TestTapPrintsOnlyText: a payload that json.Valid accepts but that holds
// invalid UTF-8, or control bytes, is printed quoted, so the table has no
// raw bytes of the peer's and every -json line is valid UTF-8 JSON; -json
// writes "c>s" as the table does, not "c\u003es"; and a payload with white
// space is compacted only as far as it is printed.
func TestTapPrintsOnlyText(t *testing.T) {
	t.Parallel()
	payloads := [][]byte{[]byte("\"bad \xff\xfe\""), []byte("\"é🙂x\""), []byte("[1,\n 2]"), []byte("\"\x1b[31m\"")}
	for _, jsonOut := range []bool{false, true} {
		for _, maxPrint := range []int{0, 1, 2, 3, 4, 7, 256} {
			var out syncBuffer
			p := &tapPrinter{w: &out, json: jsonOut, maxPrint: maxPrint}
			for _, m := range payloads {
				p.frame(1, clientToTarget, m, json.Valid(m))
			}
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				if !utf8.ValidString(line) || strings.ContainsAny(line, "\x1b\n\r") {
					t.Errorf("json %v, max-print %d: a line with raw bytes: %q", jsonOut, maxPrint, line)
				}
				if jsonOut {
					var l tapLine
					if err := json.Unmarshal([]byte(line), &l); err != nil || !strings.Contains(line, `"dir":"c>s"`) {
						t.Errorf("json, max-print %d: %q (%v)", maxPrint, line, err)
					}
				}
			}
		}
	}
	big := []byte("[" + strings.Repeat("1,                              ", 8000) + "1]")
	p := &tapPrinter{w: io.Discard, maxPrint: 256}
	if shown, truncated := p.shorten(big, true); len(shown) > 256 || cap(shown) > 257 || !truncated || string(shown[:6]) != "[1,1,1" {
		t.Errorf("shorten of %d bytes = %q (capacity %d), %v; want 256 bytes compacted, no more held", len(big), shown, cap(shown), truncated)
	}
}

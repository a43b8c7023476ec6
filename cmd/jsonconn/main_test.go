package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// The tests run the jsonconn command as a user does, as a child process with
// pipes for its standard streams: the test binary re-executes itself with
// runMainEnv set, and then runs main instead of the tests.
const runMainEnv = "JSONCONN_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// hang bounds every wait on a child process: long enough for a loaded
// machine, short enough to report a hang.
const hang = 60 * time.Second

// A proc is a running jsonconn command.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	status int
}

// start runs jsonconn with args. stdin is the child's standard input; nil
// gives it a pipe that the test writes through p.stdin. The child is killed
// in t.Cleanup if it is still running.
func start(t *testing.T, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, stdout: new(syncBuffer), stderr: new(syncBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if stdin != nil {
		p.cmd.Stdin = stdin
	} else {
		w, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = w
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.status = p.cmd.ProcessState.ExitCode()
		if err != nil && p.status < 0 {
			p.status = -1 // killed by a signal it did not catch
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("jsonconn %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), tail(p.stdout.String()), tail(p.stderr.String()))
		}
	})
	return p
}

// tail returns the end of a long output, for a failure's log.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// wait waits for the command to exit and returns its status.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.status
	case <-time.After(hang):
		p.t.Fatalf("jsonconn %s did not exit within %v", strings.Join(p.cmd.Args[1:], " "), hang)
		return 0
	}
}

// expect runs jsonconn to its end and checks its exit status.
func expect(t *testing.T, status int, stdin string, args ...string) *proc {
	t.Helper()
	p := start(t, strings.NewReader(stdin), args...)
	if got := p.wait(); got != status {
		t.Fatalf("jsonconn %s: exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, status, p.stdout, p.stderr)
	}
	return p
}

// awaitOutput waits until the buffer matches re and returns the first
// submatch, or the whole match if re has no group.
func awaitOutput(t *testing.T, b *syncBuffer, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(hang)
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(b.String()); m != nil {
			return m[len(m)-1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("output never matched %q:\n%s", re, b)
	return ""
}

// A syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A testServer is a jsonconn server in the test process that records the
// messages it receives and answers each with handle.
type testServer struct {
	addr  string // as an ADDR argument
	mu    sync.Mutex
	count int      // messages received
	got   []string // the first maxKept of them
}

const maxKept = 10000

// serve starts a server on network ("tcp" on loopback, or "unix" in a
// temporary directory) whose handler calls handle for each message and
// sends back what it returns, if not nil.
func serve(t *testing.T, network string, cfg *jsonconn.Config, handle func(m []byte) []byte) *testServer {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := jsonconn.Listen(network, address, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: addrString(ln.Addr())}
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for {
			m, err := c.ReadMessage()
			if err != nil {
				return
			}
			ts.mu.Lock()
			if ts.count++; len(ts.got) < maxKept {
				ts.got = append(ts.got, string(m))
			}
			ts.mu.Unlock()
			if r := handle(m); r != nil {
				if _, err := c.Write(r); err != nil {
					return
				}
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ts
}

func echo(m []byte) []byte { return m }

func (ts *testServer) receivedCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.count
}

func (ts *testServer) received() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.got...)
}

// rawServer listens on loopback TCP and runs serve on each conn, raw, to
// play a peer that breaks the protocol.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	return rawServerOn(t, "tcp", false, serve)
}

// rawServerOn is rawServer on a loopback port ("tcp") or a Unix socket in
// a temporary directory ("unix"), and returns the address as the commands
// take it. If serial, it serves one connection at a time, in the order
// they came, so that what serve learns from one connection is known before
// the next is accepted, however the goroutines are scheduled.
func rawServerOn(t *testing.T, network string, serial bool, serve func(c net.Conn)) string {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = filepath.Join(t.TempDir(), "raw.sock")
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	serveOne := func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(hang))
		serve(c)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if serial {
				serveOne(c)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveOne(c)
			}()
		}
	}()
	if network == "unix" {
		return "unix:" + address
	}
	return ln.Addr().String()
}

// frame returns payload with its length header.
func frame(payload string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(payload))), payload...)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		status int
		stdout string // a substring of stdout, if set
		stderr string // a substring of stderr, if set
	}{
		{[]string{}, exitUsage, "", "Commands:"},
		{[]string{"help"}, exitOK, "Exit status:", ""},
		{[]string{"-h"}, exitOK, "Commands:", ""},
		{[]string{"help", "dial"}, exitOK, "usage: jsonconn dial [flags] ADDR", ""},
		{[]string{"help", "nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"nope"}, exitUsage, "", `unknown command "nope"`},
		{[]string{"dial", "-h"}, exitOK, "-max-frame", ""},
		{[]string{"listen", "-h"}, exitOK, "-echo", ""},
		{[]string{"demo", "-h"}, exitOK, "-duration", ""},
		{[]string{"bench", "-help"}, exitOK, "-conns", ""},
		{[]string{"dial"}, exitUsage, "", "missing ADDR"},
		{[]string{"dial", "127.0.0.1:1", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"dial", "-nope", "127.0.0.1:1"}, exitUsage, "", "flag provided but not defined: -nope"},
		{[]string{"dial", "localhost"}, exitUsage, "", `bad ADDR "localhost"`},
		{[]string{"dial", "unix:"}, exitUsage, "", "unix: needs a socket path"},
		{[]string{"dial", "127.0.0.1:99999"}, exitUsage, "", `bad port "99999"`},
		{[]string{"dial", "127.0.0.1:"}, exitUsage, "", `no port`},
		{[]string{"help", "-h"}, exitOK, "Commands:", ""},
		{[]string{"dial", "-h"}, exitOK, "Exit status:", ""},
		{[]string{"dial", "-max-frame", "2GiB", "127.0.0.1:1"}, exitUsage, "", "up to 1GiB"},
		{[]string{"dial", "-max-frame", "0", "127.0.0.1:1"}, exitUsage, "", "at least 1 byte"},
		{[]string{"dial", "-bad", "maybe", "127.0.0.1:1"}, exitUsage, "", `want "skip" or "stop"`},
		{[]string{"listen", "127.0.0.1:0", "-max-conns", "-1"}, exitUsage, "", "must not be negative"},
		{[]string{"bench", "-size", "10", "127.0.0.1:1"}, exitUsage, "", "-size must be from"},
		{[]string{"bench", "-count", "0", "127.0.0.1:1"}, exitUsage, "", "set -count or -duration"},
		{[]string{"bench", "-conns", "0", "127.0.0.1:1"}, exitUsage, "", "-conns must be at least 1"},
		{[]string{"demo", "extra"}, exitUsage, "", `unexpected argument "extra"`},
		{[]string{"demo", "-duration", "0"}, exitUsage, "", "-duration must be positive"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			p := expect(t, tc.status, "", tc.args...)
			if !strings.Contains(p.stdout.String(), tc.stdout) || !strings.Contains(p.stderr.String(), tc.stderr) {
				t.Errorf("stdout:\n%s\nstderr:\n%s\nwant %q on stdout and %q on stderr", p.stdout, p.stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestExitStatusesAreDocumented checks that the one table of exit statuses,
// which help prints, is also what the package documentation lists, line for
// line, and that help lists every command.
func TestExitStatusesAreDocumented(t *testing.T) {
	t.Parallel()
	var help bytes.Buffer
	printExitStatuses(&help)
	if len(exitStatuses) == 0 || !strings.HasPrefix(help.String(), "Exit status:\n") {
		t.Fatalf("help's exit statuses:\n%s", help.String())
	}
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	_, table, ok := strings.Cut(doc, "Exit status:\n\n")
	if !ok {
		t.Fatalf("the package documentation has no \"Exit status:\" section:\n%s", doc)
	}
	var documented []string
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "\t") {
			break // the end of the indented table
		}
		documented = append(documented, strings.Join(strings.Fields(line), " "))
	}
	var printed []string
	for _, line := range strings.Split(strings.TrimSpace(help.String()), "\n")[1:] {
		printed = append(printed, strings.Join(strings.Fields(line), " "))
	}
	if !slices.Equal(documented, printed) {
		t.Errorf("the package documentation lists the exit statuses\n\t%s\nbut help prints\n\t%s",
			strings.Join(documented, "\n\t"), strings.Join(printed, "\n\t"))
	}

	var overview bytes.Buffer
	if status := run([]string{"help"}, &env{stdout: &overview, stderr: io.Discard}); status != exitOK {
		t.Fatalf("help exited %d", status)
	}
	if !strings.Contains(overview.String(), help.String()) {
		t.Errorf("help does not print the exit statuses:\n%s", overview.String())
	}
	for _, cmd := range commands {
		if !strings.Contains(overview.String(), "\t"+cmd.name+" ") {
			t.Errorf("help does not list %s:\n%s", cmd.name, overview.String())
		}
	}
}

// dialInput is stdin for the dial tests: good lines, a blank line, a line
// that is not JSON, one padded with blanks, and one over a 64-byte cap.
const dialInput = "{\"a\":1}\n" +
	"\n" +
	"not json\n" +
	"  {\"b\": [1, 2]}  \r\n" +
	`{"long":"` + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" + "\"}\n" +
	"\t [1,\n" +
	"[1,2,3]" // no final newline

func TestDialSendsLinesAndPrintsReplies(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			ts := serve(t, network, &jsonconn.Config{MaxFrameSize: 64}, echo)
			p := expect(t, exitBadInput, dialInput, "dial", "-max-frame", "64", ts.addr)
			want := []string{`{"a":1}`, `{"b": [1, 2]}`, `[1,2,3]`}
			if got := p.stdout.String(); got != strings.Join(want, "\n")+"\n" {
				t.Errorf("stdout = %q, want the echoes of %q", got, want)
			}
			if got := ts.received(); !slices.Equal(got, want) {
				t.Errorf("server received %q, want %q", got, want)
			}
			for _, msg := range []string{
				"stdin:3: not JSON: invalid character 'o' in literal null (expecting 'u') (column 2); not sent",
				"stdin:5: line of 71 bytes is over the 64-byte cap (-max-frame); not sent",
				"stdin:6: not JSON: unexpected end of JSON input (at the end of the line); not sent",
			} {
				if !strings.Contains(p.stderr.String(), msg) {
					t.Errorf("stderr lacks %q:\n%s", msg, p.stderr)
				}
			}
		})
	}
}

func TestDialBadStopStopsAtTheFirstRefusedLine(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	p := expect(t, exitBadInput, dialInput, "dial", "-bad", "stop", ts.addr)
	if got, want := p.stdout.String(), "{\"a\":1}\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got := ts.received(); !slices.Equal(got, []string{`{"a":1}`}) {
		t.Errorf("server received %q; nothing after line 3 may be sent", got)
	}
	if !strings.Contains(p.stderr.String(), "stdin:3: not JSON") {
		t.Errorf("stderr lacks the line number:\n%s", p.stderr)
	}
}

func TestDialCleanRunExitsZero(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	var in strings.Builder
	var want []string
	for i := range 500 {
		m := `{"i":` + strconv.Itoa(i) + `,"s":"héllo 🙂 \u2028"}`
		in.WriteString(m + "\n")
		want = append(want, m)
	}
	p := expect(t, exitOK, in.String(), "dial", ts.addr)
	if got := strings.Split(strings.TrimSuffix(p.stdout.String(), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("got %d lines back, want the %d sent, in order", len(got), len(want))
	}
	if p.stderr.String() != "" {
		t.Errorf("stderr = %q, want nothing", p.stderr)
	}
}

func TestDialPretty(t *testing.T) {
	t.Parallel()
	ts := serve(t, "unix", nil, echo)
	p := expect(t, exitOK, `{"a":[1,{"b":null}]}`+"\n", "dial", "-pretty", ts.addr)
	want := "{\n  \"a\": [\n    1,\n    {\n      \"b\": null\n    }\n  ]\n}\n"
	if got := p.stdout.String(); got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

// TestDialPrintsUntilThePeerCloses checks that dial prints what a peer sends
// unasked, one line per message even if the peer indented it, and that when
// the peer closes first, dial exits 0 at the end of stdin.
func TestDialPrintsUntilThePeerCloses(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn) {
		for _, m := range []string{`{"first":1}`, "{\n  \"pretty\": [\n    1\n  ]\n}", `"last"`} {
			c.Write(frame(m))
		}
	})
	p := start(t, nil, "dial", addr)
	awaitOutput(t, p.stderr, `closed the connection; waiting for the end of stdin`)
	p.stdin.Close()
	if got := p.wait(); got != exitOK {
		t.Fatalf("exit status %d, want 0", got)
	}
	if got, want := p.stdout.String(), "{\"first\":1}\n{\"pretty\":[1]}\n\"last\"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

// TestDialReportsLinesAfterThePeerClosed checks that a stdin line read after
// the peer closed is reported, not dropped: the peer here replies once,
// shuts down its sending side, and reads on.
func TestDialReportsLinesAfterThePeerClosed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []byte
	addr := rawServer(t, func(c net.Conn) {
		r := jsonconn.NewReader(c, nil)
		m, err := r.ReadMessage()
		if err != nil {
			return
		}
		c.Write(frame(string(m)))
		c.(*net.TCPConn).CloseWrite()
		rest, _ := io.ReadAll(c)
		mu.Lock()
		got = rest
		mu.Unlock()
	})
	p := start(t, nil, "dial", addr)
	io.WriteString(p.stdin, "{\"n\":1}\n")
	awaitOutput(t, p.stderr, `closed the connection; waiting for the end of stdin`)
	io.WriteString(p.stdin, "{\"n\":2}\n{\"n\":3}\n")
	if status := p.wait(); status != exitError {
		t.Errorf("exit status %d, want 1", status)
	}
	if !strings.Contains(p.stderr.String(), "stdin:2: not sent: the peer closed the connection") {
		t.Errorf("stderr = %q, want line 2 reported as not sent", p.stderr)
	}
	if got := p.stdout.String(); got != "{\"n\":1}\n" {
		t.Errorf("stdout = %q, want the one reply", got)
	}
	p.stdin.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 0 {
		t.Errorf("the peer received %q after it closed; dial should have sent nothing more", got)
	}
}

// TestDialWait checks that -wait bounds the wait for a peer that never
// closes once stdin has ended.
func TestDialWait(t *testing.T) {
	t.Parallel()
	quit := make(chan struct{})
	addr := rawServer(t, func(c net.Conn) { <-quit })
	t.Cleanup(func() { close(quit) }) // before rawServer's cleanup
	expect(t, exitOK, "{\"n\":1}\n", "dial", "-wait", "100ms", addr)
}

// TestDialReportsTheProtocolErrorOverAWriteError has the peer send an
// invalid frame while dial is busy sending a large stdin: the cause
// reported is the peer's invalid JSON, not the write that the closed
// connection then failed.
func TestDialReportsTheProtocolErrorOverAWriteError(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn) {
		c.Write(frame(`{"a":}`))
		io.Copy(io.Discard, c)
	})
	in := strings.Repeat(`{"pad":"`+strings.Repeat("x", 1000)+"\"}\n", 20000)
	p := expect(t, exitError, in, "dial", addr)
	if !strings.Contains(p.stderr.String(), "jsonconn: invalid JSON at offset 6") {
		t.Errorf("stderr = %q, want the peer's invalid JSON reported", p.stderr)
	}
}

func TestDialErrorsNameTheAddressAndCause(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	oversize := rawServer(t, func(c net.Conn) { c.Write([]byte{0xff, 0xff, 0xff, 0xff}) })
	invalid := rawServer(t, func(c net.Conn) { c.Write(frame(`{"a":}`)) })
	for _, tc := range []struct {
		addr  string
		cause string
	}{
		{closed, "connection refused"},
		{"unix:" + filepath.Join(t.TempDir(), "none.sock"), "no such file or directory"},
		{oversize, "jsonconn: frame of 4294967295 bytes exceeds the 262144-byte limit"},
		{invalid, "jsonconn: invalid JSON at offset 6"},
	} {
		p := start(t, nil, "dial", tc.addr)
		defer p.stdin.Close()
		if got := p.wait(); got != exitError {
			t.Errorf("dial %s: exit status %d, want 1", tc.addr, got)
		}
		addr := strings.TrimPrefix(tc.addr, "unix:")
		if e := p.stderr.String(); !strings.Contains(e, addr) || !strings.Contains(e, tc.cause) {
			t.Errorf("dial %s: stderr = %q, want the address and %q", tc.addr, e, tc.cause)
		}
	}
}

// TestListenAndDial runs the README's terminal session: listen in one
// process, dial in another. listen's stdin is empty: its end must not stop
// listen.
func TestListenAndDial(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "127.0.0.1:0")
	addr := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	for i := 1; i <= 2; i++ {
		d := expect(t, exitOK, "{\"hello\":\"world\"}\n[1, 2]\n", "dial", addr)
		if got := d.stdout.String(); got != "" {
			t.Errorf("dial stdout = %q, want nothing: listen sends stdin lines, and it has none", got)
		}
		awaitOutput(t, l.stderr, `conn `+strconv.Itoa(i)+`: opened by 127\.0\.0\.1:\d+\n`)
		awaitOutput(t, l.stderr, `conn `+strconv.Itoa(i)+`: closed: the peer closed it\n`)
		// listen prints a message before it logs the close, but the two
		// reach this process through separate pipes, copied by separate
		// goroutines: the log line can arrive first.
		awaitOutput(t, l.stdout, `\{"conn":`+strconv.Itoa(i)+`,"msg":\[1, 2\]\}\n`)
	}
	want := "{\"conn\":1,\"msg\":{\"hello\":\"world\"}}\n{\"conn\":1,\"msg\":[1, 2]}\n" +
		"{\"conn\":2,\"msg\":{\"hello\":\"world\"}}\n{\"conn\":2,\"msg\":[1, 2]}\n"
	if got := l.stdout.String(); got != want {
		t.Errorf("listen stdout = %q, want %q", got, want)
	}
}

// TestListenFrameTimeout checks that listen cuts off a peer that stalls in
// the middle of a message, after -frame-timeout, and says why.
func TestListenFrameTimeout(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "-frame-timeout", "200ms", "127.0.0.1:0")
	addr := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(frame(`"stalled"`)[:6]); err != nil {
		t.Fatal(err)
	}
	awaitOutput(t, l.stderr, `cause="frame timeout"`)
	awaitOutput(t, l.stderr, `conn 1: closed: disconnected\n`)
}

// TestListenSendsStdinToPeers checks listen without -echo: stdin lines go
// to every connected peer, and a bad one is reported and skipped.
func TestListenSendsStdinToPeers(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "l.sock")
	l := start(t, nil, "listen", "-max-frame", "1KiB", "unix:"+sock)
	defer l.stdin.Close()
	awaitOutput(t, l.stderr, `listening on unix:`+regexp.QuoteMeta(sock))

	d1 := start(t, nil, "dial", "unix:"+sock)
	defer d1.stdin.Close()
	awaitOutput(t, l.stderr, `conn 1: opened`)
	d2 := start(t, nil, "dial", "unix:"+sock)
	defer d2.stdin.Close()
	awaitOutput(t, l.stderr, `conn 2: opened`)

	io.WriteString(l.stdin, "{\"to\":\"all\"}\n{oops}\n")
	awaitOutput(t, d1.stdout, `\{"to":"all"\}\n`)
	awaitOutput(t, d2.stdout, `\{"to":"all"\}\n`)
	awaitOutput(t, l.stderr, `stdin:2: not JSON: invalid character 'o' looking for beginning of object key string \(column 2\); not sent`)

	io.WriteString(d2.stdin, "{\"from\":2}\n")
	awaitOutput(t, l.stdout, `\{"conn":2,"msg":\{"from":2\}\}\n`)

	// The peers hang up.
	d1.stdin.Close()
	d2.stdin.Close()
	for _, d := range []*proc{d1, d2} {
		// dial half-closes at the end of stdin; listen's handler then
		// ends and closes the connection, and dial exits.
		if got := d.wait(); got != exitOK {
			t.Errorf("dial exit status %d, want 0", got)
		}
	}
	for i, d := range []*proc{d1, d2} {
		if got, want := d.stdout.String(), "{\"to\":\"all\"}\n"; got != want {
			t.Errorf("dial %d stdout = %q, want %q and nothing else", i+1, got, want)
		}
	}

	// With no peer connected, a line waits for the next one.
	io.WriteString(l.stdin, "{\"to\":\"the next\"}\n")
	d3 := start(t, nil, "dial", "unix:"+sock)
	defer d3.stdin.Close()
	awaitOutput(t, d3.stdout, `\{"to":"the next"\}\n`)
}

func TestBench(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	p := expect(t, exitOK, "", "bench", "-count", "3000", "-conns", "3", "-size", "200", ts.addr)
	if !strings.Contains(p.stdout.String(), "3000 messages of 200 bytes echoed over 3 connection(s)") {
		t.Errorf("stdout = %q, want a summary of 3000 echoed messages", p.stdout)
	}
	got := ts.received()
	if len(got) != 3000 {
		t.Fatalf("server received %d messages, want 3000", len(got))
	}
	for _, m := range got {
		if len(m) != 200 {
			t.Fatalf("server received a message of %d bytes, want 200: %q", len(m), m)
		}
	}
}

func TestBenchOneWay(t *testing.T) {
	t.Parallel()
	ts := serve(t, "unix", nil, func([]byte) []byte { return nil })
	p := expect(t, exitOK, "", "bench", "-echo=false", "-count", "1000", "-size", "1KiB", ts.addr)
	if !strings.Contains(p.stdout.String(), "1000 messages of 1024 bytes sent over 1 connection(s)") {
		t.Errorf("stdout = %q, want a summary of 1000 sent messages", p.stdout)
	}
	// bench ends when the server closes after reading everything.
	if got := len(ts.received()); got != 1000 {
		t.Errorf("server received %d messages, want 1000", got)
	}
}

func TestBenchDetectsACorruptingServer(t *testing.T) {
	t.Parallel()
	n := 0
	var mu sync.Mutex
	ts := serve(t, "tcp", nil, func(m []byte) []byte {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 50 {
			return []byte(`{"n":"changed"}`)
		}
		return m
	})
	// Far more messages than socket buffers hold: bench must stop sending
	// when it finds the corruption, not wait for echoes it will not read.
	p := expect(t, exitError, "", "bench", "-count", "1000000", "-size", "64", ts.addr)
	if !strings.Contains(p.stderr.String(), "conn 1: message 49 came back changed") {
		t.Errorf("stderr = %q, want the changed message reported", p.stderr)
	}
}

// TestBenchWindow checks that with -echo each connection keeps at most
// -window messages in flight: against a server that reads but holds every
// echo back, bench sends exactly the window, and then waits.
func TestBenchWindow(t *testing.T) {
	t.Parallel()
	const window = 5
	var mu sync.Mutex
	got := 0
	quit := make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		r := jsonconn.NewReader(c, nil)
		for {
			if _, err := r.ReadMessage(); err != nil {
				return
			}
			mu.Lock()
			got++
			mu.Unlock()
		}
	})
	t.Cleanup(func() { close(quit) })
	b := start(t, nil, "bench", "-window", strconv.Itoa(window), "-count", "1000", "-size", "64", addr)
	defer b.stdin.Close()
	received := func() int { mu.Lock(); defer mu.Unlock(); return got }
	for deadline := time.Now().Add(hang); received() < window; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server received %d messages, want the window of %d", received(), window)
		}
	}
	// Had bench sent past its window, the surplus would be here by now;
	// a negative check can only wait a while.
	time.Sleep(300 * time.Millisecond)
	if n := received(); n != window {
		t.Fatalf("bench sent %d messages with no echo back, want the window of %d", n, window)
	}
	b.cmd.Process.Signal(syscall.SIGINT)
	if status := b.wait(); status != 130 {
		t.Errorf("bench exited %d after SIGINT, want 130", status)
	}
}

// TestBenchLatency checks that bench with -echo reports round-trip
// percentiles.
func TestBenchLatency(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	p := expect(t, exitOK, "", "bench", "-count", "2000", "-conns", "2", "-size", "64", ts.addr)
	re := `round trips, 16 in flight per connection: p50 [\d.]+[µm]?s, p90 [\d.]+[µm]?s, p99 [\d.]+[µm]?s, max [\d.]+[µm]?s\n`
	if !regexp.MustCompile(re).MatchString(p.stdout.String()) {
		t.Errorf("stdout = %q, want the round trips' percentiles", p.stdout)
	}
}

func TestBenchProgressAndDuration(t *testing.T) {
	t.Parallel()
	ts := serve(t, "tcp", nil, echo)
	p := expect(t, exitOK, "", "bench", "-count", "0", "-duration", "3s", "-size", "64", ts.addr)
	if !regexp.MustCompile(`\d+ messages of 64 bytes echoed over 1 connection\(s\) in \d+\.\d+s: \d+ msg/s, \d+\.\d MB/s of payload\n`).MatchString(p.stdout.String()) {
		t.Errorf("stdout = %q, want a summary", p.stdout)
	}
	// Not a terminal: one progress line a second.
	if !regexp.MustCompile(`(?m)^ +\d+\.\ds +\d+ messages +\d+ msg/s +\d+\.\d MB/s$`).MatchString(p.stderr.String()) {
		t.Errorf("stderr = %q, want a progress line", p.stderr)
	}
}

func TestBenchUnreachable(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "none.sock")
	p := expect(t, exitError, "", "bench", "-count", "10", "unix:"+sock)
	if !strings.Contains(p.stderr.String(), sock) {
		t.Errorf("stderr = %q, want the address", p.stderr)
	}
}

func TestDemo(t *testing.T) {
	t.Parallel()
	p := expect(t, exitOK, "", "demo", "-duration", "300ms")
	out := p.stdout.String()
	for _, want := range []string{
		"echo server listening on 127.0.0.1:",
		"-> {\"hello\":\"world\"}\n<- {\"hello\":\"world\"}\n",
		"-> {\"oops\": }\n   refused before a byte was sent: jsonconn: invalid JSON at offset 10",
		"refused before a byte was sent: jsonconn: frame of 262154 bytes exceeds the 262144-byte limit",
		"<- {\"still\":\"connected\",\"after\":\"the refusals\"}\n",
		"bytes echoed over 1 connection(s) in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

func TestLineReader(t *testing.T) {
	t.Parallel()
	const max = 8
	in := "12345678\n123456789\n1234567\r\n\r\n" + strings.Repeat("x", 100000) + "\nlast"
	lr := newLineReader(strings.NewReader(in), max)
	type line struct {
		text string
		kept bool
		size int64
	}
	var got []line
	for {
		l, size, err := lr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line{string(l), l != nil, size})
	}
	want := []line{{"12345678", true, 8}, {"", false, 9}, {"1234567", true, 7}, {"", true, 0}, {"", false, 100000}, {"last", true, 4}}
	if len(got) != len(want) {
		t.Fatalf("got %d lines %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i+1, got[i], want[i])
		}
	}
	if lr.n != len(want) {
		t.Errorf("line count %d, want %d", lr.n, len(want))
	}
	if cap(lr.buf) > 64 {
		t.Errorf("the reader grew its buffer to %d bytes for a cap of %d", cap(lr.buf), max)
	}
}

func TestSizeValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"1": 1, "4096": 4096, "64KiB": 64 << 10, "64K": 64 << 10, "1MiB": 1 << 20, "1M": 1 << 20, "1GiB": 1 << 30, "100B": 100} {
		var v sizeValue
		if err := v.Set(in); err != nil || int(v) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, v, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5K", "2GiB", "1TiB", "KiB", "1 KiB", "99999999999"} {
		var v sizeValue
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, v)
		}
	}
	if v := sizeValue(256 << 10); v.String() != "256KiB" {
		t.Errorf("String() = %q, want 256KiB", v.String())
	}
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"127.0.0.1:7000":   {"tcp", "127.0.0.1:7000"},
		"[::1]:7000":       {"tcp", "[::1]:7000"},
		":7000":            {"tcp", ":7000"},
		"localhost:http":   {"tcp", "localhost:http"},
		"unix:/tmp/j.sock": {"unix", "/tmp/j.sock"},
		"unix:rel.sock":    {"unix", "rel.sock"},
	} {
		network, address, err := parseAddr(in)
		if err != nil || network != want[0] || address != want[1] {
			t.Errorf("parseAddr(%q) = %q, %q, %v; want %q", in, network, address, err, want)
		}
	}
	for _, in := range []string{"", "7000", "host", "unix:", "host:port:x", "127.0.0.1:65536", "127.0.0.1:"} {
		if _, _, err := parseAddr(in); err == nil {
			t.Errorf("parseAddr(%q) succeeded, want an error", in)
		}
	}
}

// TestDialReconnect restarts the server under dial -reconnect: dial says
// so, sends the line read meanwhile on the new connection, says which line
// was sent on the connection that ended, and sends none twice.
func TestDialReconnect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	handler := jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for {
			m, err := c.ReadMessage()
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, string(m))
			mu.Unlock()
			if _, err := c.Write(m); err != nil {
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &jsonconn.Server{Handler: handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	p := start(t, nil, "dial", "-reconnect", "-wait", "100ms", addr)
	io.WriteString(p.stdin, `{"n": 1}`+"\n")
	awaitOutput(t, p.stdout, `\{"n": 1\}`)
	srv.Close()
	awaitOutput(t, p.stderr, "connection to .* lost")
	io.WriteString(p.stdin, `{"n": 2}`+"\n") // while dial reconnects

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := &jsonconn.Server{Handler: handler}
	go srv2.Serve(ln)
	t.Cleanup(func() { srv2.Close() })
	awaitOutput(t, p.stdout, `\{"n": 2\}`)
	awaitOutput(t, p.stderr, "reconnected to")
	p.stdin.Close()
	if status := p.wait(); status != exitOK {
		t.Fatalf("exit status %d, want %d", status, exitOK)
	}
	if !strings.Contains(p.stderr.String(), "stdin:1 was sent on that connection and may not have arrived") {
		t.Errorf("stderr does not say which line may be lost:\n%s", p.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{`{"n": 1}`, `{"n": 2}`}; !slices.Equal(got, want) {
		t.Errorf("the servers received %q, want %q: each line once", got, want)
	}
}

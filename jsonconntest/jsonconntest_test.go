package jsonconntest_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/jsonconn/jsonconn/jsonconntest"
)

// hang only catches hangs.
const hang = 60 * time.Second

// serveRaw serves each connection of a listener on network ("tcp" on
// loopback, or "unix" in a temporary directory) with serve, one at a time
// if serial, until the test ends, and returns a dial function for it and
// the listener.
func serveRaw(t *testing.T, network string, serial bool, serve func(c net.Conn)) (dial func(ctx context.Context) (net.Conn, error), ln net.Listener) {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = filepath.Join(t.TempDir(), "peer.sock")
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	one := func(c net.Conn) {
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
				one(c)
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); one(c) }()
		}
	}()
	addr := ln.Addr().String()
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}, ln
}

// verdicts maps each case's ID to its verdict.
func verdicts(rep *jsonconntest.Report) map[string]jsonconntest.Verdict {
	m := make(map[string]jsonconntest.Verdict)
	for _, c := range rep.Cases {
		m[c.ID] = c.Verdict
	}
	return m
}

// result returns the result of case id in rep.
func result(t *testing.T, rep *jsonconntest.Report, id string) jsonconntest.Result {
	t.Helper()
	for _, c := range rep.Cases {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("no case %s in the report", id)
	return jsonconntest.Result{}
}

// brokenPeer is an echo server that breaks one rule of the protocol on
// purpose, named by fault (see serve), so that the test can see the suite
// catch it; with fault "" it breaks none.
type brokenPeer struct {
	fault string
	n     int         // the fault's parameter
	dead  atomic.Bool // die-on-reset: a reset has stopped the server
	ln    net.Listener
}

// startBrokenPeer serves a broken peer on a loopback port until the test
// ends, and returns its dial function.
func startBrokenPeer(t *testing.T, fault string, n int) func(ctx context.Context) (net.Conn, error) {
	t.Helper()
	return startBrokenPeerOn(t, "tcp", fault, n)
}

// startBrokenPeerOn is startBrokenPeer on the network serveRaw takes.
func startBrokenPeerOn(t *testing.T, network, fault string, n int) func(ctx context.Context) (net.Conn, error) {
	t.Helper()
	bp := &brokenPeer{fault: fault, n: n}
	// die-on-reset must take in one connection's reset before it sees the
	// next connection, or case 3.2 could find it still answering.
	dial, ln := serveRaw(t, network, fault == "die-on-reset", bp.serve)
	bp.ln = ln
	return dial
}

const brokenCap = 1 << 18

// serve echoes the frames of c, breaking the rule its fault names:
//
//	cap N        its cap is N, not 256 KiB: it refuses larger frames
//	no-cap       it waits for the body of a frame over its cap
//	close-on N   it closes on a payload of exactly N bytes
//	read-once    it reads a header or a body with one Read, whatever arrived
//	reorder      it swaps each two messages that arrived together
//	mangle       it changes é into e in what it echoes
//	no-validate  it echoes payloads that are not JSON
//	drop-before  it checks the next header before echoing, and on one over
//	             its cap closes without echoing the frames before it
//	die-on-reset a connection reset in the middle of a frame stops the server
//	drop-on-eof  it answers a batch of messages only after the next, and
//	             drops what it owes at the end of the stream
//	bad-json     it echoes [m,] for m: not JSON
//	trailing     it echoes m followed by " junk": a value, then not JSON
//	utf16        its headers count UTF-16 code units, as JavaScript's
//	             string.length does, not bytes
//	chars        its headers count characters (code points), not bytes
//	crash-deep   a payload nested 1,000 deep or more stops the server: it
//	             closes its listener, as a peer whose process died
//	unbounded    it reads all it can, queuing echoes without bound for a
//	             reader that does not read them
func (bp *brokenPeer) serve(c net.Conn) {
	if bp.fault == "unbounded" {
		bp.serveUnbounded(c)
		return
	}
	if bp.dead.Load() {
		return // answers no one any more
	}
	br := bufio.NewReaderSize(c, 64<<10)
	readFull := func(p []byte) error {
		if bp.fault == "read-once" {
			_, err := br.Read(p)
			return err
		}
		_, err := io.ReadFull(br, p)
		return err
	}
	limit := brokenCap
	if bp.fault == "cap" {
		limit = bp.n
	}
	var owed [][]byte // drop-on-eof: answers held back
	var held []byte   // reorder: a message held to swap with the next
	echo := func(m []byte) {
		n := len(m)
		switch bp.fault {
		case "mangle":
			m = bytes.ReplaceAll(m, []byte("é"), []byte("e"))
			n = len(m)
		case "bad-json":
			m = append(append([]byte("["), m...), ",]"...)
			n = len(m)
		case "trailing":
			m = append(slices.Clip(m), " junk"...)
			n = len(m)
		case "utf16":
			n = len(utf16.Encode([]rune(string(m))))
		case "chars":
			n = len([]rune(string(m)))
		}
		c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(n)), m...))
	}
	for {
		hdr := make([]byte, 4)
		if err := readFull(hdr); err != nil {
			if bp.fault == "die-on-reset" && !errors.Is(err, io.EOF) {
				bp.dead.Store(true)
			}
			return // drop-on-eof: what is owed is dropped
		}
		// Compared as a uint32: converted to an int first, 0xFFFFFFFF is
		// -1 on a 32-bit platform and would pass the check.
		n := binary.BigEndian.Uint32(hdr)
		if uint64(n) > uint64(limit) {
			if bp.fault == "no-cap" {
				io.Copy(io.Discard, br) // wait for a body it would not get
			}
			return
		}
		body := make([]byte, n)
		if err := readFull(body); err != nil {
			if bp.fault == "die-on-reset" && !errors.Is(err, io.EOF) {
				bp.dead.Store(true)
			}
			return
		}
		switch {
		case bp.fault == "close-on" && len(body) == bp.n:
			return
		case bp.fault == "crash-deep" && bytes.HasPrefix(body, bytes.Repeat([]byte("["), 1000)):
			bp.ln.Close()
			return
		case bp.fault != "no-validate" && !json.Valid(body):
			return
		}
		if bp.fault == "drop-before" && br.Buffered() >= 4 {
			next, _ := br.Peek(4)
			if uint64(binary.BigEndian.Uint32(next)) > uint64(limit) {
				return
			}
		}
		switch bp.fault {
		case "reorder":
			if held == nil && br.Buffered() > 0 {
				held = body
				continue
			}
			echo(body)
			if held != nil {
				echo(held)
				held = nil
			}
		case "drop-on-eof":
			owed = append(owed, body)
			if br.Buffered() == 0 && len(owed) > 1 {
				for _, m := range owed[:len(owed)-1] {
					echo(m)
				}
				owed = owed[len(owed)-1:]
			}
		default:
			echo(body)
		}
	}
}

// serveUnbounded echoes c's bytes as they come (so its frames too) from a
// queue that grows without bound: a reader that stops reading never makes
// it stop reading. It reads in large chunks and does nothing else, so that
// it takes bytes faster than the suite sends them even under the race
// detector, and a write of the suite's that blocks can only be push-back.
func (bp *brokenPeer) serveUnbounded(c net.Conn) {
	var mu sync.Mutex
	var queue [][]byte
	more := make(chan struct{}, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case <-more:
			case <-done:
				return
			}
			mu.Lock()
			q := queue
			queue = nil
			mu.Unlock()
			for _, b := range q {
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}
	}()
	for {
		b := make([]byte, 256<<10)
		n, err := c.Read(b)
		if n > 0 {
			mu.Lock()
			queue = append(queue, b[:n])
			mu.Unlock()
			select {
			case more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// TestCheckFindsEachBrokenPeer is what keeps the suite from being vacuous:
// for each rule a case checks as a MUST, a peer that breaks it makes that
// case fail, quoting the rule, and no case unrelated to it; a peer that
// breaks nothing passes. The runs go all at once (they mostly wait on the
// network), and each fault's verdicts are then judged in a subtest of its
// own.
func TestCheckFindsEachBrokenPeer(t *testing.T) {
	t.Parallel()
	type brokenCase struct {
		fault    string
		n        int
		fails    []string      // cases that must fail
		related  []string      // cases that may fail too, or not
		rule     string        // what the failures of fails quote, if not just any rule
		detail   string        // what the detail of the first of fails says, if set
		network  string        // "tcp" unless set
		timeout  time.Duration // the case timeout, 4 s unless set
		maxFrame int           // the cap the suite is told, the default unless set
	}
	// The split cases catch a peer that reads once only if it sees each
	// piece arrive on its own. Over a Unix socket on Linux, the suite writes
	// a piece only once the peer has read the one before, waiting for each
	// at most the case timeout over twice the number of pieces (0.8 s or
	// less here, which only a hang exceeds). Elsewhere it pauses between
	// pieces, and a loaded machine can sleep through the pause, so there the
	// split cases may pass this peer.
	readOnce := brokenCase{fault: "read-once", fails: []string{"1.10", "1.11"},
		related: []string{"1.5", "1.6", "1.7", "1.8", "1.9", "1.12", "3.7", "2.9"},
		network: "unix", timeout: 8 * time.Second}
	if runtime.GOOS != "linux" {
		readOnce.related = append(readOnce.related, readOnce.fails...)
		readOnce.fails, readOnce.network, readOnce.timeout = nil, "", 0
	}
	// Every case that checks an echo.
	echoCases := []string{"1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.13", "2.3", "3.1", "3.2"}
	faults := []brokenCase{
		{fault: ""},
		{fault: "close-on", n: 1, fails: []string{"1.2"}, related: []string{"1.1"}},
		{fault: "close-on", n: 512, fails: []string{"1.3"}},
		{fault: "close-on", n: 513, fails: []string{"1.4"}},
		{fault: "close-on", n: 16384, fails: []string{"1.5"}},
		{fault: "close-on", n: 16385, fails: []string{"1.6"}},
		{fault: "close-on", n: 65536, fails: []string{"1.7"}, rule: "MUST accept every frame with N up to its cap"},
		{fault: "cap", n: 200000, fails: []string{"1.8", "1.9"}},
		{fault: "close-on", n: brokenCap, fails: []string{"1.9"}},
		readOnce,
		{fault: "reorder", fails: []string{"1.12"}, related: []string{"1.1", "1.13", "2.3", "3.1"}},
		{fault: "mangle", fails: []string{"1.1", "1.13"}, rule: "MUST deliver the payloads of a stream whole", detail: "differs"},
		{fault: "no-cap", fails: []string{"2.1", "2.2", "2.3"}},
		{fault: "drop-before", fails: []string{"2.3"}, rule: "MUST deliver every complete, valid frame"},
		{fault: "no-validate", fails: []string{"2.4", "2.5", "2.6", "2.7"}, rule: "MUST close the connection when a payload is not valid"},
		{fault: "die-on-reset", fails: []string{"3.2"}, rule: "MUST NOT let what happens on one connection"},
		{fault: "bad-json", fails: []string{"1.1", "1.2", "1.13"}, related: echoCases, rule: "§3 The payload MUST be exactly one JSON value", detail: "is not JSON"},
		{fault: "trailing", fails: []string{"1.1", "1.2", "1.13"}, related: echoCases, rule: "§3 The payload MUST be exactly one JSON value", detail: "is not JSON"},
		{fault: "cap", n: 1024, maxFrame: 1024}, // conforming, with a small cap that the suite is told
		{fault: "cap", n: 64, maxFrame: 64},
		{fault: "utf16", fails: []string{"1.1", "1.13"}, related: []string{"1.15"}, rule: "§1 A sender MUST set N to the payload's length in bytes", detail: "UTF-16 code units"},
		{fault: "chars", fails: []string{"1.1", "1.13"}, related: []string{"1.15"}, rule: "§1 A sender MUST set N to the payload's length in bytes", detail: "in characters"},
		{fault: "crash-deep", fails: []string{"2.9"}, detail: "the peer stopped accepting connections after this case (it may have crashed)"},
	}
	type outcome struct {
		rep *jsonconntest.Report
		err error
	}
	outcomes := make([]outcome, len(faults))
	var wg sync.WaitGroup
	for i, f := range faults {
		dial := startBrokenPeerOn(t, cmp.Or(f.network, "tcp"), f.fault, f.n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := jsonconntest.Run(context.Background(), dial, &jsonconntest.Options{CaseTimeout: cmp.Or(f.timeout, 4*time.Second), Conns: 5, MaxFrameSize: f.maxFrame})
			outcomes[i] = outcome{rep, err}
		}()
	}
	wg.Wait()
	for i, tc := range faults {
		name := tc.fault
		if tc.n != 0 {
			name += " " + strconv.Itoa(tc.n)
		}
		if tc.maxFrame != 0 {
			name += ", told"
		}
		if name == "" {
			name = "conforming"
		}
		t.Run(name, func(t *testing.T) {
			rep, err := outcomes[i].rep, outcomes[i].err
			if err != nil {
				t.Fatal(err)
			}
			got := verdicts(rep)
			for _, id := range tc.fails {
				r := result(t, rep, id)
				if r.Verdict != jsonconntest.Fail {
					t.Errorf("case %s: %s, want fail: %s", id, r.Verdict, r.Detail)
				}
				if tc.rule != "" && !strings.Contains(r.Rule, tc.rule) {
					t.Errorf("case %s quotes the rule %q, want the one that says %q", id, r.Rule, tc.rule)
				}
			}
			if tc.detail != "" {
				if r := result(t, rep, tc.fails[0]); !strings.Contains(r.Detail, tc.detail) {
					t.Errorf("case %s says %q, want it to say %q", r.ID, r.Detail, tc.detail)
				}
			}
			for _, c := range rep.Cases {
				if c.Verdict == jsonconntest.Fail && !slices.Contains(tc.fails, c.ID) && !slices.Contains(tc.related, c.ID) {
					t.Errorf("case %s (%s) failed, which the fault does not explain: %s", c.ID, c.Title, c.Detail)
				}
				if c.Verdict == jsonconntest.Skipped && tc.fault != "crash-deep" {
					t.Errorf("case %s was skipped: %s", c.ID, c.Detail)
				}
			}
			if len(got) != len(rep.Cases) || rep.Summary.Cases != len(rep.Cases) {
				t.Errorf("%d results, summary %+v", len(rep.Cases), rep.Summary)
			}
			if len(tc.fails) > 0 && !rep.Failed() {
				t.Errorf("no case failed: %+v", rep.Summary)
			}
		})
	}
}

// TestCrashedPeerSkipsTheRest: a peer that stops accepting connections
// after a case fails that case, and the cases after it are skipped, in the
// report and in its JUnit XML.
func TestCrashedPeerSkipsTheRest(t *testing.T) {
	t.Parallel()
	dial := startBrokenPeer(t, "crash-deep", 0)
	rep, err := jsonconntest.Run(context.Background(), dial, &jsonconntest.Options{CaseTimeout: 4 * time.Second, Run: regexp.MustCompile(`^(2\.[89]|3\.[1-3])$`)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]jsonconntest.Verdict{"2.8": jsonconntest.Info, "2.9": jsonconntest.Fail, "3.1": jsonconntest.Skipped, "3.2": jsonconntest.Skipped, "3.3": jsonconntest.Skipped}
	if got := verdicts(rep); !maps.Equal(got, want) {
		t.Fatalf("verdicts %v, want %v", got, want)
	}
	if rep.Summary.Skipped != 3 || rep.Summary.Fail != 1 || !strings.Contains(rep.Stopped, "after case 2.9") {
		t.Errorf("summary %+v, stopped %q", rep.Summary, rep.Stopped)
	}
	var junit bytes.Buffer
	if err := rep.WriteJUnit(&junit); err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Skipped int `xml:"skipped,attr"`
		Cases   []struct {
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(junit.Bytes(), &suite); err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, c := range suite.Cases {
		if c.Skipped != nil {
			skipped++
		}
	}
	if suite.Skipped != 3 || skipped != 3 {
		t.Errorf("JUnit: skipped=%d with %d skipped elements, want 3\n%s", suite.Skipped, skipped, junit.String())
	}
}

// TestShouldIsNonStrict: a peer that breaks a SHOULD gets non-strict, and
// the report quotes the rule: the half-close rule of §4 (it drops what it
// owes at the end of the stream), and the flow-control rule of §6 (it
// buffers without bound for a reader that stalls).
func TestShouldIsNonStrict(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fault, id, rule string
		timeout         time.Duration
	}{
		// The half-close case waits out its timeout for what the peer owes.
		{"drop-on-eof", "3.1", "§4 A receiver that reads a clean end SHOULD go on sending", 3 * time.Second},
		// The timeout only catches hangs: the stalled-reader case ends when
		// 64 MiB have gone unread, at once on loopback.
		{"unbounded", "3.4", "§6 A receiver SHOULD read from the transport only as fast", 30 * time.Second},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			dial := startBrokenPeer(t, tc.fault, 0)
			rep, err := jsonconntest.Run(context.Background(), dial, &jsonconntest.Options{CaseTimeout: tc.timeout, Run: regexp.MustCompile(`^` + regexp.QuoteMeta(tc.id) + `$`)})
			if err != nil {
				t.Fatal(err)
			}
			r := result(t, rep, tc.id)
			if r.Verdict != jsonconntest.NonStrict || !strings.HasPrefix(r.Rule, tc.rule) {
				t.Fatalf("%s: %s (%s), quoting %q; want non-strict, quoting %q", tc.id, r.Verdict, r.Detail, r.Rule, tc.rule)
			}
		})
	}
}

// TestNotFramedJSON: a peer whose answer begins like another protocol ends
// the run at once, before any case, with an error that names it.
func TestNotFramedJSON(t *testing.T) {
	t.Parallel()
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpSrv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: hang}
	go httpSrv.Serve(httpLn)
	t.Cleanup(func() { httpSrv.Close() })
	dialTCP := func(addr string) func(ctx context.Context) (net.Conn, error) {
		return func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	banner := func(b string) func(ctx context.Context) (net.Conn, error) {
		dial, _ := serveRaw(t, "tcp", false, func(c net.Conn) {
			io.WriteString(c, b)
			io.Copy(io.Discard, c)
		})
		return dial
	}
	answer := func(b string) func(ctx context.Context) (net.Conn, error) {
		dial, _ := serveRaw(t, "tcp", false, func(c net.Conn) {
			c.Read(make([]byte, 64))
			io.WriteString(c, b)
		})
		return dial
	}
	for _, tc := range []struct {
		name string
		dial func(ctx context.Context) (net.Conn, error)
		says string
	}{
		{"HTTP", dialTCP(httpLn.Addr().String()), "HTTP"},
		{"SSH", banner("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), "SSH"},
		{"TLS", answer("\x15\x03\x01\x00\x02\x02\x16"), "TLS"},
		{"Redis", answer("-ERR unknown command '\x00\x00\x00\x18{\"jsonconntest\":', with args beginning with: \r\n"), "Redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			rep, err := jsonconntest.Run(context.Background(), tc.dial, nil)
			if !errors.Is(err, jsonconntest.ErrNotFramedJSON) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Run = %v; want ErrNotFramedJSON naming %s", err, tc.says)
			}
			if len(rep.Cases) != 0 {
				t.Errorf("%d cases ran; want none", len(rep.Cases))
			}
			t.Logf("%v, after %v", err, time.Since(start))
		})
	}
}

// TestUnreachable: a peer that is not there gets ErrUnreachable, not a
// failure per case.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "none.sock") // nobody listens: no other test can take it, as it could a port
	_, err := jsonconntest.Run(context.Background(), func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}, nil)
	if !errors.Is(err, jsonconntest.ErrUnreachable) {
		t.Fatalf("Run = %v; want ErrUnreachable", err)
	}
}

// TestTestPeer runs the helper against a conforming peer, as a user's test
// would, and against a broken one in a test of its own whose failure is
// the point: each case is a subtest, a Fail fails it, quoting the rule.
func TestTestPeer(t *testing.T) {
	t.Parallel()
	if os.Getenv("JSONCONNTEST_BROKEN_PEER") != "" {
		jsonconntest.TestPeerWith(t, &jsonconntest.Options{CaseTimeout: time.Second, Conns: 5, Run: regexp.MustCompile(`^1\.(1|2)$`)}, startBrokenPeer(t, "mangle", 0))
		return
	}
	jsonconntest.TestPeer(t, startBrokenPeer(t, "", 0))

	// The broken peer's run, in a child process, so that its failure is
	// this test's evidence rather than this test's failure.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestTestPeer$", "-test.v")
	cmd.Env = append(os.Environ(), "JSONCONNTEST_BROKEN_PEER=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the broken peer's run = %v; want it to fail:\n%s", err, out)
	}
	for _, want := range []string{
		"--- FAIL: TestTestPeer/1.1_the_sender_test_vectors_round-trip",
		"--- PASS: TestTestPeer/1.2_a_payload_of_1_byte_round-trips",
		`rule: "§1 A receiver MUST deliver the payloads of a stream whole`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the broken peer's run does not say %q:\n%s", want, out)
		}
	}
}

// TestRunContext: a ctx that ends before the run or in the middle of a case
// ends it with ctx's error, and the interrupted case gets no verdict (it
// would otherwise read as the peer's failure to answer).
func TestRunContext(t *testing.T) {
	t.Parallel()
	dial := startBrokenPeer(t, "", 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := jsonconntest.Run(ctx, dial, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with a cancelled ctx = %v; want context.Canceled", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	var seen []string
	rep, err := jsonconntest.Run(ctx, dial, &jsonconntest.Options{CaseTimeout: 4 * time.Second, Progress: func(r jsonconntest.Result) {
		seen = append(seen, r.ID)
		if len(seen) == 2 {
			// The next case, 1.3, starts and is cut short.
			time.AfterFunc(20*time.Millisecond, cancel)
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v; want context.Canceled", err)
	}
	for _, r := range rep.Cases {
		if r.Verdict != jsonconntest.Pass {
			t.Errorf("case %s: %s (%s); want pass, and no verdict for a case ctx cut short", r.ID, r.Verdict, r.Detail)
		}
	}
	if len(rep.Cases) != len(seen) {
		t.Errorf("%d cases in the report, %d given to Progress", len(rep.Cases), len(seen))
	}
}

// TestTransientDialFailures: a dial that fails now and then (every fifth
// here) fails no case and is not taken for a crash.
func TestTransientDialFailures(t *testing.T) {
	t.Parallel()
	dial := startBrokenPeer(t, "", 0)
	var calls atomic.Int64
	flaky := func(ctx context.Context) (net.Conn, error) {
		if calls.Add(1)%5 == 0 {
			return nil, errors.New("a transient failure, injected")
		}
		return dial(ctx)
	}
	rep, err := jsonconntest.Run(context.Background(), flaky, &jsonconntest.Options{CaseTimeout: 4 * time.Second, Conns: 5, Run: regexp.MustCompile(`^(1\.[1-9]|2\.[1-7]|3\.[12])$`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Cases {
		if r.Verdict == jsonconntest.Fail || r.Verdict == jsonconntest.Skipped {
			t.Errorf("case %s: %s (%s)", r.ID, r.Verdict, r.Detail)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
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
)

// checkReport runs check against addr with args, in process, and returns
// its exit status and parsed -json report.
func checkReport(t *testing.T, addr string, args ...string) (int, report) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(append([]string{"check", "-json"}, args...), addr)
	status := run(args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("check %v: status %d, stdout not a JSON report (%v):\n%s\nstderr:\n%s", args, status, err, stdout.String(), stderr.String())
	}
	return status, rep
}

// verdicts maps each case's ID to its verdict.
func verdicts(rep report) map[string]verdict {
	m := make(map[string]verdict)
	for _, c := range rep.Cases {
		m[c.ID] = c.Verdict
	}
	return m
}

// brokenPeer is an echo server that breaks one rule of the protocol on
// purpose, named by fault (see serve), so that the test can see check catch
// it; with fault "" it breaks none.
type brokenPeer struct {
	fault string
	n     int         // the fault's parameter
	dead  atomic.Bool // die-on-reset: a reset has stopped the server
}

// startBrokenPeer serves a broken peer on a loopback port until the test ends.
func startBrokenPeer(t *testing.T, fault string, n int) string {
	t.Helper()
	return startBrokenPeerOn(t, "tcp", fault, n)
}

// startBrokenPeerOn is startBrokenPeer on the network rawServerOn takes.
func startBrokenPeerOn(t *testing.T, network, fault string, n int) string {
	t.Helper()
	bp := &brokenPeer{fault: fault, n: n}
	// die-on-reset must take in one connection's reset before it sees the
	// next connection, or check's case 3.2 could find it still answering.
	return rawServerOn(t, network, fault == "die-on-reset", bp.serve)
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
func (bp *brokenPeer) serve(c net.Conn) {
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
		if bp.fault == "mangle" {
			m = bytes.ReplaceAll(m, []byte("é"), []byte("e"))
		}
		c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m))))
		c.Write(m)
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

// TestCheckFindsEachBrokenPeer is what keeps the suite from being vacuous:
// for each rule a case checks as a MUST, a peer that breaks it makes that
// case fail, and no case unrelated to it; a peer that breaks nothing passes.
// The checks run all at once (they mostly wait on the network), and each
// fault's verdicts are then judged in a subtest of its own.
func TestCheckFindsEachBrokenPeer(t *testing.T) {
	t.Parallel()
	type brokenCase struct {
		fault   string
		n       int
		fails   []string // cases that must fail
		related []string // cases that may fail too, or not
		network string   // "tcp" unless set
		args    []string // check's flags beyond the common ones
	}
	// The split cases catch a peer that reads once only if it sees each
	// piece arrive on its own. Over a Unix socket on Linux, check writes a
	// piece only once the peer has read the one before, waiting for each at
	// most -timeout over twice the number of pieces (0.8 s or less here,
	// which only a hang exceeds). Elsewhere
	// it pauses between pieces, and a loaded machine can sleep through the
	// pause, so there the split cases may pass this peer.
	readOnce := brokenCase{fault: "read-once", fails: []string{"1.10", "1.11"},
		related: []string{"1.5", "1.6", "1.7", "1.8", "1.9", "1.12", "3.7", "2.9"},
		network: "unix", args: []string{"-timeout", "8s"}}
	if runtime.GOOS != "linux" {
		readOnce.related = append(readOnce.related, readOnce.fails...)
		readOnce.fails, readOnce.network, readOnce.args = nil, "", nil
	}
	faults := []brokenCase{
		{fault: ""},
		{fault: "close-on", n: 1, fails: []string{"1.2"}, related: []string{"1.1"}},
		{fault: "close-on", n: 512, fails: []string{"1.3"}},
		{fault: "close-on", n: 513, fails: []string{"1.4"}},
		{fault: "close-on", n: 16384, fails: []string{"1.5"}, related: []string{"3.4"}},
		{fault: "close-on", n: 16385, fails: []string{"1.6"}},
		{fault: "close-on", n: 65536, fails: []string{"1.7"}},
		{fault: "cap", n: 200000, fails: []string{"1.8", "1.9"}},
		{fault: "close-on", n: brokenCap, fails: []string{"1.9"}},
		readOnce,
		{fault: "reorder", fails: []string{"1.12"}, related: []string{"1.1", "1.13", "2.3", "3.1"}},
		{fault: "mangle", fails: []string{"1.1", "1.13"}},
		{fault: "no-cap", fails: []string{"2.1", "2.2", "2.3"}},
		{fault: "drop-before", fails: []string{"2.3"}},
		{fault: "no-validate", fails: []string{"2.4", "2.5", "2.6", "2.7"}},
		{fault: "die-on-reset", fails: []string{"3.2"}},
	}
	type result struct {
		status int
		rep    report
		err    string
	}
	results := make([]result, len(faults))
	var wg sync.WaitGroup
	for i, f := range faults {
		network := cmp.Or(f.network, "tcp")
		addr := startBrokenPeerOn(t, network, f.fault, f.n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var stdout, stderr bytes.Buffer
			args := append([]string{"check", "-json", "-timeout", "2s", "-conns", "5"}, f.args...)
			args = append(args, addr)
			results[i].status = run(args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr})
			if err := json.Unmarshal(stdout.Bytes(), &results[i].rep); err != nil {
				results[i].err = fmt.Sprintf("no JSON report (%v): %s%s", err, stdout.String(), stderr.String())
			}
		}()
	}
	wg.Wait()
	for i, tc := range faults {
		name := tc.fault
		if tc.n != 0 {
			name += " " + strconv.Itoa(tc.n)
		}
		if name == "" {
			name = "conforming"
		}
		t.Run(name, func(t *testing.T) {
			res := results[i]
			if res.err != "" {
				t.Fatal(res.err)
			}
			got := verdicts(res.rep)
			for _, id := range tc.fails {
				if got[id] != fail {
					t.Errorf("case %s: %s, want fail", id, got[id])
				}
			}
			for _, c := range res.rep.Cases {
				if c.Verdict == fail && !slices.Contains(tc.fails, c.ID) && !slices.Contains(tc.related, c.ID) {
					t.Errorf("case %s (%s) failed, which the fault does not explain: %s", c.ID, c.Title, c.Detail)
				}
			}
			want := exitOK
			if slices.ContainsFunc(res.rep.Cases, func(c caseResult) bool { return c.Verdict == fail }) {
				want = exitError
			}
			if res.status != want {
				t.Errorf("exit status %d, want %d", res.status, want)
			}
		})
	}
}

// TestCheckHalfCloseIsAShould checks that a peer that drops what it owes at
// the end of the stream gets non-strict, the verdict of a SHOULD.
func TestCheckHalfCloseIsAShould(t *testing.T) {
	t.Parallel()
	addr := startBrokenPeer(t, "drop-on-eof", 0)
	_, rep := checkReport(t, addr, "-timeout", "3s", "-run", `^3\.1$`)
	if got := verdicts(rep)["3.1"]; got != nonStrict {
		t.Fatalf("3.1: %s, want non-strict: %+v", got, rep.Cases)
	}
}

// TestCheckListenEcho checks jsonconn listen -echo with the suite, both as
// child processes: it passes with no failure, within the 30 s the issue
// allows.
func TestCheckListenEcho(t *testing.T) {
	t.Parallel()
	l := start(t, strings.NewReader(""), "listen", "-echo", "127.0.0.1:0")
	addr := awaitOutput(t, l.stderr, `listening on (127\.0\.0\.1:\d+)\n`)
	start := time.Now()
	c := expect(t, exitOK, "", "check", addr)
	took := time.Since(start)
	out := c.stdout.String()
	if !regexp.MustCompile(`\n31 cases: \d+ pass, 0 non-strict, 0 fail, \d+ info\n$`).MatchString(out) {
		t.Errorf("check of listen -echo:\n%s", out)
	}
	t.Logf("check of listen -echo took %v", took)
	if took > 30*time.Second {
		t.Errorf("the default run took %v, want under 30 s", took)
	}
}

// TestCheckUnreachable checks that a peer that is not there gets a status
// of its own, distinct from a failed case.
func TestCheckUnreachable(t *testing.T) {
	t.Parallel()
	// A socket path nobody listens on, which no other test can take, as
	// it could a loopback port just closed.
	addr := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	p := expect(t, exitUnreachable, "", "check", "-timeout", "2s", addr)
	if !strings.Contains(p.stderr.String(), "cannot reach the peer") {
		t.Errorf("stderr = %q", p.stderr)
	}
}

// TestCheckReports checks the -json document and the JUnit XML: every case
// with its section and verdict, failures as JUnit failures.
func TestCheckReports(t *testing.T) {
	t.Parallel()
	addr := startBrokenPeer(t, "mangle", 0)
	junit := filepath.Join(t.TempDir(), "check.xml")
	status, rep := checkReport(t, addr, "-run", `^1\.(1|2|3|13)$`, "-junit", junit)
	if status != exitError || rep.Target != addr || rep.Summary.Cases != 4 || rep.Summary.Fail != 2 || rep.Summary.Pass != 2 {
		t.Fatalf("status %d, report %+v", status, rep)
	}
	for _, c := range rep.Cases {
		if c.ID == "" || !strings.HasPrefix(c.Section, "§") || c.Title == "" || c.Detail == "" || c.Verdict == "" {
			t.Errorf("incomplete case in the report: %+v", c)
		}
	}
	raw, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testcase"`
	}
	if err := xml.Unmarshal(raw, &suite); err != nil {
		t.Fatalf("JUnit XML: %v\n%s", err, raw)
	}
	failures := 0
	for _, c := range suite.Cases {
		if c.Failure != nil {
			failures++
		}
	}
	if suite.Tests != 4 || suite.Failures != 2 || failures != 2 || len(suite.Cases) != 4 {
		t.Errorf("JUnit: %d tests, %d failures (%d failure elements) in %d testcases; want 4, 2, 2, 4\n%s", suite.Tests, suite.Failures, failures, len(suite.Cases), raw)
	}
}

// TestCheckVectorsAreTheProtocols keeps check's sender vectors equal to the
// rows of docs/protocol.md that a sender produces: those that end in a clean
// end of stream and have bytes.
func TestCheckVectorsAreTheProtocols(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	sc := bufio.NewScanner(f)
	inTable := false
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
		stream := strings.Trim(strings.TrimSpace(cells[2]), "`")
		if !strings.HasSuffix(strings.TrimSpace(cells[3]), "`io.EOF`") || stream == "(empty)" {
			continue
		}
		want = append(want, strings.TrimSpace(cells[0])+" "+strings.ReplaceAll(stream, " ", ""))
	}
	var got []string
	for _, v := range senderVectors {
		if _, err := hex.DecodeString(v.stream); err != nil {
			t.Fatalf("vector %q: %v", v.name, err)
		}
		got = append(got, v.name+" "+v.stream)
	}
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("check's sender vectors:\n%s\nprotocol.md's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

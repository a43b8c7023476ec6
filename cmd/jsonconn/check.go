package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jsonconn/jsonconn"
)

// check: a conformance suite for any framed-JSON echo peer. The cases are in
// checkcases.go; this file runs them and reports.

func runCheck(args []string, e *env) int {
	fs := newFlagSet(e, "check", "[flags] ADDR", `Check the echo peer at ADDR against docs/protocol.md: a peer that answers each
message with an equal JSON value (jsonconn listen -echo is one). Each numbered case
names the section of the protocol whose rule it checks and gets a verdict that
follows the rule's word: pass; non-strict, a SHOULD not met; fail, a MUST
violated; info, measured where the protocol says MAY or nothing. The peer's own
cap (-max-frame) and whether it validates JSON (-validate) are inputs: the cases
about invalid payloads are info for a peer that does not validate.

A table goes to stdout, one line per case and a summary; -json prints one JSON
document instead, and -junit also writes JUnit XML. The status is 0 if no case
failed, 1 if one did, and 4 if the peer could not be reached at all.`)
	maxFrame := sizeValue(jsonconn.DefaultMaxFrameSize)
	fs.Var(&maxFrame, "max-frame", "the peer's frame cap, the largest payload `size` it accepts (up to 1GiB)")
	validate := fs.Bool("validate", true, "the peer validates JSON and closes on a payload that is not (protocol.md §3)")
	runRE := fs.String("run", "", "run only the cases whose ID or title matches this `regexp`")
	timeout := fs.Duration("timeout", 5*time.Second, "how long each case may take")
	jsonOut := fs.Bool("json", false, "print one JSON document instead of the table")
	junit := fs.String("junit", "", "also write the results as JUnit XML to this `file`")
	conns := fs.Int("conns", 50, "how many connections the concurrency case opens at once")
	tlsf := tlsClientFlags(fs)
	ep, status, ok := fs.parseEndpoint(args, &maxFrame)
	if !ok {
		return status
	}
	var filter *regexp.Regexp
	if *runRE != "" {
		var err error
		if filter, err = regexp.Compile(*runRE); err != nil {
			return fs.usageError("-run: %v", err)
		}
	}
	tlsConfig, err := tlsf.config()
	switch {
	case err != nil:
		return fs.usageError("%v", err)
	case *timeout <= 0:
		return fs.usageError("-timeout must be positive")
	case *conns < 1:
		return fs.usageError("-conns must be at least 1")
	}
	ctx, signalStatus, stop := interrupts(e, "check")
	defer stop()

	k := &checker{network: ep.network, address: ep.address, tls: tlsConfig, cap: int(maxFrame),
		validates: *validate, timeout: *timeout, conns: *conns}
	if err := k.reachable(ctx); err != nil {
		if s := signalStatus(); s >= 0 {
			return s
		}
		fmt.Fprintf(e.stderr, "jsonconn check: %s: cannot reach the peer: %v\n", fs.pos[0], err)
		return exitUnreachable
	}
	rep := report{Target: fs.pos[0]}
	var progress io.Writer = io.Discard
	if !*jsonOut {
		progress = e.stdout
		fmt.Fprintf(progress, "jsonconn check %s (cap %s, validate %t)\n\n", fs.pos[0], formatSize(int(maxFrame)), *validate)
	}
	for _, c := range checkCases {
		if filter != nil && !filter.MatchString(c.id) && !filter.MatchString(c.title) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r := k.run(ctx, c)
		rep.add(r)
		fmt.Fprintln(progress, r.line())
	}
	if s := signalStatus(); s >= 0 {
		return s
	}
	if *jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(e.stderr, "jsonconn check: %v\n", err)
			return exitError
		}
	} else {
		fmt.Fprintf(e.stdout, "\n%s\n", rep.Summary)
	}
	if *junit != "" {
		if err := rep.writeJUnit(*junit); err != nil {
			fmt.Fprintf(e.stderr, "jsonconn check: -junit: %v\n", err)
			return exitError
		}
	}
	if rep.Summary.Fail > 0 {
		return exitError
	}
	return exitOK
}

// A verdict is what a case found, in the words of protocol.md §9.
type verdict string

const (
	pass      verdict = "pass"
	nonStrict verdict = "non-strict"
	fail      verdict = "fail"
	info      verdict = "info"
)

// A checkCase checks one rule of the protocol against the peer.
type checkCase struct {
	id, section, title string
	run                func(ctx context.Context, k *checker) (verdict, string)
}

// A caseResult is one line of the report.
type caseResult struct {
	ID      string  `json:"id"`
	Section string  `json:"section"`
	Title   string  `json:"title"`
	Verdict verdict `json:"verdict"`
	Detail  string  `json:"detail"`
	MS      int64   `json:"ms"`
}

func (r caseResult) line() string {
	return fmt.Sprintf("%-5s %-4s %-10s %6dms  %s: %s", r.ID, r.Section, r.Verdict, r.MS, r.Title, r.Detail)
}

// A report is what check prints with -json.
type report struct {
	Target  string       `json:"target"`
	Cases   []caseResult `json:"cases"`
	Summary summary      `json:"summary"`
}

// A summary counts the verdicts.
type summary struct {
	Cases     int `json:"cases"`
	Pass      int `json:"pass"`
	NonStrict int `json:"non_strict"`
	Fail      int `json:"fail"`
	Info      int `json:"info"`
}

func (s summary) String() string {
	return fmt.Sprintf("%d cases: %d pass, %d non-strict, %d fail, %d info", s.Cases, s.Pass, s.NonStrict, s.Fail, s.Info)
}

func (rep *report) add(r caseResult) {
	rep.Cases = append(rep.Cases, r)
	rep.Summary.Cases++
	switch r.Verdict {
	case pass:
		rep.Summary.Pass++
	case nonStrict:
		rep.Summary.NonStrict++
	case fail:
		rep.Summary.Fail++
	default:
		rep.Summary.Info++
	}
}

// writeJUnit writes the report as JUnit XML: one testcase per case, a
// failure for each fail, and the detail of every case as its output.
func (rep *report) writeJUnit(path string) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      float64  `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		SystemOut string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Time     float64    `xml:"time,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	ts := testsuite{Name: "jsonconn check " + rep.Target, Tests: len(rep.Cases), Failures: rep.Summary.Fail}
	for _, r := range rep.Cases {
		tc := testcase{
			Name:      r.ID + " " + r.Title,
			Classname: "protocol." + strings.TrimPrefix(r.Section, "§"),
			Time:      float64(r.MS) / 1000,
			SystemOut: string(r.Verdict) + ": " + r.Detail,
		}
		if r.Verdict == fail {
			tc.Failure = &failure{Message: r.Section + " " + r.Title, Text: r.Detail}
		}
		ts.Time += tc.Time
		ts.Cases = append(ts.Cases, tc)
	}
	out, err := xml.MarshalIndent(ts, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(out, '\n')...), 0o644)
}

// A checker runs cases against one peer.
type checker struct {
	network, address string
	tls              *tls.Config
	cap              int  // the peer's frame cap
	validates        bool // the peer validates JSON
	timeout          time.Duration
	conns            int
}

// reachable dials the peer once, so that a peer that is not there at all
// gets its own exit status rather than a failure per case.
func (k *checker) reachable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	c, err := k.dial(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// run runs one case under the per-case timeout. A case that panics is
// reported as a fail of the checker itself rather than crashing the run.
func (k *checker) run(ctx context.Context, c checkCase) (r caseResult) {
	r = caseResult{ID: c.id, Section: c.section, Title: c.title}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			r.Verdict, r.Detail = fail, fmt.Sprintf("the checker panicked: %v", p)
		}
		r.MS = time.Since(start).Milliseconds()
	}()
	r.Verdict, r.Detail = c.run(ctx, k)
	return r
}

// dial opens a raw connection to the peer (TLS if configured) whose
// deadline is ctx's.
func (k *checker) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, k.network, k.address)
	if err != nil {
		return nil, err
	}
	if k.tls != nil {
		cfg := k.tls.Clone()
		if cfg.ServerName == "" && k.network != "unix" {
			cfg.ServerName, _, _ = net.SplitHostPort(k.address)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// A probe is one raw connection to the peer, with a Reader that accepts
// any frame the peer sends (the checks are the cases' own).
type probe struct {
	net.Conn
	r *jsonconn.Reader
}

// open dials a probe, closed when ctx ends.
func (k *checker) open(ctx context.Context) (*probe, error) {
	c, err := k.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	return &probe{Conn: c, r: jsonconn.NewReader(c, &jsonconn.Config{MaxFrameSize: jsonconn.MaxFrameSizeLimit, DisableValidation: true})}, nil
}

// send writes the frames of payloads in one write.
func (p *probe) send(payloads ...[]byte) error {
	var b []byte
	for _, m := range payloads {
		b = appendFrame(b, m)
	}
	_, err := p.Write(b)
	return err
}

// recv returns the next payload the peer sends.
func (p *probe) recv() ([]byte, error) { return p.r.ReadMessage() }

// appendFrame appends the frame of payload m to b.
func appendFrame(b, m []byte) []byte {
	b = append(b, byte(len(m)>>24), byte(len(m)>>16), byte(len(m)>>8), byte(len(m)))
	return append(b, m...)
}

// closeKind says how a read found the connection ended: "" if it did not.
func closeKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case isTimeoutErr(err):
		return ""
	case errors.Is(err, net.ErrClosed):
		return ""
	}
	return "reset" // ECONNRESET and the like: a close with unread bytes
}

// isTimeoutErr reports whether err is a deadline or a timeout.
func isTimeoutErr(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// awaitClose reads until the peer closes the connection or ctx ends, and
// reports how it ended and how many frames arrived first.
func (p *probe) awaitClose() (how string, frames int) {
	for {
		_, err := p.recv()
		if err == nil {
			frames++
			continue
		}
		return closeKind(err), frames
	}
}

// Package jsonconntest checks that a peer speaks the jsonconn wire protocol
// (docs/protocol.md), whatever its language: it runs numbered cases against
// an echo peer, one that answers each message with a message whose JSON
// value is equal to it, and gives each a verdict that follows the word of
// the rule it checks (protocol.md §9).
//
// [TestPeer] runs the suite from a Go test, each case as a subtest, the way
// golang.org/x/net/nettest's TestConn checks a net.Conn:
//
//	func TestEchoServer(t *testing.T) {
//		addr := startEchoServer(t)
//		jsonconntest.TestPeer(t, func(ctx context.Context) (net.Conn, error) {
//			var d net.Dialer
//			return d.DialContext(ctx, "tcp", addr)
//		})
//	}
//
// [Run] runs it with [Options] and returns a [Report], which can be written
// as text, JSON or JUnit XML; `jsonconn check` is flags and output around
// it. The dial function makes every connection the cases need, so TCP, Unix
// sockets and TLS need no options of their own.
//
// The package uses only the exported API of package jsonconn.
package jsonconntest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/internal/sniff"
)

// A Verdict is what a case found, in the words of protocol.md §9.
type Verdict string

const (
	// Pass: the peer did what the rule says.
	Pass Verdict = "pass"
	// NonStrict: a SHOULD or SHOULD NOT not met.
	NonStrict Verdict = "non-strict"
	// Fail: a MUST or MUST NOT violated, or the peer stopped accepting
	// connections after the case.
	Fail Verdict = "fail"
	// Info: measured; the rule says MAY, or says nothing.
	Info Verdict = "info"
	// Skipped: not run, because the peer stopped accepting connections
	// after an earlier case.
	Skipped Verdict = "skipped"
)

// Errors that end a run before its cases, for a peer that cannot be
// checked at all. Run's error wraps one of them and says why.
var (
	// ErrUnreachable: the first connection to the peer failed.
	ErrUnreachable = errors.New("jsonconntest: cannot reach the peer")
	// ErrNotFramedJSON: the peer's first answer begins like another
	// protocol (HTTP, TLS, SSH, Redis, a PROXY header, plain text), so
	// none of the cases could tell anything.
	ErrNotFramedJSON = errors.New("jsonconntest: not a framed-JSON peer")
)

// Options configure a run. The zero value checks a peer with the default
// cap that validates JSON, with every case and the default timeouts.
type Options struct {
	// MaxFrameSize is the peer's frame cap: an input, not a guess. 0 means
	// jsonconn.DefaultMaxFrameSize.
	MaxFrameSize int

	// NoValidation says the peer does not validate JSON (a MAY of §3): the
	// cases about invalid payloads are then Info.
	NoValidation bool

	// Run selects the cases whose ID or title it matches; nil runs all.
	Run *regexp.Regexp

	// CaseTimeout bounds each case; 0 means 5 s. Cases that measure (the
	// drip, the stalled reader) may take all of it.
	CaseTimeout time.Duration

	// Conns is how many connections the concurrency case opens at once;
	// 0 means 50.
	Conns int

	// Target names the peer in the report, its address for example.
	Target string

	// Progress, if set, is called with each case's result as soon as it
	// has one, in order, from the goroutine that called Run.
	Progress func(Result)
}

// A Result is one case's line in the report.
type Result struct {
	ID      string  `json:"id"`
	Section string  `json:"section"`
	Title   string  `json:"title"`
	Verdict Verdict `json:"verdict"`
	Detail  string  `json:"detail"`
	// Rule is the sentence of protocol.md the peer did not follow, for a
	// Fail or NonStrict verdict of a rule (empty for a peer that stopped
	// accepting connections).
	Rule string `json:"rule,omitempty"`
	MS   int64  `json:"ms"`
}

// String returns the result as a line of the text report; a Fail or
// NonStrict line is followed by an indented line quoting the rule.
func (r Result) String() string {
	s := fmt.Sprintf("%-5s %-4s %-10s %6dms  %s: %s", r.ID, r.Section, r.Verdict, r.MS, r.Title, r.Detail)
	if r.Rule != "" {
		s += fmt.Sprintf("\n      rule: %q", r.Rule)
	}
	return s
}

// A Report is what a run found.
type Report struct {
	Target  string   `json:"target"`
	Cases   []Result `json:"cases"`
	Summary Summary  `json:"summary"`
	// Stopped says why the run ended before its last case, if it did.
	Stopped string `json:"stopped,omitempty"`
}

// A Summary counts the verdicts.
type Summary struct {
	Cases     int `json:"cases"`
	Pass      int `json:"pass"`
	NonStrict int `json:"non_strict"`
	Fail      int `json:"fail"`
	Info      int `json:"info"`
	Skipped   int `json:"skipped"`
}

func (s Summary) String() string {
	out := fmt.Sprintf("%d cases: %d pass, %d non-strict, %d fail, %d info", s.Cases, s.Pass, s.NonStrict, s.Fail, s.Info)
	if s.Skipped > 0 {
		out += fmt.Sprintf(", %d skipped", s.Skipped)
	}
	return out
}

func (rep *Report) add(r Result) {
	rep.Cases = append(rep.Cases, r)
	rep.Summary.Cases++
	switch r.Verdict {
	case Pass:
		rep.Summary.Pass++
	case NonStrict:
		rep.Summary.NonStrict++
	case Fail:
		rep.Summary.Fail++
	case Skipped:
		rep.Summary.Skipped++
	default:
		rep.Summary.Info++
	}
}

// Failed reports whether a case failed.
func (rep *Report) Failed() bool { return rep.Summary.Fail > 0 }

// Run runs the cases Options selects against the peer that dial connects
// to, in order, and returns the report. dial is called for every
// connection; the connection it returns is used only until ctx, or the
// case's timeout, ends.
//
// Before the cases, Run connects once and sends one message. If that
// connection fails, Run returns an error matching [ErrUnreachable]; if the
// answer begins like another protocol, one matching [ErrNotFramedJSON],
// naming it. After each case Run connects again (three times, 100 ms
// apart, before it concludes): if the peer no longer accepts a connection,
// that case fails with a detail that says so, and the cases after it are
// Skipped. If ctx ends, Run returns the report of the cases that ended
// before it, and ctx's error.
func Run(ctx context.Context, dial func(ctx context.Context) (net.Conn, error), opts *Options) (*Report, error) {
	k, err := newChecker(dial, opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Target: k.opts.Target}
	if err := k.hello(ctx); err != nil {
		return rep, err
	}
	for _, c := range k.selected() {
		r := k.runCase(ctx, c)
		if ctx.Err() != nil {
			// The case was cut short by ctx, not by the peer: it has no
			// verdict.
			return rep, ctx.Err()
		}
		rep.add(r)
		if k.opts.Progress != nil {
			k.opts.Progress(r)
		}
	}
	if k.deadAfter != "" {
		rep.Stopped = fmt.Sprintf("the peer stopped accepting connections after case %s", k.deadAfter)
	}
	return rep, ctx.Err()
}

// TestPeer runs the suite against the echo peer that dial connects to, each
// case as a subtest: a Fail is an error that quotes the rule, NonStrict and
// Info are logged, and the cases after the peer stopped accepting
// connections are skipped (the test has failed by then). It uses Options
// meant for tests: a case timeout of 3 s, long enough for a loaded machine
// running the race detector, and 10 concurrent connections. A conforming
// peer takes 3 to 6 s: the dripped frame (3.5) waits out its timeout unless
// the peer cuts it, and the throughput case (3.7) runs for a second.
func TestPeer(t *testing.T, dial func(ctx context.Context) (net.Conn, error)) {
	t.Helper()
	TestPeerWith(t, &Options{CaseTimeout: 3 * time.Second, Conns: 10}, dial)
}

// TestPeerWith is TestPeer with Options; Progress and Target are ignored.
func TestPeerWith(t *testing.T, opts *Options, dial func(ctx context.Context) (net.Conn, error)) {
	t.Helper()
	k, err := newChecker(dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k.hello(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range k.selected() {
		t.Run(c.id+" "+c.title, func(t *testing.T) {
			r := k.runCase(ctx, c)
			switch r.Verdict {
			case Fail:
				if r.Rule != "" {
					t.Errorf("%s %s: %s\nrule: %q", r.Section, r.Verdict, r.Detail, r.Rule)
				} else {
					t.Errorf("%s %s: %s", r.Section, r.Verdict, r.Detail)
				}
			case Skipped:
				t.Skip(r.Detail)
			case NonStrict:
				t.Logf("%s %s: %s\nrule: %q", r.Section, r.Verdict, r.Detail, r.Rule)
			default:
				t.Logf("%s %s: %s", r.Section, r.Verdict, r.Detail)
			}
		})
	}
}

// A checker runs cases against one peer.
type checker struct {
	dialFunc  func(ctx context.Context) (net.Conn, error)
	opts      Options
	cap       int  // the peer's frame cap
	validates bool // the peer validates JSON
	timeout   time.Duration
	conns     int
	deadAfter string // the case after which the peer stopped accepting connections
}

func newChecker(dial func(ctx context.Context) (net.Conn, error), opts *Options) (*checker, error) {
	k := &checker{dialFunc: dial, cap: jsonconn.DefaultMaxFrameSize, validates: true, timeout: 5 * time.Second, conns: 50}
	if opts != nil {
		k.opts = *opts
	}
	o := &k.opts
	switch {
	case dial == nil:
		return nil, errors.New("jsonconntest: no dial function")
	case o.MaxFrameSize < 0 || o.MaxFrameSize > jsonconn.MaxFrameSizeLimit:
		return nil, fmt.Errorf("jsonconntest: MaxFrameSize %d is outside 0 (the default) to %d", o.MaxFrameSize, jsonconn.MaxFrameSizeLimit)
	case o.CaseTimeout < 0:
		return nil, errors.New("jsonconntest: negative CaseTimeout")
	case o.Conns < 0:
		return nil, errors.New("jsonconntest: negative Conns")
	}
	if o.MaxFrameSize > 0 {
		k.cap = o.MaxFrameSize
	}
	if o.CaseTimeout > 0 {
		k.timeout = o.CaseTimeout
	}
	if o.Conns > 0 {
		k.conns = o.Conns
	}
	k.validates = !o.NoValidation
	return k, nil
}

// selected returns the cases the options select.
func (k *checker) selected() []checkCase {
	var cs []checkCase
	for _, c := range checkCases {
		if f := k.opts.Run; f == nil || f.MatchString(c.id) || f.MatchString(c.title) {
			cs = append(cs, c)
		}
	}
	return cs
}

// helloMessage is the message of the first connection. It ends with a blank
// line, white space that JSON allows after a value, so that a server of a
// line-based protocol (HTTP, Redis, SMTP) has a whole request to answer,
// and does, with an error that names its protocol.
var helloMessage = []byte("{\"jsonconntest\":\"hello\"}\r\n\r\n")

// hello connects once and sends helloMessage, so that a peer that is not
// there, or speaks another protocol, ends the run at once instead of failing
// every case after its timeout. A peer that does not answer within the
// case timeout is left to the cases.
func (k *checker) hello(parent context.Context) error {
	if err := parent.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(parent, k.timeout)
	defer cancel()
	c, err := k.dial(ctx)
	if err != nil {
		if parent.Err() != nil {
			return parent.Err()
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer c.Close()
	c.Write(appendFrame(nil, helloMessage))
	// Enough of an answer to name a protocol: a banner, a status line, a
	// TLS alert. A framed-JSON peer's echo is longer, or ends with EOF.
	buf := make([]byte, 0, 64)
	for len(buf) < 16 {
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
	}
	if hint := sniff.Header(buf, uint32(k.cap)); hint != "" {
		return fmt.Errorf("%w: its answer to a first message looks like %s (it began %q)", ErrNotFramedJSON, hint, clipBytes(buf, 32))
	}
	return nil
}

// clipBytes returns at most n bytes of b.
func clipBytes(b []byte, n int) []byte { return b[:min(len(b), n)] }

// runCase runs one case under the case timeout, then checks that the peer
// still accepts a connection. A case that panics is reported as a Fail of
// the checker itself rather than crashing the run.
func (k *checker) runCase(ctx context.Context, c checkCase) (r Result) {
	r = Result{ID: c.id, Section: c.section, Title: c.title}
	if k.deadAfter != "" {
		r.Verdict, r.Detail = Skipped, fmt.Sprintf("not run: the peer stopped accepting connections after case %s", k.deadAfter)
		return r
	}
	cctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	start := time.Now()
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.Verdict, r.Detail = Fail, fmt.Sprintf("the checker panicked: %v", p)
			}
		}()
		f := c.run(cctx, k)
		r.Verdict, r.Detail = f.verdict, f.detail
		if f.verdict == broken {
			rule := ruleFor(cmp.Or(f.rule, c.rule))
			r.Verdict, r.Rule = rule.verdict(), rule.quote()
		}
	}()
	r.MS = time.Since(start).Milliseconds()
	if ctx.Err() == nil {
		if err := k.alive(ctx); err != nil && ctx.Err() == nil {
			k.deadAfter = c.id
			r.Verdict, r.Rule = Fail, ""
			r.Detail = fmt.Sprintf("the peer stopped accepting connections after this case (it may have crashed): %v; the case found: %s", err, r.Detail)
		}
	}
	return r
}

// alive reports whether the peer still accepts a connection: it tries three
// times, 100 ms apart, so that one refused or timed-out dial is not taken
// for a crash.
func (k *checker) alive(ctx context.Context) error {
	var err error
	for try := range 3 {
		if try > 0 && !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
		dctx, cancel := context.WithTimeout(ctx, k.timeout)
		var c net.Conn
		c, err = k.dial(dctx)
		cancel()
		if err == nil {
			return c.Close()
		}
	}
	return err
}

// dial opens a connection to the peer whose deadline is ctx's.
func (k *checker) dial(ctx context.Context) (net.Conn, error) {
	c, err := k.dialFunc(ctx)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

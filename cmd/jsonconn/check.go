package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonconntest"
)

// check: the conformance suite of package jsonconntest, as flags and output.

func runCheck(args []string, e *env) int {
	fs := newFlagSet(e, "check", "[flags] ADDR", `Check the echo peer at ADDR against docs/protocol.md: a peer that answers each
message with an equal JSON value (jsonconn listen -echo is one). Each numbered case
names the section of the protocol whose rule it checks and gets a verdict that
follows the rule's word: pass; non-strict, a SHOULD not met; fail, a MUST
violated; info, measured where the protocol says MAY or nothing; skipped, not
run because the peer stopped accepting connections after an earlier case (which
fails). Every fail and non-strict line quotes the rule. The peer's own
cap (-max-frame) and whether it validates JSON (-validate) are inputs: the cases
about invalid payloads are info for a peer that does not validate.

A table goes to stdout, one line per case and a summary; -json prints one JSON
document instead, and -junit also writes JUnit XML. The status is 0 if no case
failed, 1 if one did, and 4 if the peer could not be reached at all, or its
answer to a first message shows it speaks another protocol (HTTP, TLS, SSH,
Redis...), which ends the run at once.`)
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

	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, ep.network, ep.address)
		if err != nil || tlsConfig == nil {
			return c, err
		}
		cfg := tlsConfig.Clone()
		if cfg.ServerName == "" && ep.network != "unix" {
			cfg.ServerName, _, _ = net.SplitHostPort(ep.address)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	opts := &jsonconntest.Options{MaxFrameSize: int(maxFrame), NoValidation: !*validate, Run: filter,
		CaseTimeout: *timeout, Conns: *conns, Target: fs.pos[0]}
	if !*jsonOut {
		// The heading goes out with the first case, once the peer has
		// answered as a framed-JSON peer.
		heading := fmt.Sprintf("jsonconn check %s (cap %s, validate %t)\n\n", fs.pos[0], formatSize(int(maxFrame)), *validate)
		opts.Progress = func(r jsonconntest.Result) {
			fmt.Fprint(e.stdout, heading)
			heading = ""
			fmt.Fprintln(e.stdout, r)
		}
	}
	rep, err := jsonconntest.Run(ctx, dial, opts)
	if s := signalStatus(); s >= 0 {
		return s
	}
	switch {
	case errors.Is(err, jsonconntest.ErrUnreachable):
		fmt.Fprintf(e.stderr, "jsonconn check: %s: %v\n", fs.pos[0], err)
		return exitUnreachable
	case errors.Is(err, jsonconntest.ErrNotFramedJSON):
		fmt.Fprintf(e.stderr, "jsonconn check: %s: %v\n", fs.pos[0], err)
		return exitUnreachable
	case err != nil:
		fmt.Fprintf(e.stderr, "jsonconn check: %v\n", err)
		return exitError
	}
	if *jsonOut {
		if err := rep.WriteJSON(e.stdout); err != nil {
			fmt.Fprintf(e.stderr, "jsonconn check: %v\n", err)
			return exitError
		}
	} else {
		if rep.Stopped != "" {
			fmt.Fprintf(e.stdout, "\nstopped: %s", rep.Stopped)
		}
		fmt.Fprintf(e.stdout, "\n%s\n", rep.Summary)
	}
	if *junit != "" {
		if err := writeJUnit(rep, *junit); err != nil {
			fmt.Fprintf(e.stderr, "jsonconn check: -junit: %v\n", err)
			return exitError
		}
	}
	if rep.Failed() {
		return exitError
	}
	return exitOK
}

// writeJUnit writes rep as JUnit XML to the file at path.
func writeJUnit(rep *jsonconntest.Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteJUnit(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

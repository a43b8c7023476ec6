package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/jsonconn/jsonconn"
)

func runDial(args []string, e *env) int {
	fs := newFlagSet(e, "dial", "[flags] ADDR", `Connect to ADDR. Each line of stdin (one JSON value per line) is sent as one
message; each message received is printed as one line on stdout. When stdin
ends, the sending side of the connection is shut down (the peer reads EOF) and
dial goes on printing until the peer closes its side, or for -wait. If the
peer closes first (a peer that only shuts down its sending side counts), dial
exits: at once at a terminal; otherwise when stdin ends, or, with status 1, at
the first line read after the peer closed, which it reports as not sent.

With -reconnect, dial keeps the connection up instead: when it ends (a server
restart), dial says so on stderr and redials with backoff, and lines read
meanwhile go out on the new connection. A line is never sent twice; lines sent
on a connection that then ended may not have arrived, and dial names them.
Once stdin ends, dial goes on printing for -wait, or until interrupted.`)
	maxFrame := maxFrameFlag(fs)
	pretty := fs.Bool("pretty", false, "print each message indented, over several lines")
	policy := badFlag(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the connection to be set up")
	wait := fs.Duration("wait", 0, "once stdin has ended, how long to wait for the peer to close before exiting; 0 means\nuntil it does (with -reconnect, until interrupted)")
	reconnect := fs.Bool("reconnect", false, "keep the connection up: when it ends (a server restart), redial with backoff,\nsay so on stderr, and send the lines read meanwhile on the new connection; lines\nsent on a connection that then ended may not have arrived, and dial says which")
	tlsf := tlsClientFlags(fs)
	ep, status, ok := fs.parseEndpoint(args, maxFrame)
	if !ok {
		return status
	}
	tlsConfig, err := tlsf.config()
	if err != nil {
		return fs.usageError("%v", err)
	}

	ctx, signalStatus, stop := interrupts(e, "dial")
	defer stop()
	if *reconnect {
		return dialReconnect(ctx, e, ep, reconnectOptions{
			dialer:       jsonconn.Dialer{Config: ep.cfg, TLSConfig: tlsConfig, NetDialer: &net.Dialer{Timeout: *timeout}},
			pretty:       *pretty,
			policy:       *policy,
			max:          int(*maxFrame),
			wait:         *wait,
			signalStatus: signalStatus,
		})
	}
	dctx, cancel := context.WithTimeout(ctx, *timeout)
	d := jsonconn.Dialer{Config: ep.cfg, TLSConfig: tlsConfig}
	c, err := d.DialConn(dctx, ep.network, ep.address)
	cancel()
	if err != nil {
		if s := signalStatus(); s >= 0 {
			return s
		}
		// A net.OpError names the operation, the address and the cause.
		fmt.Fprintf(e.stderr, "jsonconn dial: %v\n", err)
		return exitError
	}
	defer c.Close()

	out := newPrinter(e.stdout, *pretty)
	received := make(chan error, 1)
	go func() {
		err := receive(c, func(msg []byte) error { return out.print("", msg, "") })
		if errors.Is(err, net.ErrClosed) {
			err = nil // closed here, on the way out
		}
		received <- err
	}()
	snd := &sender{e: e, cmd: "dial", policy: *policy, max: int(*maxFrame)}
	sent := make(chan error, 1)
	var peerClosed atomic.Bool
	go func() {
		sent <- snd.run(e.stdin, func(line []byte) error {
			if peerClosed.Load() {
				return errPeerClosed
			}
			_, err := c.Write(line)
			return err
		})
	}()

	exit := func(err error) int {
		switch {
		case err != nil:
			fmt.Fprintf(e.stderr, "jsonconn dial: %s: %v\n", ep.address, err)
			return exitError
		case snd.bad.Load() > 0:
			return exitBadInput
		}
		return exitOK
	}
	var waited <-chan time.Time // after stdin ends, with -wait
	for {
		select {
		case <-ctx.Done():
			// Let a message being written finish (CloseWrite waits for
			// it, a second at most), so the peer never sees half a
			// frame; what was received is printed already.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.CloseWrite()
			c.Close()
			if received != nil {
				<-received
			}
			return signalStatus()
		case err := <-sent:
			sent = nil
			if err != nil && !errors.Is(err, errStopped) {
				// If the connection was closed under the write because
				// the peer broke the protocol, that is the cause.
				if errors.Is(err, net.ErrClosed) && received != nil {
					if rerr := <-received; rerr != nil {
						return exit(rerr)
					}
				}
				return exit(err)
			}
			if received == nil {
				return exit(nil) // the peer has closed already
			}
			// The peer reads EOF after our last message; a peer that
			// replies to each message answers them all, then closes.
			if err := c.CloseWrite(); err != nil {
				return exit(fmt.Errorf("closing the sending side: %w", err))
			}
			if *wait > 0 {
				waited = time.After(*wait)
			}
		case err := <-received:
			received = nil
			if err != nil || sent == nil {
				return exit(err)
			}
			// The peer closed first. At a terminal, that ends the
			// session, as in netcat. Otherwise stdin may hold lines that
			// will not be sent: wait for its end, and if a line comes
			// first, report it and fail.
			if isTerminal(e.stdin) {
				fmt.Fprintf(e.stderr, "jsonconn dial: %s closed the connection\n", ep.address)
				return exit(nil)
			}
			peerClosed.Store(true)
			fmt.Fprintf(e.stderr, "jsonconn dial: %s closed the connection; waiting for the end of stdin\n", ep.address)
		case <-waited:
			return exit(nil)
		}
	}
}

// errPeerClosed refuses a stdin line read after the peer closed.
var errPeerClosed = errors.New("the peer closed the connection")

// isTerminal reports whether stream, one of the standard streams, is a
// terminal.
func isTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jsonconn/jsonconn"
)

func runDial(args []string, e *env) int {
	fs := newFlagSet(e, "dial", "[flags] ADDR", `Connect to ADDR. Each line of stdin (one JSON value per line) is sent as one
message; each message received is printed as one line on stdout. When stdin
ends, the sending side of the connection is shut down (the peer reads EOF) and
dial goes on printing until the peer closes its side.`)
	maxFrame := maxFrameFlag(fs)
	pretty := fs.Bool("pretty", false, "print each message indented, over several lines")
	policy := badFlag(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the connection to be set up")
	ep, status, ok := fs.parseEndpoint(args, maxFrame)
	if !ok {
		return status
	}

	ctx, signalStatus, stop := interrupts(e, "dial")
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, *timeout)
	d := jsonconn.Dialer{Config: ep.cfg}
	nc, err := d.DialContext(dctx, ep.network, ep.address)
	cancel()
	if err != nil {
		if s := signalStatus(); s >= 0 {
			return s
		}
		// A net.OpError names the operation, the address and the cause.
		fmt.Fprintf(e.stderr, "jsonconn dial: %v\n", err)
		return exitError
	}
	c := nc.(*jsonconn.Conn)
	defer c.Close()

	out := newPrinter(e.stdout, *pretty)
	received := make(chan error, 1)
	go func() { received <- printMessages(c, out, "", "") }()
	snd := &sender{e: e, cmd: "dial", policy: *policy, max: int(*maxFrame)}
	sent := make(chan error, 1)
	go func() {
		sent <- snd.run(e.stdin, func(line []byte) error {
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
	for {
		select {
		case <-ctx.Done():
			// Let a message being written finish (CloseWrite waits for
			// it, a second at most), so the peer never sees half a
			// frame; what was received is printed already.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.CloseWrite()
			c.Close()
			<-received
			return signalStatus()
		case err := <-sent:
			sent = nil // stdin is done; wait for the peer
			if err != nil && !errors.Is(err, errStopped) {
				return exit(err)
			}
			// The peer reads EOF after our last message; a peer that
			// replies to each message answers them all, then closes.
			if err := c.CloseWrite(); err != nil {
				return exit(fmt.Errorf("closing the sending side: %w", err))
			}
		case err := <-received:
			// The peer closed, or broke the connection. A read error
			// caused by a failed write is reported by the write, which is
			// more precise.
			return exit(err)
		}
	}
}

// printMessages prints every message c receives, between prefix and
// suffix, until the stream ends. It returns nil at a clean end of stream or
// when c is closed locally, and the error otherwise.
func printMessages(c *jsonconn.Conn, out *printer, prefix, suffix string) error {
	var buf []byte
	for {
		var err error
		buf, err = c.AppendMessage(buf[:0])
		switch {
		case err == io.EOF, errors.Is(err, net.ErrClosed):
			return nil
		case err != nil:
			return fmt.Errorf("receiving: %w", err)
		}
		if err := out.print(prefix, buf, suffix); err != nil {
			return fmt.Errorf("printing: %w", err)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jsonconn/jsonconn"
)

func runDemo(args []string, e *env) int {
	fs := newFlagSet(e, "demo", "[flags]", `Show jsonconn working, with no setup: start an echo server on a loopback
port, connect to it, exchange a few messages (and have two bad ones refused
before they are sent), then measure the echo throughput for -duration with a
live progress line.`)
	maxFrame := maxFrameFlag(fs)
	duration := fs.Duration("duration", 3*time.Second, "how long to measure throughput")
	size := sizeValue(1024)
	fs.Var(&size, "size", fmt.Sprintf("the payload `size` of the throughput run's messages, at least %d bytes", minLoadSize))
	conns := fs.Int("conns", 1, "how many connections the throughput run uses")
	if status, ok := fs.parse(args, 0); !ok {
		return status
	}
	cfg, err := config(maxFrame)
	if err != nil {
		return fs.usageError("%v", err)
	}
	switch {
	case int(size) < minLoadSize || int(size) > int(*maxFrame):
		return fs.usageError("-size must be from %d bytes to -max-frame (%s)", minLoadSize, maxFrame)
	case *duration <= 0:
		return fs.usageError("-duration must be positive")
	case *conns < 1:
		return fs.usageError("-conns must be at least 1")
	}
	ctx, signalStatus, stop := interrupts(e, "demo")
	defer stop()

	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "jsonconn demo: %v\n", err)
		return exitError
	}
	srv := &jsonconn.Server{
		Config:       cfg,
		WriteTimeout: 10 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(e.stderr, nil)),
		Handler:      jsonconn.HandlerFunc(echoHandler),
	}
	go srv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}()
	addr := ln.Addr().String()
	fmt.Fprintf(e.stdout, "echo server listening on %s\n", addr)

	if err := exchange(ctx, e.stdout, addr, cfg); err != nil {
		if s := signalStatus(); s >= 0 {
			return s
		}
		fmt.Fprintf(e.stderr, "jsonconn demo: %v\n", err)
		return exitError
	}

	fmt.Fprintf(e.stdout, "\nthroughput: %d connection(s) sending %d-byte messages to the echo server for %v\n", *conns, size, *duration)
	l := &load{network: "tcp", address: addr, cfg: cfg, size: int(size), conns: *conns,
		duration: *duration, echo: true, window: 16, dialTimeout: 10 * time.Second}
	return l.report(ctx, e, "demo", signalStatus)
}

// echoHandler sends every message back to its sender until the stream ends.
func echoHandler(_ context.Context, c *jsonconn.Conn) {
	receive(c, func(msg []byte) error {
		_, err := c.Write(msg)
		return err
	})
}

// exchange connects to the echo server at addr and sends a few messages,
// printing what goes out, what comes back and what is refused.
func exchange(ctx context.Context, out io.Writer, addr string, cfg *jsonconn.Config) error {
	d := jsonconn.Dialer{Config: cfg}
	c, err := d.DialConn(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(out, "connected from %s\n\n", c.LocalAddr())

	msgs := []string{
		`{"hello":"world"}`,
		`{"text":"héllo 🙂 <tags> & \"quotes\" arrive intact"}`,
		`[1,-2.5e-3,12345678901234567890,true,null,{"nested":[[],{}]}]`,
		`{"oops": }`,
	}
	if cfg.MaxFrameSize <= 16<<20 { // show a refusal without a huge allocation
		huge := `{"big":"` + strings.Repeat("x", cfg.MaxFrameSize) + `"}`
		msgs = append(msgs, huge)
	}
	msgs = append(msgs, `{"still":"connected","after":"the refusals"}`)
	var reply []byte
	for _, m := range msgs {
		_, err := c.Write([]byte(m))
		switch {
		case refused(err):
			shown := m
			if len(m) > 40 {
				shown = fmt.Sprintf("%s… (%d bytes)", m[:30], len(m))
			}
			fmt.Fprintf(out, "-> %s\n   refused before a byte was sent: %v\n", shown, err)
			continue
		case err != nil:
			return err
		}
		fmt.Fprintf(out, "-> %s\n", m)
		if reply, err = c.AppendMessage(reply[:0]); err != nil {
			return err
		}
		fmt.Fprintf(out, "<- %s\n", reply)
	}
	return nil
}

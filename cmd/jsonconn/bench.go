package main

import (
	"fmt"
	"time"
)

func runBench(args []string, e *env) int {
	fs := newFlagSet(e, "bench", "[flags] ADDR", `Generate load against the server at ADDR: -conns connections each send
messages of -size bytes as fast as the server takes them, -count in all or
for -duration, whichever ends first. With -echo (the default) the server
must send every message back, as 'jsonconn listen -echo ADDR' does, and
bench checks each one; with -echo=false it counts the messages the server
has read, which it knows when the server closes the connection after the
end of the stream. A progress line runs on stderr; the summary goes to
stdout, with the round-trip times' percentiles under -echo, where each
connection keeps at most -window messages in flight (so that the run measures
the server, not a queue in the socket buffers, and ends within about a second
of -duration). Against 'jsonconn listen -echo', send listen's output to
/dev/null, or the run measures your terminal. A server that stops reading
stalls the run (the progress line shows 0 msg/s) until -duration ends it or
Ctrl-C, which prints the summary so far.`)
	maxFrame := maxFrameFlag(fs)
	size := sizeValue(1024)
	fs.Var(&size, "size", fmt.Sprintf("the payload `size` of each message, at least %d bytes", minLoadSize))
	count := fs.Int64("count", 100000, "how many messages to send in all; 0 means no limit (use -duration)")
	duration := fs.Duration("duration", 0, "how long to send for; 0 means no limit (use -count)")
	conns := fs.Int("conns", 1, "how many connections send at once")
	echo := fs.Bool("echo", true, "expect each message back from the server, and check it")
	window := fs.Int("window", 16, "with -echo, how many messages each connection keeps in flight at most")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for each connection to be set up")
	tlsf := tlsClientFlags(fs)
	ep, status, ok := fs.parseEndpoint(args, maxFrame)
	if !ok {
		return status
	}
	tlsConfig, err := tlsf.config()
	if err != nil {
		return fs.usageError("%v", err)
	}
	switch {
	case int(size) < minLoadSize || int(size) > int(*maxFrame):
		return fs.usageError("-size must be from %d bytes to -max-frame (%s)", minLoadSize, maxFrame)
	case *count < 0 || *duration < 0:
		return fs.usageError("-count and -duration must not be negative")
	case *count == 0 && *duration == 0:
		return fs.usageError("set -count or -duration, or both")
	case *conns < 1:
		return fs.usageError("-conns must be at least 1")
	case *window < 1:
		return fs.usageError("-window must be at least 1")
	}

	ctx, signalStatus, stop := interrupts(e, "bench")
	defer stop()
	l := &load{network: ep.network, address: ep.address, cfg: ep.cfg, tls: tlsConfig, size: int(size), conns: *conns,
		count: *count, duration: *duration, echo: *echo, window: *window, dialTimeout: *timeout}
	return l.report(ctx, e, "bench", signalStatus)
}

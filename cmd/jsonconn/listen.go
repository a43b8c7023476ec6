package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jsonconn/jsonconn"
)

func runListen(args []string, e *env) int {
	fs := newFlagSet(e, "listen", "[flags] ADDR", `Accept connections on ADDR and print each message received as one line of
NDJSON on stdout, saying which connection sent it:

	{"conn":1,"msg":{"hello":"world"}}

Connections are numbered from 1 in the order they are accepted; stderr says
when each opens (and from where) and closes (and why). With -echo, each
message is also sent back to its sender. Without it, each line of stdin is
sent to every connected peer; a line read while none is connected waits for
the first to connect. The end of stdin, or -bad=stop, stops only the reading
of stdin: listen serves until SIGINT or SIGTERM. The address listened on is
printed on stderr, which tells the port of ":0".`)
	maxFrame := maxFrameFlag(fs)
	pretty := fs.Bool("pretty", false, "print each message indented, over several lines")
	echo := fs.Bool("echo", false, "send each message back to its sender")
	policy := badFlag(fs)
	maxConns := fs.Int("max-conns", 256, "the most connections served at once (more wait to be accepted); 0 means no limit")
	writeTimeout := fs.Duration("write-timeout", 10*time.Second, "how long a message may take to send before its peer is disconnected; 0 means forever")
	idleTimeout := fs.Duration("idle-timeout", 0, "how long a peer may take to send its next message before it is disconnected; 0 means forever")
	frameTimeout := fs.Duration("frame-timeout", 30*time.Second, "how long a peer may take to send the rest of a message it has begun before it is\ndisconnected; 0 means forever")
	tlsf := tlsServerFlags(fs)
	ep, status, ok := fs.parseEndpoint(args, maxFrame)
	if !ok {
		return status
	}
	if *maxConns < 0 || *writeTimeout < 0 || *idleTimeout < 0 || *frameTimeout < 0 {
		return fs.usageError("-max-conns and the timeouts must not be negative")
	}
	tlsConfig, err := tlsf.config()
	if err != nil {
		return fs.usageError("%v", err)
	}
	ctx, signalStatus, stop := interrupts(e, "listen")
	defer stop()

	inner, err := net.Listen(ep.network, ep.address)
	if err != nil {
		fmt.Fprintf(e.stderr, "jsonconn listen: %v\n", err)
		return exitError
	}
	if tlsConfig != nil {
		inner = tls.NewListener(inner, tlsConfig)
	}
	ln := jsonconn.NewListener(inner, ep.cfg)
	if ep.network == "unix" {
		atForcedExit(func() { os.Remove(ep.address) }) // Close would have
	}
	fmt.Fprintf(e.stderr, "jsonconn listen: listening on %s\n", addrString(ln.Addr()))

	out := newPrinter(e.stdout, *pretty)
	peers := newPeerSet()
	srv := &jsonconn.Server{
		Config:       ep.cfg,
		MaxConns:     *maxConns,
		WriteTimeout: *writeTimeout,
		IdleTimeout:  *idleTimeout,
		FrameTimeout: *frameTimeout,
		Logger:       slog.New(slog.NewTextHandler(e.stderr, nil)),
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			id := peers.add(c)
			defer peers.remove(id)
			fmt.Fprintf(e.stderr, "jsonconn listen: conn %d: opened by %s\n", id, peerName(c.RemoteAddr()))
			why := serveListenConn(c, out, id, *echo)
			fmt.Fprintf(e.stderr, "jsonconn listen: conn %d: closed: %s\n", id, why)
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	snd := &sender{e: e, cmd: "listen", policy: *policy, max: int(*maxFrame)}
	sent := make(chan error, 1)
	if !*echo {
		go func() {
			sent <- snd.run(e.stdin, func(line []byte) error {
				return peers.broadcast(ctx, line, e.stderr)
			})
		}()
	}

	status = -1
	for status < 0 {
		select {
		case <-ctx.Done():
			status = signalStatus()
		case err := <-served:
			fmt.Fprintf(e.stderr, "jsonconn listen: %v\n", err)
			status = exitError
		case err := <-sent:
			// The end of stdin, or -bad=stop, ends only the reading of
			// stdin.
			sent = nil
			switch {
			case errors.Is(err, errStopped):
				fmt.Fprintf(e.stderr, "jsonconn listen: stopped reading stdin (-bad=stop)\n")
			case err != nil:
				fmt.Fprintf(e.stderr, "jsonconn listen: %v; stopped reading stdin\n", err)
			}
		}
	}
	// Send no more stdin lines, cutting short a line being sent to a
	// peer that does not read, which would otherwise hold the shutdown
	// up; close the listener; let each handler finish the message it is
	// printing or echoing; then cut off whoever is left.
	if !*echo {
		peers.stopSending()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return status
}

// serveListenConn prints, and with echo returns, every message c receives,
// and returns why the connection ended, for the log.
func serveListenConn(c *jsonconn.Conn, out *printer, id int, echo bool) string {
	prefix := `{"conn":` + strconv.Itoa(id) + `,"msg":`
	err := receive(c, func(msg []byte) error {
		if err := out.print(prefix, msg, "}"); err != nil {
			return fmt.Errorf("printing: %w", err)
		}
		if echo {
			if _, err := c.Write(msg); err != nil {
				return fmt.Errorf("echoing: %w", err)
			}
		}
		return nil
	})
	switch {
	case err == nil:
		return "the peer closed it"
	case errors.Is(err, jsonconn.ErrServerClosed):
		return "shutting down"
	case errors.Is(err, net.ErrClosed):
		return "disconnected" // by broadcast or a timeout, which said why
	}
	return err.Error()
}

// addrString prints a listener's address, a Unix socket's with the unix:
// prefix of ADDR.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
}

// peerName names the peer at a, for the log. The client end of a Unix
// socket usually has no name.
func peerName(a net.Addr) string {
	if a.Network() == "unix" && (a.String() == "" || a.String() == "@") {
		return "a Unix socket client"
	}
	return addrString(a)
}

// A peerSet is the set of connections listen is serving, numbered in the
// order they arrived.
type peerSet struct {
	sending sync.Mutex // held while a line goes out to the peers

	// mu guards the fields below.
	mu      sync.Mutex
	last    int
	conns   map[int]*jsonconn.Conn
	changed chan struct{} // closed, and replaced, when a peer arrives

	stopped atomic.Bool // stopSending was called
}

func newPeerSet() *peerSet {
	return &peerSet{conns: make(map[int]*jsonconn.Conn), changed: make(chan struct{})}
}

func (ps *peerSet) add(c *jsonconn.Conn) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.last++
	ps.conns[ps.last] = c
	close(ps.changed)
	ps.changed = make(chan struct{})
	return ps.last
}

func (ps *peerSet) remove(id int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	delete(ps.conns, id)
}

// errStopping refuses a stdin line once listen is shutting down.
var errStopping = errors.New("listen is shutting down")

// broadcast sends line to every connected peer, in the order they arrived,
// waiting for a peer to connect if none is. A peer whose write fails is
// reported and closed, which ends its handler. It returns
// jsonconn.ErrInvalidJSON or ErrFrameTooLarge for a line no peer can take,
// and errStopping once ctx is done or stopSending was called.
func (ps *peerSet) broadcast(ctx context.Context, line []byte, stderr io.Writer) error {
	for {
		ps.mu.Lock()
		n, changed := len(ps.conns), ps.changed
		ps.mu.Unlock()
		if n == 0 {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return errStopping
			}
		}
		ps.sending.Lock()
		ps.mu.Lock()
		ids := slices.Sorted(maps.Keys(ps.conns))
		conns := maps.Clone(ps.conns)
		ps.mu.Unlock()
		if len(ids) == 0 {
			ps.sending.Unlock()
			continue // the peers left meanwhile: wait for the next
		}
		defer ps.sending.Unlock()
		for _, id := range ids {
			if ps.stopped.Load() {
				return errStopping
			}
			if _, err := conns[id].Write(line); err != nil {
				if refused(err) {
					return err // the same for every peer
				}
				fmt.Fprintf(stderr, "jsonconn listen: conn %d: sending: %v; disconnecting it\n", id, err)
				conns[id].Close()
			}
		}
		return nil
	}
}

// stopSending makes broadcast send no more lines, and cuts short the write
// it may be doing to a peer that does not read; it returns once no line is
// going out. A past write deadline cuts the write short: a served Conn's
// WriteTimeout never pushes it back.
func (ps *peerSet) stopSending() {
	ps.stopped.Store(true)
	ps.mu.Lock()
	for _, c := range ps.conns {
		c.SetWriteDeadline(time.Unix(1, 0))
	}
	ps.mu.Unlock()
	// Wait for broadcast to let go of the line it may be sending.
	ps.sending.Lock()
	//lint:ignore SA2001 the critical section is empty on purpose: it waits for broadcast
	ps.sending.Unlock()
}

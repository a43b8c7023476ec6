package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
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
sent to every connected peer; stdin is read only while a peer is connected.
The address listened on is printed on stderr, which tells the port of ":0".`)
	maxFrame := maxFrameFlag(fs)
	pretty := fs.Bool("pretty", false, "print each message indented, over several lines")
	echo := fs.Bool("echo", false, "send each message back to its sender")
	policy := badFlag(fs)
	maxConns := fs.Int("max-conns", 0, "the most connections served at once; 0 means no limit")
	writeTimeout := fs.Duration("write-timeout", 10*time.Second, "how long a message may take to send before its peer is disconnected; 0 means forever")
	ep, status, ok := fs.parseEndpoint(args, maxFrame)
	if !ok {
		return status
	}
	if *maxConns < 0 {
		return fs.usageError("-max-conns must not be negative")
	}
	ctx, signalStatus, stop := interrupts(e, "listen")
	defer stop()

	ln, err := jsonconn.Listen(ep.network, ep.address, ep.cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "jsonconn listen: %v\n", err)
		return exitError
	}
	fmt.Fprintf(e.stderr, "jsonconn listen: listening on %s\n", addrString(ln.Addr()))

	out := newPrinter(e.stdout, *pretty)
	peers := newPeerSet()
	srv := &jsonconn.Server{
		Config:       ep.cfg,
		MaxConns:     *maxConns,
		WriteTimeout: *writeTimeout,
		Logger:       slog.New(slog.NewTextHandler(e.stderr, nil)),
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			id := peers.add(c)
			defer peers.remove(id)
			fmt.Fprintf(e.stderr, "jsonconn listen: conn %d: opened by %s\n", id, addrString(c.RemoteAddr()))
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
			sent <- snd.run(peers.waitingReader(ctx, e.stdin), func(line []byte) error {
				return peers.broadcast(line, e.stderr)
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
			switch {
			case err == nil:
				sent = nil // the end of stdin does not end listen
			case errors.Is(err, errStopped):
				status = exitBadInput
			default:
				fmt.Fprintf(e.stderr, "jsonconn listen: %v\n", err)
				status = exitError
			}
		}
	}
	// Let a line being sent to the peers finish, and send no other; close
	// the listener; let each handler finish the message it is printing or
	// echoing; then cut off whoever is left.
	peers.sending.Lock()
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
	var buf []byte
	for {
		var err error
		buf, err = c.AppendMessage(buf[:0])
		switch {
		case err == io.EOF:
			return "the peer closed it"
		case errors.Is(err, jsonconn.ErrServerClosed):
			return "shutting down"
		case err != nil:
			return err.Error()
		}
		if err := out.print(prefix, buf, "}"); err != nil {
			return fmt.Sprintf("printing: %v", err)
		}
		if echo {
			if _, err := c.Write(buf); err != nil {
				return fmt.Sprintf("echoing: %v", err)
			}
		}
	}
}

// addrString prints a Unix socket's address with the unix: prefix of ADDR.
func addrString(a net.Addr) string {
	if a.Network() == "unix" {
		return "unix:" + a.String()
	}
	return a.String()
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

// waitingReader returns a reader of r that, before each read, waits until
// at least one peer is connected, so that stdin lines are read only when
// someone can receive them. It returns io.EOF once ctx is done.
func (ps *peerSet) waitingReader(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		for {
			ps.mu.Lock()
			n, changed := len(ps.conns), ps.changed
			ps.mu.Unlock()
			if n > 0 {
				return r.Read(p)
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return 0, io.EOF
			}
		}
	})
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// errNoPeer refuses a stdin line read while a peer was connected that
// has gone by the time the line is sent.
var errNoPeer = errors.New("no peer is connected")

// broadcast sends line to every connected peer, in the order they arrived.
// A peer whose write fails is reported and closed, which ends its handler.
// It returns jsonconn.ErrInvalidJSON or ErrFrameTooLarge for a line no peer
// can take, and errNoPeer when there is nobody to send to.
func (ps *peerSet) broadcast(line []byte, stderr io.Writer) error {
	ps.sending.Lock()
	defer ps.sending.Unlock()
	ps.mu.Lock()
	ids := slices.Sorted(maps.Keys(ps.conns))
	conns := maps.Clone(ps.conns)
	ps.mu.Unlock()
	if len(ids) == 0 {
		return errNoPeer
	}
	for _, id := range ids {
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

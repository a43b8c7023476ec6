package jsonconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	// ErrDisconnected is matched (with errors.Is) by the error a Client's
	// SendContext or ReceiveContext returns when the connection it used
	// ended: a message sent on it may not have arrived, and messages the
	// peer sent may have been lost. The error also carries the cause's
	// message, and its identity unless that was net.ErrClosed (which a
	// Client's calls return only once the Client is closed), ErrPending (a
	// rest that will never go out) or a context's error (which only the call
	// whose ctx ended gets). The Client redials by itself.
	ErrDisconnected = errors.New("jsonconn: disconnected")

	// ErrGaveUp is matched (with errors.Is) by the error every call on a
	// Client returns once Client.MaxAttempts attempts in a row have failed.
	// It wraps the last attempt's error.
	ErrGaveUp = errors.New("jsonconn: gave up connecting")
)

// A Client keeps a framed-JSON connection to one address up: it dials on
// its first call, runs Handshake on each new connection, watches the peer
// with a heartbeat, and redials with jittered backoff when the connection
// ends, until Close. Its SendContext and ReceiveContext are named as Conn's,
// so that code written against an interface with the two works over either.
//
// The zero values of the fields mean sensible defaults; Address must be set.
// A Client is safe for concurrent use; its fields must not change once it
// is in use.
//
// # Delivery
//
// SendContext waits for a connection, bounded by its ctx, and makes one
// write attempt on it: it returns nil once the whole frame was handed to the
// kernel, as Conn.Send does, and never sends a message twice. There is no
// hidden buffer: a slow or absent peer pushes back on the caller, bounded
// by its ctx, and there is nothing to replay on a new connection. So
// delivery across a reconnect is at most once: a message handed to a
// connection that then ends may have been lost with it, and a new
// connection cannot tell which messages the peer processed or which replies
// were in flight. A SendContext whose connection ended returns an error
// matching ErrDisconnected; so does, once, the pending or next
// ReceiveContext after the connection it read ended, once every message
// that had arrived on it has been returned (a connection whose write side
// failed stays open for reading until then). Of the connections that ended
// with messages unread, the Client keeps the newest: an application that
// does not read across two reconnects loses the older one's messages, and
// learns of both gaps in one error. An application that needs
// at-least-once delivery numbers its requests, has the peer acknowledge or
// answer each, sends again what was not answered when it sees
// ErrDisconnected, and makes its requests idempotent, or has the peer drop
// the numbers it has seen.
//
// # Backoff
//
// The first dial is immediate. After a failed attempt, or after a
// connection ends, the Client sleeps before the next dial: the n-th sleep
// since the last reset (n = 0 for the first) is a uniformly random time in
// [0, min(MaxBackoff, MinBackoff·2ⁿ)), full jitter applied after the cap,
// so that clients whose server vanished at once do not come back in step.
// n goes back to 0 only once a connection has passed its Handshake and then
// had a message received on it or stayed open for MaxBackoff: a server, or
// a balancer with no live backend, that accepts and closes at once (or
// greets in another protocol) gets backed-off attempts, not a loop. A
// failed Handshake counts as a failed attempt, and so, for MaxAttempts,
// does a connection that ended before it earned a reset.
//
// A Client that only sends learns that the peer closed its side by
// looking, at least once a second, for the end of stream on the socket,
// and redials; a message sent in the meantime may be lost, as any sent as
// the peer closes.
//
// # Heartbeat
//
// With HeartbeatInterval set, a connection on which no byte has arrived for
// HeartbeatInterval + HeartbeatTimeout is closed as dead, counted in Stats,
// and redialed. Bytes that have arrived count whether the application has
// read them or they wait in the kernel (on Linux and the BSDs, which report
// a socket's unread bytes), so an application that merely reads slowly is
// not taken for a silent peer; a backlog of unread bytes counts as a sign of
// life only while it is large enough to have closed the peer's window. After
// HeartbeatInterval of silence, Heartbeat, if set, sends the application's
// ping: the protocol has no control frames, so a ping is an ordinary
// message, and the peer's answer reaches ReceiveContext like any other. A
// ping that cannot go out within HeartbeatTimeout ends the connection as
// dead. Without Heartbeat, a peer that never speaks first is redialed every
// HeartbeatInterval + HeartbeatTimeout.
//
// TCP keep-alive probes only the first hop: behind a TCP proxy or balancer
// it sees the proxy, which keeps a session to a frozen or vanished backend
// open. Only a message-level heartbeat finds that. Writes to a vanished peer
// are retried by the kernel for many minutes; UserTimeout bounds them on
// Linux.
type Client struct {
	// Network and Address are where the Client dials: Network "" means
	// "tcp". See Dial for the networks.
	Network, Address string

	// Dialer dials each connection; nil means a zero Dialer. Its NetDialer
	// (timeouts, keep-alive), Config and TLSConfig apply.
	Dialer *Dialer

	// Handshake, if not nil, runs on each new connection, after any TLS
	// handshake and before any call may use it, to say hello, log in or
	// subscribe again. Its ctx ends after HandshakeTimeout or when Close
	// is called. An error counts as a failed attempt: the connection is
	// closed and redialed after a backoff.
	Handshake func(ctx context.Context, c *Conn) error

	// HandshakeTimeout bounds each Handshake; 0 means 10 seconds.
	HandshakeTimeout time.Duration

	// MinBackoff and MaxBackoff bound the sleep between attempts (see
	// "Backoff" above); 0 means 100 ms and 10 s. A MaxBackoff below
	// MinBackoff is taken as MinBackoff.
	MinBackoff, MaxBackoff time.Duration

	// MaxAttempts, if positive, is how many attempts in a row may fail
	// (dials, handshakes, and connections that ended before they earned a
	// reset of the backoff) before the Client gives up: every call then
	// returns an error matching ErrGaveUp. 0 means never give up.
	MaxAttempts int

	// HeartbeatInterval, if positive, turns the heartbeat on (see
	// "Heartbeat" above). HeartbeatTimeout is how much longer than
	// HeartbeatInterval a connection may stay silent; 0 means
	// HeartbeatInterval.
	HeartbeatInterval, HeartbeatTimeout time.Duration

	// Heartbeat, if not nil, sends the application's ping after
	// HeartbeatInterval of silence, usually with c.SendContext(ctx, ping).
	// Its ctx ends after HeartbeatTimeout or when Close is called; the
	// connection is then closed as dead if Heartbeat has not returned. An
	// error other than ctx's ends the connection.
	Heartbeat func(ctx context.Context, c *Conn) error

	// UserTimeout, if positive, sets TCP_USER_TIMEOUT on each TCP
	// connection, on Linux: how long sent data may stay unacknowledged
	// before the kernel fails the connection (with ETIMEDOUT, which ends
	// it). Elsewhere it has no effect. It is added to any Control function
	// of the Dialer's NetDialer.
	UserTimeout time.Duration

	// Logger, if not nil, receives the Client's state changes: Info when a
	// connection is up, Warn when one ends or an attempt fails, Error when
	// the Client gives up. Nil means no log.
	Logger *slog.Logger

	// OnStateChange, if not nil, is called with each new state, and with
	// the error that caused it for ClientBackoff and ClientGaveUp (nil
	// otherwise), from the Client's goroutine, or from Close for
	// ClientClosed. Calls happen one at a time, in order. It may call Stats;
	// it must not block, nor call Close.
	OnStateChange func(state ClientState, err error)

	cbmu    sync.Mutex // held while a state change is made and told: keeps them in order
	mu      sync.Mutex
	started bool
	closed  bool
	state   ClientState
	since   time.Time
	cur     *clientConn   // the connection sends use; nil while there is none
	rq      []*clientConn // the connections receivers read, oldest first: ended ones whose end is unreported, then cur
	ready   chan struct{} // closed when a connection is published, or the Client gives up or closes
	gaveUp  error
	encOnce sync.Once
	enc     Writer             // encodes for SendContext, with the Dialer's Config
	stop    context.CancelFunc // stops run
	done    chan struct{}      // closed when run has returned
	stats   clientStats
}

// A ClientState is the state of a Client, reported by Stats and to
// OnStateChange.
type ClientState int

const (
	ClientIdle        ClientState = iota // no call has been made yet
	ClientDialing                        // an attempt is dialing
	ClientHandshaking                    // a new connection runs Handshake
	ClientConnected                      // a connection is up
	ClientBackoff                        // waiting before the next attempt
	ClientGaveUp                         // MaxAttempts attempts failed in a row
	ClientClosed                         // Close was called
)

var clientStateNames = [...]string{"idle", "dialing", "handshaking", "connected", "backoff", "gave up", "closed"}

func (s ClientState) String() string {
	if s >= 0 && int(s) < len(clientStateNames) {
		return clientStateNames[s]
	}
	return fmt.Sprintf("ClientState(%d)", int(s))
}

// ClientStats is a snapshot of a Client's counters, returned by
// Client.Stats. The counts never go back.
type ClientStats struct {
	State ClientState // the current state
	Since time.Time   // when it began

	DialAttempts      int64 // dials started
	DialFailures      int64 // dials that failed
	HandshakeFailures int64 // connections whose Handshake failed
	Connections       int64 // connections that passed their Handshake

	// Connections that ended, by cause, named as ServerStats' fields where
	// they count the same.
	PeerClosed        int64 // the peer ended its stream, reset the connection, or closed it mid-frame
	IOErrors          int64 // a read or write failed otherwise, or a write was cut mid-frame
	ProtocolErrors    int64 // the peer sent a frame over the cap or a payload that is not JSON
	HeartbeatTimeouts int64 // HeartbeatInterval + HeartbeatTimeout passed with no byte from the peer
}

type clientStats struct {
	dials, dialFailures, handshakeFailures, connections atomic.Int64
	peerClosed, ioErrors, protocolErrors, heartbeats    atomic.Int64
}

// A clientConn is one connection of a Client.
type clientConn struct {
	c     *Conn
	born  time.Time
	msgs  atomic.Int64  // messages ReceiveContext returned from it
	once  sync.Once     // ends it
	ended chan struct{} // closed when it has ended
	cause error         // why it ended, without the identity of net.ErrClosed, ErrPending or a context's error
	byEnd bool          // it ended because the Client was closed
	shut  sync.Once     // closes its wrapped conn
}

// errHeartbeatTimeout is the cause of a connection a heartbeat found dead.
var errHeartbeatTimeout = errors.New("jsonconn: heartbeat timeout: nothing arrived from the peer")

// SendContext encodes v and sends it as one message on the Client's
// connection, waiting for one, bounded by ctx, if there is none: see
// "Delivery" in the Client documentation. It returns nil once the whole
// frame was handed to the kernel, and an error matching ErrDisconnected if
// the connection ended before that (a write cut mid-frame included: the
// message cannot be finished on another connection). An encoding error,
// or a message over the cap, is returned at once, connection or not. After
// Close, it returns an error matching net.ErrClosed, and only then.
func (cl *Client) SendContext(ctx context.Context, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	e, p, err := cl.encoder().encode(v)
	if err != nil {
		return err
	}
	defer e.free()
	cc, err := cl.current(ctx)
	if err != nil {
		return err
	}
	if ctx.Done() == nil {
		_, err = cc.c.writeMessage(p)
	} else {
		_, err = cc.c.writeAlone(ctx, p)
	}
	switch {
	case err == nil:
		return nil
	case cl.isClosed():
		return cl.closedError()
	case errors.Is(err, ErrPending):
		// Cut mid-frame by ctx: the rest cannot go out on another
		// connection, and left on this one it would leave the message's
		// fate to a later write. The connection goes; this call's error
		// keeps its ctx's identity, the others' do not.
		cl.drop(cc, err)
		return fmt.Errorf("%w: %w", ErrDisconnected, &opaqueError{msg: err.Error(), ctx: contextErr(err)})
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err // not sent; the connection goes on
	}
	// The write side failed; the read side may still hold the peer's last
	// messages, which receivers read before they learn of the end.
	cl.retire(cc, err)
	return cl.disconnected(cc)
}

// ReceiveContext reads the next message of the Client's connection and
// decodes it into v, waiting for a connection, bounded by ctx, if there is
// none. When the connection ends, the pending or next ReceiveContext returns,
// once, an error matching ErrDisconnected, after every message that had
// arrived on it: so the application learns of every gap in which messages
// may have been lost. An error from decoding a valid payload (a type
// mismatch) consumes that message, as on a Conn. After Close, it returns an
// error matching net.ErrClosed, and only then.
func (cl *Client) ReceiveContext(ctx context.Context, v any) error {
	for {
		cc, err := cl.receiving(ctx)
		if err != nil {
			return err
		}
		err = cc.c.ReceiveContext(ctx, v)
		if err == nil {
			cc.msgs.Add(1)
			return nil
		}
		if !cc.c.rdone.Load() {
			return err // a decoding error, or ctx's end: the stream goes on
		}
		cl.drop(cc, err)
		if cl.passOn(cc) {
			return cl.disconnected(cc)
		}
		// Another ReceiveContext reported this end, or the Client closed:
		// go on with the next connection.
	}
}

// Close closes the Client: it stops the Client's goroutine (during a
// backoff sleep, a dial or a Handshake alike), closes its connections
// without waiting on any peer, and wakes every call, which returns an error
// matching net.ErrClosed. When Close returns, every goroutine the Client
// started has exited. The first Close returns nil; later ones return an
// error matching net.ErrClosed.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return cl.closedError()
	}
	cl.closed = true
	conns := cl.rq
	if cl.cur != nil && !slices.Contains(conns, cl.cur) {
		conns = append(conns, cl.cur)
	}
	cl.cur, cl.rq = nil, nil
	if cl.ready != nil {
		close(cl.ready)
		cl.ready = nil
	}
	started := cl.started
	cl.mu.Unlock()
	cl.setState(ClientClosed, nil)
	for _, cc := range conns {
		cl.dropClosed(cc)
	}
	if started {
		cl.stop()
		<-cl.done
	}
	return nil
}

// Stats returns a snapshot of the Client's state and counters.
func (cl *Client) Stats() ClientStats {
	cl.mu.Lock()
	state, since := cl.state, cl.since
	cl.mu.Unlock()
	st := &cl.stats
	return ClientStats{
		State:             state,
		Since:             since,
		DialAttempts:      st.dials.Load(),
		DialFailures:      st.dialFailures.Load(),
		HandshakeFailures: st.handshakeFailures.Load(),
		Connections:       st.connections.Load(),
		PeerClosed:        st.peerClosed.Load(),
		IOErrors:          st.ioErrors.Load(),
		ProtocolErrors:    st.protocolErrors.Load(),
		HeartbeatTimeouts: st.heartbeats.Load(),
	}
}

// encoder returns the Writer whose encode SendContext uses: it holds the
// Dialer's Config, and writes nowhere.
func (cl *Client) encoder() *Writer {
	cl.encOnce.Do(func() {
		var cfg *Config
		if cl.Dialer != nil {
			cfg = cl.Dialer.Config
		}
		cl.enc.init(nil, cfg, otherKind)
	})
	return &cl.enc
}

// isClosed reports whether Close has been called.
func (cl *Client) isClosed() bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.closed
}

// current returns the connection sends use, waiting for one (and starting
// the Client on its first call), bounded by ctx.
func (cl *Client) current(ctx context.Context) (*clientConn, error) {
	return cl.await(ctx, func() *clientConn { return cl.cur })
}

// receiving returns the connection ReceiveContext reads: the oldest one
// whose end has not been reported, waiting for one, bounded by ctx.
func (cl *Client) receiving(ctx context.Context) (*clientConn, error) {
	return cl.await(ctx, func() *clientConn {
		if len(cl.rq) == 0 {
			return nil
		}
		return cl.rq[0]
	})
}

// await returns pick's connection once there is one, with cl.mu held while
// pick runs; or the Client's end, or ctx's.
func (cl *Client) await(ctx context.Context, pick func() *clientConn) (*clientConn, error) {
	for {
		cl.mu.Lock()
		cl.startLocked()
		if cl.closed {
			cl.mu.Unlock()
			return nil, cl.closedError()
		}
		if cc := pick(); cc != nil {
			cl.mu.Unlock()
			return cc, nil
		}
		if cl.gaveUp != nil {
			err := cl.gaveUp
			cl.mu.Unlock()
			return nil, err
		}
		ready := cl.ready
		cl.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// passOn moves ReceiveContext on from cc, whose end a call found, and
// reports whether this call is the one to report it.
func (cl *Client) passOn(cc *clientConn) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.rq) == 0 || cl.rq[0] != cc {
		return false
	}
	cl.rq[0] = nil
	cl.rq = cl.rq[1:]
	return true
}

// disconnected returns the error of a call whose connection cc ended: one
// matching ErrDisconnected with cc's cause, or, if the Client was closed,
// net.ErrClosed.
func (cl *Client) disconnected(cc *clientConn) error {
	<-cc.ended
	if cc.byEnd {
		return cl.closedError()
	}
	return fmt.Errorf("%w: %w", ErrDisconnected, cc.cause)
}

// closedError is the error of a call on a closed Client.
func (cl *Client) closedError() error {
	return &net.OpError{Op: "call", Net: "jsonconn", Err: net.ErrClosed}
}

// An opaqueError has the message of another error, and none of its
// identity but that of a context's error, if ctx is set.
type opaqueError struct {
	msg string
	ctx error // context.Canceled, context.DeadlineExceeded or nil
}

func (e *opaqueError) Error() string { return e.msg }
func (e *opaqueError) Unwrap() error { return e.ctx }

// contextErr returns the context error err matches, or nil.
func contextErr(err error) error {
	for _, ce := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, ce) {
			return ce
		}
	}
	return nil
}

// causeOf returns err as the cause of a connection's end: with the
// identity of net.ErrClosed (which means only that the Client was closed),
// ErrPending (a rest that will never go out) and a context's error (one
// call's, not every call's) taken away, and its message kept.
func causeOf(err error) error {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, ErrPending) || contextErr(err) != nil {
		return &opaqueError{msg: err.Error()}
	}
	return err
}

// retire ends cc for cause, once: no call uses it for sending any more, the
// cause is counted, and the Client's goroutine redials. Its read side stays
// open for receivers, which read what the peer sent before they learn of the
// end; the last of them closes it (drop).
func (cl *Client) retire(cc *clientConn, cause error) {
	cc.once.Do(func() {
		cc.cause = causeOf(cause)
		cl.count(cause)
		cl.mu.Lock()
		if cl.cur == cc {
			cl.cur = nil
			cl.ready = make(chan struct{})
		}
		cl.mu.Unlock()
		close(cc.ended)
	})
}

// drop retires cc and closes its wrapped conn, without waiting on the peer.
func (cl *Client) drop(cc *clientConn, cause error) {
	cl.retire(cc, cause)
	cc.shut.Do(func() { cc.c.closeNetAbort(cc.cause) })
}

// dropClosed ends cc because the Client was closed.
func (cl *Client) dropClosed(cc *clientConn) {
	cc.once.Do(func() {
		cc.byEnd = true
		cc.cause = causeOf(net.ErrClosed)
		close(cc.ended)
	})
	cc.shut.Do(func() { cc.c.closeNetAbort(nil) })
}

// count counts a connection that ended for cause.
func (cl *Client) count(cause error) {
	st := &cl.stats
	switch {
	case errors.Is(cause, errHeartbeatTimeout):
		st.heartbeats.Add(1)
	case isViolation(cause):
		st.protocolErrors.Add(1)
	case errors.Is(cause, io.EOF), errors.Is(cause, io.ErrUnexpectedEOF), peerReset(cause):
		st.peerClosed.Add(1)
	default:
		st.ioErrors.Add(1)
	}
}

// startLocked starts the Client's goroutine on the first call. cl.mu must
// be held.
func (cl *Client) startLocked() {
	if cl.started || cl.closed {
		return
	}
	cl.started = true
	cl.ready = make(chan struct{})
	var ctx context.Context
	ctx, cl.stop = context.WithCancel(context.Background())
	cl.done = make(chan struct{})
	go cl.run(ctx)
}

// publish makes cc the connection calls use. Of the ended connections
// receivers have not finished with, it keeps the newest, whose messages
// they read before cc's; older ones are closed, their unread messages lost
// with them, and their ends reported in one: an application that does not
// read across two reconnects learns of the gap once. It reports false if
// the Client was closed.
func (cl *Client) publish(cc *clientConn) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.closed {
		return false
	}
	for len(cl.rq) > 1 {
		old := cl.rq[0]
		old.shut.Do(func() { old.c.closeNetAbort(old.cause) })
		cl.rq[0] = nil
		cl.rq = cl.rq[1:]
	}
	cl.rq = append(cl.rq, cc)
	cl.cur = cc
	close(cl.ready)
	cl.ready = nil
	cl.stats.connections.Add(1)
	return true
}

// setState changes the state, unless the Client is closed, and tells the
// callback and the log, outside cl.mu.
func (cl *Client) setState(s ClientState, err error) {
	cl.cbmu.Lock()
	defer cl.cbmu.Unlock()
	cl.mu.Lock()
	if cl.state == s && !cl.since.IsZero() || cl.closed && s != ClientClosed {
		cl.mu.Unlock()
		return
	}
	cl.state, cl.since = s, time.Now()
	cl.mu.Unlock()
	if cl.OnStateChange != nil {
		cl.OnStateChange(s, err)
	}
	if l := cl.Logger; l != nil {
		attrs := []any{"address", cl.Address, "state", s.String()}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		level := slog.LevelInfo
		switch s {
		case ClientBackoff:
			level = slog.LevelWarn
		case ClientGaveUp:
			level = slog.LevelError
		case ClientDialing, ClientHandshaking:
			level = slog.LevelDebug
		}
		l.Log(context.Background(), level, "jsonconn: client", attrs...)
	}
}

// run is the Client's goroutine: it dials, handshakes, publishes the
// connection, watches it, and redials once it ends, until ctx ends (Close)
// or MaxAttempts attempts fail in a row.
func (cl *Client) run(ctx context.Context) {
	defer close(cl.done)
	sleeps := 0   // since the last reset: the n of the backoff
	failures := 0 // attempts that failed in a row, and connections that ended too soon: what MaxAttempts counts
	for {
		cc, err := cl.attempt(ctx)
		if ctx.Err() != nil {
			if cc != nil {
				cl.dropClosed(cc)
			}
			return
		}
		if err == nil {
			cl.watch(ctx, cc)
			if ctx.Err() != nil {
				return
			}
			err = cc.cause
			if cl.proved(cc) {
				sleeps, failures = 0, 0
			} else {
				failures++
			}
		} else {
			failures++
		}
		if cl.MaxAttempts > 0 && failures >= cl.MaxAttempts {
			cl.giveUp(err)
			return
		}
		cl.setState(ClientBackoff, err)
		if !sleep(ctx, cl.backoff(sleeps)) {
			return
		}
		sleeps++
	}
}

// attempt dials once and runs Handshake. It returns the connection once it
// is published for calls to use.
func (cl *Client) attempt(ctx context.Context) (*clientConn, error) {
	cl.setState(ClientDialing, nil)
	cl.stats.dials.Add(1)
	c, err := cl.dial(ctx)
	if err != nil {
		cl.stats.dialFailures.Add(1)
		return nil, err
	}
	if cl.Handshake != nil {
		cl.setState(ClientHandshaking, nil)
		if err := cl.handshake(ctx, c); err != nil {
			c.closeNetAbort(err)
			if ctx.Err() == nil {
				cl.stats.handshakeFailures.Add(1)
			}
			return nil, fmt.Errorf("jsonconn: handshake: %w", err)
		}
	}
	cc := &clientConn{c: c, born: time.Now(), ended: make(chan struct{})}
	if !cl.publish(cc) {
		return cc, nil // closed: run sees ctx's end and drops cc
	}
	cl.setState(ClientConnected, nil)
	return cc, nil
}

// handshake runs Handshake on c, bounded by HandshakeTimeout and ctx. A
// Handshake that does I/O without its ctx is stopped too: c is closed when
// the ctx ends.
func (cl *Client) handshake(ctx context.Context, c *Conn) error {
	d := cl.HandshakeTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	hctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	closed := make(chan struct{})
	stop := context.AfterFunc(hctx, func() {
		defer close(closed)
		c.closeNetAbort(context.Cause(hctx))
	})
	err := cl.Handshake(hctx, c)
	if !stop() {
		<-closed // no goroutine outlives the attempt
		if err == nil {
			err = hctx.Err() // it ended as Handshake returned, and c is closed
		}
	}
	return err
}

// dial dials one connection with the Client's Dialer, adding UserTimeout.
func (cl *Client) dial(ctx context.Context) (*Conn, error) {
	var d Dialer
	if cl.Dialer != nil {
		d = *cl.Dialer
	}
	network := cl.Network
	if network == "" {
		network = "tcp"
	}
	if ut := cl.UserTimeout; ut > 0 && network != "unix" {
		var nd net.Dialer
		if d.NetDialer != nil {
			nd = *d.NetDialer
		}
		control, controlContext := nd.Control, nd.ControlContext
		set := func(rc syscall.RawConn) error { return setUserTimeout(rc, ut) }
		if controlContext != nil {
			nd.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
				if err := controlContext(ctx, network, address, rc); err != nil {
					return err
				}
				return set(rc)
			}
		} else {
			nd.Control = func(network, address string, rc syscall.RawConn) error {
				if control != nil {
					if err := control(network, address, rc); err != nil {
						return err
					}
				}
				return set(rc)
			}
		}
		d.NetDialer = &nd
	}
	return d.DialConn(ctx, network, cl.Address)
}

// eofCheckInterval is how often a Client without a heartbeat looks for the
// peer's end of stream on a connection no call is reading, so that a Client
// that only sends notices a server that closed, and redials.
const eofCheckInterval = time.Second

// slowReaderBacklog is the size of a backlog of unread bytes in the kernel
// that shows the application reading slowly: it may be why nothing new
// arrives (the peer's window is closed), so the peer is not counted silent.
const slowReaderBacklog = 16 << 10

// watch waits until cc ends, or ctx does, running the heartbeat meanwhile
// and looking for the peer's end of stream.
func (cl *Client) watch(ctx context.Context, cc *clientConn) {
	interval, timeout := cl.HeartbeatInterval, cl.HeartbeatTimeout
	if timeout <= 0 {
		timeout = interval
	}
	period := eofCheckInterval
	if interval > 0 {
		period = max(time.Millisecond, min(interval, timeout)/4)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	raw := cc.c.conn
	seen, heard, pinged := cc.c.r.arrived.Load(), time.Now(), false
	for {
		select {
		case <-cc.ended:
			return
		case <-ctx.Done():
			cl.dropClosed(cc)
			return
		case now := <-tick.C:
			unread := unreadBytes(raw)
			if unread == 0 && peerClosed(raw) {
				// The peer closed: receivers read what arrived, then
				// learn of the end; sends stop here.
				cl.retire(cc, io.EOF)
				return
			}
			if interval <= 0 {
				continue
			}
			// Bytes that arrived, read or waiting in the kernel, show the
			// peer alive, and so does a backlog the application is slow
			// to read, which may have closed the peer's window.
			if total := cc.c.r.arrived.Load() + uint64(unread); total != seen || unread >= slowReaderBacklog {
				seen, heard, pinged = total, now, false
				continue
			}
			switch silence := now.Sub(heard); {
			case silence >= interval+timeout:
				cl.drop(cc, errHeartbeatTimeout)
				return
			case silence >= interval && !pinged && cl.Heartbeat != nil:
				pinged = true
				if err := cl.ping(ctx, cc, timeout); err != nil {
					cl.drop(cc, err)
					return
				}
			}
		}
	}
}

// ping runs Heartbeat on cc, bounded by timeout. A ping that cannot go out
// within it ends cc as a heartbeat timeout, even if Heartbeat ignores its
// ctx: cc is closed under it. It returns an error of Heartbeat's other than
// its ctx's.
func (cl *Client) ping(ctx context.Context, cc *clientConn, timeout time.Duration) error {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan struct{})
	stop := context.AfterFunc(hctx, func() {
		defer close(done)
		if ctx.Err() == nil {
			cl.drop(cc, errHeartbeatTimeout)
		}
	})
	err := cl.Heartbeat(hctx, cc.c)
	if !stop() {
		<-done
		return nil // cc has ended
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// proved reports whether cc, which has ended, earned a reset of the
// backoff: it had passed its Handshake, and then a message was received on
// it or it stayed open for MaxBackoff.
func (cl *Client) proved(cc *clientConn) bool {
	_, maxBackoff := cl.backoffBounds()
	return cc.msgs.Load() > 0 || time.Since(cc.born) >= maxBackoff
}

// giveUp ends the Client's attempts with err.
func (cl *Client) giveUp(err error) {
	if errors.Is(err, net.ErrClosed) {
		err = &opaqueError{msg: err.Error()} // net.ErrClosed means only that the Client was closed
	}
	cl.mu.Lock()
	cl.gaveUp = fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, cl.MaxAttempts, err)
	if cl.ready != nil {
		close(cl.ready)
		cl.ready = nil
	}
	cl.mu.Unlock()
	cl.setState(ClientGaveUp, err)
}

// backoffBounds returns MinBackoff and MaxBackoff with their defaults.
func (cl *Client) backoffBounds() (lo, hi time.Duration) {
	lo, hi = cl.MinBackoff, cl.MaxBackoff
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	return lo, max(lo, hi)
}

// backoff returns the n-th sleep since the last reset: a uniformly random
// time in [0, min(MaxBackoff, MinBackoff·2ⁿ)).
func (cl *Client) backoff(n int) time.Duration {
	lo, hi := cl.backoffBounds()
	bound := hi
	if n < 62 && lo < hi>>n {
		bound = lo << n
	}
	return rand.N(bound)
}

// sleep waits for d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

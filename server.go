package jsonconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A Handler serves one connection. ServeConn runs in its own goroutine and
// owns c until it returns, after which the Server closes c. ctx is cancelled
// when Shutdown or Close begins, when c is closed, or when an I/O call on c
// finds it broken (a non-timeout error other than io.EOF); a peer that
// vanishes while the handler does no I/O is noticed at its next call. ctx
// carries whatever BaseContext and ConnContext put in it.
//
// If ServeConn panics, the Server logs the panic with a stack trace, closes
// c, and goes on serving other connections.
type Handler interface {
	ServeConn(ctx context.Context, c *Conn)
}

// HandlerFunc adapts an ordinary function to a Handler.
type HandlerFunc func(ctx context.Context, c *Conn)

// ServeConn calls f(ctx, c).
func (f HandlerFunc) ServeConn(ctx context.Context, c *Conn) { f(ctx, c) }

// A Server accepts connections and serves each with Handler in its own
// goroutine, in the manner of net/http's Server. The zero value is not
// usable: Handler must be set. A Server must not be copied after first use;
// its fields must not change while it serves.
type Server struct {
	// Handler serves each connection. It must not be nil.
	Handler Handler

	// Config configures each accepted Conn; nil means the defaults. It is
	// ignored for a listener that already returns *Conn (NewListener).
	Config *Config

	// MaxConns bounds the connections served at once, across all the
	// listeners the Server serves; 0 means no bound. At the bound each
	// Serve call holds the one conn it has just accepted, unserved, and
	// accepts no other until a handler returns, so a flood of connections
	// waits in the kernel's accept queue instead of using up file
	// descriptors and memory: at most MaxConns plus one per listener are
	// open.
	MaxConns int

	// IdleTimeout bounds how long a read on a served Conn may wait for the
	// next whole message. The clock starts when a read starts and stops when
	// a message arrives or the stream ends; it keeps running across read
	// timeouts, so a handler polling with short deadlines does not reset it.
	// A peer that sends nothing, or drips a message too slowly, is
	// disconnected: the Conn is closed and the read returns an error
	// matching net.ErrClosed. Time the handler spends between reads does
	// not count. Zero means no timeout.
	IdleTimeout time.Duration

	// WriteTimeout, if positive, bounds the time each message written to a
	// served Conn may take: its write deadline is the earlier of the
	// handler's own (SetWriteDeadline, SetDeadline) and the message's start
	// plus WriteTimeout. A handler's earlier deadline is never pushed back,
	// and its later one never extends a message past WriteTimeout. A peer
	// that does not read gets a timeout (see ErrPending) instead of a handler
	// blocked forever. Messages written concurrently are then sent one at a
	// time, each under its own deadline, rather than coalesced.
	WriteTimeout time.Duration

	// Logger receives accept errors and handler panics. Nil means
	// slog.Default().
	Logger *slog.Logger

	// BaseContext, if not nil, returns the base context for the handlers'
	// contexts on listener l. It must not return nil. Nil means
	// context.Background().
	BaseContext func(l net.Listener) context.Context

	// ConnContext, if not nil, derives the context for the handler of c from
	// ctx. It must not return nil.
	ConnContext func(ctx context.Context, c *Conn) context.Context

	// ConnState, if not nil, is called when a connection changes state:
	// StateNew before its handler starts, StateClosed once it has returned
	// and the Conn is closed. Calls for one Conn happen in order; calls for
	// different Conns may run concurrently.
	ConnState func(c *Conn, state ConnState)

	inShutdown    atomic.Bool
	listenerGroup sync.WaitGroup // Serve calls running

	// mu guards the fields below. A servedConn's own mu may be taken while
	// it is held, never the other way round.
	mu sync.Mutex
	// listeners holds pointers to the listeners of the running Serve calls,
	// as net/http's Server does, in case a net.Listener is not comparable:
	// each Serve call adds and removes the pointer to its own variable, so
	// no two callers' listeners are ever compared.
	listeners map[*net.Listener]struct{}
	conns     map[*servedConn]struct{} // connections whose handlers run
	idle      chan struct{}            // closed when conns empties during Shutdown
	done      chan struct{}            // closed when Shutdown or Close begins
	slots     chan struct{}            // MaxConns semaphore, shared by all Serve calls
}

// A ConnState is a state of a served connection, reported to
// Server.ConnState.
type ConnState int

const (
	// StateNew is a connection just accepted, before its handler runs.
	StateNew ConnState = iota
	// StateClosed is a connection whose handler has returned and which
	// has been closed.
	StateClosed
)

func (s ConnState) String() string {
	switch s {
	case StateNew:
		return "new"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// ListenAndServe listens on the network address and serves it, like Listen
// followed by Serve. It always returns a non-nil error; after Shutdown or
// Close, ErrServerClosed.
func (srv *Server) ListenAndServe(network, address string) error {
	if srv.inShutdown.Load() {
		return ErrServerClosed
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return err
	}
	return srv.Serve(l)
}

// Serve accepts connections on l and serves each with srv.Handler in a new
// goroutine. If l returns *Conn (see NewListener), those are served as they
// are; other conns are wrapped with srv.Config.
//
// Accept errors that are temporary (a net.Error whose Temporary reports true,
// such as EMFILE) are logged and retried with a backoff of 5 ms doubling up to
// 1 s; any other closes l and is returned. Serve always returns a non-nil
// error and closes l; after Shutdown or Close, the error is ErrServerClosed.
func (srv *Server) Serve(l net.Listener) error {
	origListener := l
	l = &onceCloseListener{Listener: l}
	defer l.Close()
	if srv.Handler == nil {
		return errors.New("jsonconn: Server.Handler is nil")
	}
	if !srv.trackListener(&l, true) {
		return ErrServerClosed
	}
	defer srv.trackListener(&l, false)

	base := context.Background()
	if srv.BaseContext != nil {
		if base = srv.BaseContext(origListener); base == nil {
			panic("jsonconn: Server.BaseContext returned a nil context")
		}
	}
	slots := srv.connSlots()
	done := srv.doneChan()
	var delay time.Duration
	for {
		rw, err := l.Accept()
		if err != nil {
			if srv.inShutdown.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				srv.logger().Warn("jsonconn: accept error; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-done:
					return ErrServerClosed
				}
				continue
			}
			return err
		}
		delay = 0
		// At MaxConns, hold this conn, and accept no other, until a
		// handler returns.
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-done:
				rw.Close()
				return ErrServerClosed
			}
		}
		c, ok := rw.(*Conn)
		if !ok {
			c = New(rw, srv.Config)
		}
		// Attach the Server's state to c before anything else can see it.
		ctx, cancel := context.WithCancel(base)
		sc := srv.newServedConn(c, cancel)
		if srv.ConnContext != nil {
			if ctx = srv.ConnContext(ctx, c); ctx == nil {
				panic("jsonconn: Server.ConnContext returned a nil context")
			}
		}
		if !srv.startConn(sc) {
			c.Close()
			if slots != nil {
				<-slots
			}
			return ErrServerClosed
		}
		if srv.ConnState != nil {
			srv.ConnState(c, StateNew)
		}
		go srv.serveConn(ctx, sc, slots)
	}
}

// serveConn runs the handler for sc and cleans up after it.
func (srv *Server) serveConn(ctx context.Context, sc *servedConn, slots chan struct{}) {
	c := sc.c
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			srv.logger().Error("jsonconn: panic serving connection", "remote", c.RemoteAddr(), "panic", p, "stack", string(buf))
		}
		c.Close() // also cancels ctx
		if srv.ConnState != nil {
			srv.ConnState(c, StateClosed)
		}
		srv.endConn(sc)
		if slots != nil {
			<-slots
		}
	}()
	srv.Handler.ServeConn(ctx, c)
}

// Shutdown stops the server gracefully. It closes the listeners, so no new
// connection is accepted, and cancels every handler's context. Reads that
// would wait for a new message return ErrServerClosed from then on, and a
// read already waiting for one is woken to return it; messages a Conn has
// already received are still delivered, a frame under way is read to its end,
// and writes go on working. Messages the peer sent that the Conn had not yet
// read from the kernel are not delivered: the peer sees the connection close
// after its handler returns. Shutdown then waits for every handler to return
// and every Serve call to exit, or for ctx to end, in which case it returns
// ctx.Err() and the handlers go on; Close stops them.
//
// Once Shutdown has been called, Serve and ListenAndServe return
// ErrServerClosed. Shutdown returns the error of closing a listener, if any.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.inShutdown.Store(true)
	srv.mu.Lock()
	err := srv.closeDoneLocked()
	for sc := range srv.conns {
		sc.drain()
	}
	var idle chan struct{}
	if len(srv.conns) > 0 {
		if srv.idle == nil {
			srv.idle = make(chan struct{})
		}
		idle = srv.idle
	}
	srv.mu.Unlock()
	srv.listenerGroup.Wait()
	if idle == nil {
		return err
	}
	select {
	case <-idle:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection, and cancels every handler's context. It waits for the Serve
// calls to exit, not for the handlers to return. It returns the error of
// closing a listener, if any.
func (srv *Server) Close() error {
	srv.inShutdown.Store(true)
	srv.mu.Lock()
	err := srv.closeDoneLocked()
	for sc := range srv.conns {
		sc.c.Close()
	}
	srv.mu.Unlock()
	srv.listenerGroup.Wait()
	return err
}

// closeDoneLocked closes the listeners, cancels the handlers' contexts and
// marks the server done. It returns the first error from closing a listener.
func (srv *Server) closeDoneLocked() error {
	if srv.done == nil {
		srv.done = make(chan struct{})
	}
	select {
	case <-srv.done:
	default:
		close(srv.done)
	}
	for sc := range srv.conns {
		sc.cancel()
	}
	var err error
	for l := range srv.listeners {
		if cerr := (*l).Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

func (srv *Server) doneChan() <-chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.done == nil {
		srv.done = make(chan struct{})
	}
	return srv.done
}

// connSlots returns the semaphore that enforces MaxConns across all of the
// server's listeners, or nil for no limit.
func (srv *Server) connSlots() chan struct{} {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.slots == nil && srv.MaxConns > 0 {
		srv.slots = make(chan struct{}, srv.MaxConns)
	}
	return srv.slots
}

// trackListener adds or removes l, a pointer to Serve's own variable (see
// Server.listeners). Adding fails once the server is shutting down.
func (srv *Server) trackListener(l *net.Listener, add bool) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !add {
		delete(srv.listeners, l)
		srv.listenerGroup.Done()
		return true
	}
	if srv.inShutdown.Load() {
		return false
	}
	if srv.listeners == nil {
		srv.listeners = make(map[*net.Listener]struct{})
	}
	srv.listeners[l] = struct{}{}
	srv.listenerGroup.Add(1)
	return true
}

// startConn registers sc before its handler starts. It fails once the
// server is shutting down.
func (srv *Server) startConn(sc *servedConn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.inShutdown.Load() {
		return false
	}
	if srv.conns == nil {
		srv.conns = make(map[*servedConn]struct{})
	}
	srv.conns[sc] = struct{}{}
	return true
}

// endConn unregisters sc once its handler has returned.
func (srv *Server) endConn(sc *servedConn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, sc)
	if len(srv.conns) == 0 && srv.idle != nil {
		close(srv.idle)
		srv.idle = nil
	}
}

func (srv *Server) logger() *slog.Logger {
	if srv.Logger != nil {
		return srv.Logger
	}
	return slog.Default()
}

// onceCloseListener wraps a net.Listener so that Close may be called from
// both Serve (on its way out) and Shutdown or Close (to stop it), as in
// net/http: many listeners' Close returns an error when called twice.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// A connHook is how a Server's state for a connection reaches the Conn it
// serves: the only field of Conn that exists for Servers, nil on any other
// Conn, which pays a nil check at each of the points below and nothing more.
// Its one implementation is servedConn.
//
// The Conn calls readBegin and readEnd under its read lock, writeBegin under
// its write lock, and the others under no lock of its own. An implementation
// may take its own locks there, but none of the Conn's.
type connHook interface {
	// readBegin is called before a read of the Conn's Reader. A non-nil
	// error is returned by the read instead.
	readBegin() error

	// readEnd is called with the error of that read (nil for a message),
	// already mapped as the Conn returns it. It returns the error to
	// report, and again true to run the same read once more.
	readEnd(err error) (_ error, again bool)

	// writeBegin is called before each write of the Conn's Writer: a
	// message, a batch, a Flush or the flush of CloseWrite.
	writeBegin()

	// coalesce reports whether concurrent writers may share one write.
	coalesce() bool

	// setDeadline replaces the Conn's SetDeadline, SetReadDeadline and
	// SetWriteDeadline: it sets t for reading, writing or both.
	setDeadline(t time.Time, read, write bool) error

	// ended is told when the Conn is closed or breaks, with the cause: nil
	// for Close, the peer's violation of the protocol, the I/O error that
	// broke a side, or the reason a Server gave for closing it. It may be
	// told more than once; the first call counts.
	ended(cause error)
}

// A servedConn is a Server's state for one connection it serves: the
// handler's context, the idle timer, the graceful drain and the write
// timeout, kept out of the Conn as net/http keeps its timers and state in
// its unexported conn and connReader rather than in the net.Conn.
type servedConn struct {
	srv    *Server
	c      *Conn
	cancel context.CancelFunc // cancels the handler's context
	idle   *time.Timer        // nil without IdleTimeout; runs idleExpired
	gone   atomic.Bool        // ended has run

	// mu guards the fields below. It is taken under the Conn's rmu or wmu
	// and under the Server's mu, never the other way round.
	mu          sync.Mutex
	reading     bool      // a read of the Reader is under way
	draining    bool      // Shutdown began: no read waits for a new message
	interrupted bool      // drain set a past read deadline to wake the read
	idleAt      time.Time // when the armed idle timer expires; zero when disarmed
	rdeadline   time.Time // the read deadline the handler set
	wdeadline   time.Time // the write deadline the handler set
	msgDeadline time.Time // WriteTimeout's deadline for the message being written
}

// newServedConn attaches a Server's state to c, whose handler's context
// cancel cancels. It runs before c reaches anyone else.
func (srv *Server) newServedConn(c *Conn, cancel context.CancelFunc) *servedConn {
	sc := &servedConn{srv: srv, c: c, cancel: cancel}
	if srv.IdleTimeout > 0 {
		sc.idle = time.AfterFunc(time.Hour, sc.idleExpired)
		sc.idle.Stop()
	}
	c.hook = sc
	return sc
}

// readBegin starts the idle clock, unless an earlier read that timed out
// left it running, and refuses to wait for a new message during a drain.
func (sc *servedConn) readBegin() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.draining && sc.c.r.wouldWait() {
		sc.disarmIdleLocked()
		return ErrServerClosed
	}
	sc.reading = true
	if sc.idle != nil && sc.idleAt.IsZero() && !sc.gone.Load() {
		sc.idleAt = time.Now().Add(sc.srv.IdleTimeout)
		sc.idle.Reset(sc.srv.IdleTimeout)
	}
	return nil
}

// readEnd stops the idle clock once a message has arrived or the stream has
// ended; a timeout leaves it running, so that a handler polling with short
// deadlines does not reset it. A read that drain woke is told to go on with
// the frame it had started, under the handler's deadline again, or, between
// frames, returns ErrServerClosed.
func (sc *servedConn) readEnd(err error) (error, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.interrupted {
		sc.interrupted = false
		sc.c.conn.SetReadDeadline(sc.rdeadline)
		if isTimeout(err) {
			if !sc.c.r.wouldWait() {
				return nil, true // the read had begun a frame: let it finish
			}
			err = ErrServerClosed
		}
	}
	sc.reading = false
	if err == nil || !isTimeout(err) {
		sc.disarmIdleLocked()
	}
	return err, false
}

// disarmIdleLocked stops the idle clock.
func (sc *servedConn) disarmIdleLocked() {
	if sc.idle != nil && !sc.idleAt.IsZero() {
		sc.idleAt = time.Time{}
		sc.idle.Stop()
	}
}

// idleExpired runs when the idle timer fires, and closes the Conn if a read
// has been waiting since it was armed. The check makes a stale firing (a
// message completed at the same moment) harmless.
func (sc *servedConn) idleExpired() {
	sc.mu.Lock()
	expired := !sc.idleAt.IsZero() && !time.Now().Before(sc.idleAt)
	sc.mu.Unlock()
	if expired {
		sc.c.closeNet(errIdleTimeout)
	}
}

// errIdleTimeout is the cause a Server gives for closing a connection whose
// read waited IdleTimeout for a whole message.
var errIdleTimeout = errors.New("jsonconn: idle timeout")

// drain makes the Conn's reads return ErrServerClosed instead of waiting for
// a new message, and wakes a read under way with a past deadline. Messages
// the Conn has already received are still returned, a frame under way is
// finished, and writes are not affected: only a read under way is woken,
// since a past read deadline would also break a TLS server's first write,
// which runs the handshake.
func (sc *servedConn) drain() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.draining = true
	if sc.reading && !sc.interrupted {
		sc.interrupted = true
		sc.c.conn.SetReadDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline in the past, which aborts pending I/O at once.
var aLongTimeAgo = time.Unix(1, 0)

// writeBegin gives the write about to start the earlier of the handler's
// write deadline and WriteTimeout from now.
func (sc *servedConn) writeBegin() {
	if sc.srv.WriteTimeout <= 0 {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	now := time.Now()
	sc.msgDeadline = now.Add(sc.srv.WriteTimeout)
	sc.c.conn.SetWriteDeadline(earlier(sc.wdeadline, sc.msgDeadline))
}

// coalesce lets concurrent writers share a write only without WriteTimeout,
// whose deadline is per message.
func (sc *servedConn) coalesce() bool { return sc.srv.WriteTimeout <= 0 }

// setDeadline records the handler's deadlines and applies them: a read
// deadline unless drain's past one is waking the read (readEnd puts the
// handler's back), a write deadline no later than the one WriteTimeout gave
// the message being written.
func (sc *servedConn) setDeadline(t time.Time, read, write bool) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var err error
	if read {
		sc.rdeadline = t
		if !sc.interrupted {
			err = sc.c.conn.SetReadDeadline(t)
		}
	}
	if write {
		sc.wdeadline = t
		d := t
		if m := sc.msgDeadline; m.After(time.Now()) {
			d = earlier(t, m)
		}
		if werr := sc.c.conn.SetWriteDeadline(d); err == nil {
			err = werr
		}
	}
	return err
}

// earlier returns the earlier of two deadlines, where the zero time means
// none.
func earlier(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// ended cancels the handler's context and stops the idle timer, so that a
// closed Conn is not kept alive by it. A clean end of stream is no end: the
// peer may have half-closed and wait for replies.
func (sc *servedConn) ended(error) {
	if !sc.gone.CompareAndSwap(false, true) {
		return
	}
	if sc.idle != nil {
		sc.idle.Stop()
	}
	sc.cancel()
}

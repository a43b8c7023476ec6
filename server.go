package jsonconn

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// carries whatever BaseContext and ConnContext put in it. A handler that
// passes ctx to c's context calls ([Conn.ReceiveContext],
// [Conn.SendContext]) has them return once it is cancelled.
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
//
// Serve may be called from several goroutines, each with its own listener,
// and Shutdown, Close and Stats may be called concurrently with each other
// and while Serve runs.
type Server struct {
	// Handler serves each connection. It must not be nil.
	Handler Handler

	// Config configures each accepted Conn; nil means the defaults. It is
	// ignored for a listener that already returns *Conn (a [Listener]). Its
	// Marshal and Unmarshal are called from every connection's goroutines
	// at once.
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
	// a message arrives or the stream ends. Time the handler spends between
	// a message and its next read does not count; after a read that timed
	// out, the clock keeps running (so a handler polling with short
	// deadlines does not reset it), and may run out while the handler works
	// before its next read. A peer that sends nothing, or drips a message
	// too slowly, is disconnected: the Conn is closed and its reads return
	// an error matching net.ErrClosed. Zero means no timeout.
	IdleTimeout time.Duration

	// FrameTimeout bounds how long the rest of a frame may take to arrive
	// once its first byte has. A peer that sends part of a frame and then
	// stalls, or drips it, is disconnected: the Conn is closed and its reads
	// return an error matching net.ErrClosed, as with IdleTimeout. Like
	// IdleTimeout its clock starts only inside a read: when a read needs
	// more of a frame whose first bytes have arrived (so bytes of the next
	// frame that arrived with the previous message start no clock while the
	// handler is busy). It stops when the message is delivered or the stream
	// ends, and keeps running across read timeouts, as IdleTimeout does.
	// It applies during Shutdown's drain too, so a peer holding half a frame
	// cannot hold Shutdown up. A peer that sends nothing is not affected.
	// The two compose: an IdleTimeout of 5 minutes with a FrameTimeout of
	// 10 seconds lets a client stay quiet between messages, but not sit on
	// half of one. Zero means no timeout.
	FrameTimeout time.Duration

	// WriteTimeout, if positive, bounds the time each message written to a
	// served Conn may take: its write deadline is the earlier of the
	// handler's own (SetWriteDeadline, SetDeadline) and the message's start
	// plus WriteTimeout. A handler's earlier deadline is never pushed back,
	// and its later one never extends a message past WriteTimeout. A peer
	// that does not read gets a timeout (see ErrPending) instead of a handler
	// blocked forever. Messages written concurrently are then sent one at a
	// time, each under its own deadline, rather than coalesced; a
	// WriteBatch counts as one message.
	WriteTimeout time.Duration

	// Logger receives accept errors (at level Warn) and a line for each
	// connection that ended, with its cause (see ServerStats): at level
	// Error with the stack for a handler that panicked, Warn for a timeout,
	// a protocol violation or an I/O error, Debug for the rest. The lines
	// for ended connections other than panics are rate-limited (a burst,
	// then a steady rate), so that a flood of hostile peers cannot flood the
	// log; a line that follows dropped ones says how many were dropped.
	// Nil means slog.Default().
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
	stats         serverStats
	endLog        logLimiter // the log of ended connections

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
// followed by Serve: the network must carry a byte stream ("tcp", "tcp4",
// "tcp6" or "unix"), and others are refused with the error Listen returns.
// It always returns a non-nil error; after Shutdown or Close,
// ErrServerClosed.
func (srv *Server) ListenAndServe(network, address string) error {
	if srv.inShutdown.Load() {
		return ErrServerClosed
	}
	l, err := listenStream(network, address)
	if err != nil {
		return err
	}
	return srv.Serve(l)
}

// Serve accepts connections on l and serves each with srv.Handler in a new
// goroutine. If l returns *Conn (a [Listener] does), those are served as
// they are; other conns are wrapped with srv.Config.
//
// Accept errors that are temporary (a net.Error whose Temporary reports true,
// such as EMFILE) are logged and retried after a delay that doubles, up to a
// cap, while they last; any other closes l and is returned. Serve always returns a non-nil
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
			default:
				start := time.Now()
				select {
				case slots <- struct{}{}:
				case <-done:
					rw.Close()
					return ErrServerClosed
				}
				srv.stats.waits.Add(1)
				srv.stats.waitNanos.Add(int64(time.Since(start)))
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
		p := recover()
		var stack []byte
		if p != nil {
			stack = make([]byte, 64<<10)
			stack = stack[:runtime.Stack(stack, false)]
		}
		c.Close() // also cancels ctx
		if srv.ConnState != nil {
			srv.ConnState(c, StateClosed)
		}
		cause, err := sc.endCause(p != nil)
		srv.stats.ended[cause].Add(1)
		srv.logEnd(c, cause, err, p, stack)
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
// calls to exit, not for the handlers to return, nor for any peer: a TLS
// connection is closed without the close_notify alert that its Close would
// send, which waits on a peer that does not read. It returns the error of
// closing a listener, if any.
func (srv *Server) Close() error {
	srv.inShutdown.Store(true)
	srv.mu.Lock()
	err := srv.closeDoneLocked()
	conns := make([]*servedConn, 0, len(srv.conns))
	for sc := range srv.conns {
		sc.stopped.Store(true)
		conns = append(conns, sc)
	}
	srv.mu.Unlock()
	// Outside srv.mu, which a handler's end, Stats and Shutdown take: a
	// wrapped conn's Close may block (it may be the user's own type).
	// net/http's Close closes its conns under its lock; no new conn can be
	// registered once inShutdown is set, so this needs no lock.
	for _, sc := range conns {
		sc.c.abort()
	}
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
	srv.stats.accepted.Add(1)
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
// The Conn calls readBegin and readEnd under its read lock; writeBegin,
// writeEnd and coalesce under its write lock; setDeadline under no lock of
// its own; and ended under whichever lock the end was found under, or none.
// An implementation may take its own locks there, but none of the Conn's.
type connHook interface {
	// readBegin is called before a read of the Conn's Reader. A non-nil
	// error is returned by the read instead.
	readBegin() error

	// readEnd is called with the error of that read (nil for a message),
	// already mapped as the Conn returns it. It returns the error to
	// report, and again true to run the same read once more.
	readEnd(err error) (_ error, again bool)

	// writeBegin is called before each write of the Conn's Writer: a
	// message, a batch, a Flush or the flush of CloseWrite; writeEnd after
	// it, with its error as the Writer returned it.
	writeBegin()
	writeEnd(err error)

	// coalesce reports whether concurrent writers may share one write.
	coalesce() bool

	// setDeadline replaces the Conn's SetDeadline, SetReadDeadline and
	// SetWriteDeadline: it sets t for reading, writing or both.
	setDeadline(t time.Time, read, write bool) error

	// hold holds the read or the write deadline of the wrapped conn in the
	// past (on), which interrupts the I/O of a context call whose ctx
	// ended, and reports true; or reports false, holding nothing, if the
	// deadline in force on that side (the handler's, or a message's
	// WriteTimeout) has passed already. Off, it lets the hold go and applies
	// the deadline the side would have now. Nothing else may replace a held
	// deadline: setDeadline records a new one, a drain's wake-up puts
	// nothing back, and a write's WriteTimeout is applied only once the hold
	// is let go. The Conn calls it under its dmu.
	hold(read, on bool) bool

	// ended is told once, when the wrapped conn is closed, with the
	// cause: nil for Close, the peer's violation of the protocol, or the
	// reason a Server gave for closing it.
	ended(cause error)

	// broke is told when an I/O error (other than a timeout or io.EOF)
	// ended the reading or the writing side of the Conn, which stays
	// open: the other side may still work, and a read under way goes on
	// under its clocks. It may be told more than once.
	broke(err error)
}

// A servedConn is a Server's state for one connection it serves: the
// handler's context, the idle and frame clocks, the graceful drain, the
// write timeout and what ended the connection, kept out of the Conn as
// net/http keeps its timers and state in its unexported conn and connReader
// rather than in the net.Conn.
//
// The read path runs on atomics alone: a read takes no lock unless Shutdown
// is draining the connection.
type servedConn struct {
	srv    *Server
	c      *Conn
	cancel context.CancelFunc // cancels the handler's context
	clock  *time.Timer        // nil without IdleTimeout and FrameTimeout; runs expired

	reading     atomic.Bool  // a read of the Reader is under way
	draining    atomic.Bool  // Shutdown began: no read waits for a new message
	interrupted atomic.Bool  // drain set a past read deadline to wake a read
	idleAt      atomic.Int64 // when the idle clock runs out, in ns since born; 0 when stopped
	frameAt     atomic.Int64 // when the frame clock runs out, in ns since born; 0 when stopped
	born        time.Time    // the clocks' origin, with the monotonic reading that keeps them from wall-clock steps

	// What the handler's reads saw and who closed the Conn, for endCause.
	sawEOF  atomic.Bool // a read returned io.EOF
	drained atomic.Bool // a read returned ErrServerClosed
	stopped atomic.Bool // Server.Close closed the Conn

	// mu guards the fields below, and orders drain's wake-up with the reads
	// it wakes. It is taken under the Conn's rmu or wmu and under the
	// Server's mu, never the other way round.
	mu          sync.Mutex
	rdeadline   time.Time // the read deadline the handler set
	wdeadline   time.Time // the write deadline the handler set
	rheld       bool      // a context call holds the read deadline in the past
	wheld       bool      // a context call holds the write deadline in the past
	msgDeadline time.Time // WriteTimeout's deadline for the message being written
	cause       error     // the cause ended was told
	broken      error     // the first error broke was told
}

// newServedConn attaches a Server's state to c, whose handler's context
// cancel cancels. It runs before c reaches anyone else.
func (srv *Server) newServedConn(c *Conn, cancel context.CancelFunc) *servedConn {
	sc := &servedConn{srv: srv, c: c, cancel: cancel, born: time.Now()}
	if srv.IdleTimeout > 0 || srv.FrameTimeout > 0 {
		sc.clock = time.AfterFunc(time.Hour, sc.expired)
		sc.clock.Stop()
	}
	if srv.FrameTimeout > 0 {
		c.r.waits = sc.frameBegun
	}
	c.hook = sc
	return sc
}

// readBegin starts the idle clock, unless an earlier read that timed out
// left it running. During a drain, a read that would wait for a new message
// returns ErrServerClosed instead.
func (sc *servedConn) readBegin() error {
	sc.reading.Store(true)
	// drain stores draining before it loads reading, and this does the
	// opposite, so a read either sees the drain here or is woken by it.
	if sc.draining.Load() {
		if err := sc.drainingRead(); err != nil {
			return err
		}
	}
	if d := sc.srv.IdleTimeout; d > 0 && sc.idleAt.Load() == 0 {
		sc.idleAt.Store(sc.now() + int64(d))
		sc.setClock()
	}
	return nil
}

// drainingRead decides a read that begins during a drain: it returns
// ErrServerClosed if the read would wait for a new message, and nil to let
// it finish the frame it has begun or deliver what is buffered.
func (sc *servedConn) drainingRead() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.restoreLocked() // a wake-up that came after the read it meant to wake
	if !sc.c.r.wouldWait() {
		return nil
	}
	sc.reading.Store(false)
	sc.stopClocks()
	sc.drained.Store(true)
	return ErrServerClosed
}

// frameBegun is the Reader's waits callback: a read needs more of a frame
// whose first bytes have arrived, so the frame clock starts, unless it runs
// already.
func (sc *servedConn) frameBegun() {
	if sc.frameAt.Load() == 0 {
		sc.frameAt.Store(sc.now() + int64(sc.srv.FrameTimeout))
		sc.setClock()
	}
}

// readEnd stops the clocks once a message has arrived or the stream has
// ended; a timeout leaves them running, so that a handler polling with
// short deadlines does not reset them. A read that drain woke is told to go
// on with the frame it had begun, under the handler's deadline again, or,
// between frames, returns ErrServerClosed.
func (sc *servedConn) readEnd(err error) (error, bool) {
	if sc.interrupted.Load() {
		sc.mu.Lock()
		woken := sc.restoreLocked()
		if woken && isTimeout(err) {
			switch {
			case sc.c.r.wouldWait():
				err = ErrServerClosed
			case !sc.rheld:
				sc.mu.Unlock()
				return nil, true // the read had begun a frame: let it finish
			}
			// A context call's ctx ended too: its read ends here, with
			// the frame kept for the next read.
		}
		sc.mu.Unlock()
	}
	sc.reading.Store(false)
	switch {
	case err == nil:
		sc.stopClocks()
	case isTimeout(err):
	default:
		sc.stopClocks()
		if err == io.EOF {
			sc.sawEOF.Store(true)
		} else if errors.Is(err, ErrServerClosed) {
			sc.drained.Store(true)
		}
	}
	return err, false
}

// restoreLocked puts back the handler's read deadline if drain replaced it
// with a past one, and reports whether it did. A context call's hold keeps
// the past deadline until the call lets it go.
func (sc *servedConn) restoreLocked() bool {
	if !sc.interrupted.Load() {
		return false
	}
	sc.interrupted.Store(false)
	if !sc.rheld {
		sc.c.conn.SetReadDeadline(sc.rdeadline)
	}
	return true
}

// hold implements connHook.hold.
func (sc *servedConn) hold(read, on bool) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !read {
		if on && passed(sc.writeDeadlineLocked()) {
			return false
		}
		sc.wheld = on
		sc.applyWriteDeadlineLocked()
		return on
	}
	if on && passed(sc.rdeadline) {
		return false
	}
	sc.rheld = on
	switch {
	case on:
		sc.c.conn.SetReadDeadline(aLongTimeAgo)
	case !sc.interrupted.Load():
		sc.c.conn.SetReadDeadline(sc.rdeadline)
	}
	return on
}

// now returns the time on the clocks: nanoseconds since the Conn was
// served, on the monotonic clock, so that a step of the wall clock neither
// fires nor loses them.
func (sc *servedConn) now() int64 { return int64(time.Since(sc.born)) }

// setClock sets the timer to the earlier of the idle and frame clocks. Only
// the goroutine reading the Conn starts and stops the clocks. A read that
// starts after the Conn was closed may start one; its failing read stops it
// again.
func (sc *servedConn) setClock() {
	at := sc.idleAt.Load()
	if f := sc.frameAt.Load(); f != 0 && (at == 0 || f < at) {
		at = f
	}
	sc.clock.Reset(time.Duration(at - sc.now()))
}

// stopClocks stops the idle and frame clocks.
func (sc *servedConn) stopClocks() {
	if sc.idleAt.Load() != 0 || sc.frameAt.Load() != 0 {
		sc.idleAt.Store(0)
		sc.frameAt.Store(0)
		sc.clock.Stop()
	}
}

// expired runs when the timer fires, and closes the Conn if a clock has run
// out. The check makes a stale firing (a message completed at the same
// moment) harmless.
func (sc *servedConn) expired() {
	now := sc.now()
	if at := sc.idleAt.Load(); at != 0 && now >= at {
		sc.c.closeNet(errIdleTimeout)
	} else if at := sc.frameAt.Load(); at != 0 && now >= at {
		sc.c.closeNet(errFrameTimeout)
	}
}

// The causes a Server gives for closing a connection itself.
var (
	errIdleTimeout  = errors.New("jsonconn: idle timeout")
	errFrameTimeout = errors.New("jsonconn: frame timeout")
)

// drain makes the Conn's reads return ErrServerClosed instead of waiting for
// a new message, and wakes a read under way with a past deadline. Messages
// the Conn has already received are still returned, a frame under way is
// finished, and writes are not affected: only a read under way is woken,
// since a past read deadline would also break a TLS server's first write,
// which runs the handshake.
func (sc *servedConn) drain() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.draining.Store(true)
	if sc.reading.Load() && !sc.interrupted.Load() {
		sc.interrupted.Store(true)
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
	sc.msgDeadline = time.Now().Add(sc.srv.WriteTimeout)
	sc.applyWriteDeadlineLocked()
}

// applyWriteDeadlineLocked sets the wrapped conn's write deadline to what
// it is now: in the past while a context call holds it, and otherwise the
// earlier of the handler's deadline and that of the message being written.
func (sc *servedConn) applyWriteDeadlineLocked() error {
	d := sc.writeDeadlineLocked()
	if sc.wheld {
		d = aLongTimeAgo
	}
	return sc.c.conn.SetWriteDeadline(d)
}

// writeDeadlineLocked returns the write deadline in force but for a hold:
// the earlier of the handler's and that of the message being written.
func (sc *servedConn) writeDeadlineLocked() time.Time {
	if sc.msgDeadline.After(time.Now()) {
		return earlier(sc.wdeadline, sc.msgDeadline)
	}
	return sc.wdeadline
}

// writeEnd counts a write that WriteTimeout cut short.
func (sc *servedConn) writeEnd(err error) {
	if err == nil || sc.srv.WriteTimeout <= 0 || !isTimeout(err) {
		return
	}
	sc.mu.Lock()
	cut := !time.Now().Before(sc.msgDeadline)
	sc.mu.Unlock()
	if cut {
		sc.srv.stats.writeTimeouts.Add(1)
	}
}

// coalesce lets concurrent writers share a write only without WriteTimeout,
// whose deadline is per message.
func (sc *servedConn) coalesce() bool { return sc.srv.WriteTimeout <= 0 }

// setDeadline records the handler's deadlines and applies them: a read
// deadline unless drain's past one is waking a read (which puts the
// handler's back), a write deadline no later than the one WriteTimeout gave
// the message being written.
func (sc *servedConn) setDeadline(t time.Time, read, write bool) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var err error
	if read {
		sc.rdeadline = t
		if !sc.interrupted.Load() && !sc.rheld {
			err = sc.c.conn.SetReadDeadline(t)
		}
	}
	if write {
		sc.wdeadline = t
		if werr := sc.applyWriteDeadlineLocked(); err == nil {
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

// ended records why the wrapped conn was closed, cancels the handler's
// context, and stops the clocks' timer, so that a closed Conn is not kept
// alive by it.
func (sc *servedConn) ended(cause error) {
	sc.mu.Lock()
	sc.cause = cause
	sc.mu.Unlock()
	if sc.clock != nil {
		sc.clock.Stop()
	}
	sc.cancel()
}

// broke records the first I/O error that ended a side of the Conn and
// cancels the handler's context. The clocks go on: the Conn is open, and a
// read under way on its other side must still be cut if the peer falls
// silent. (A clean end of stream is no break at all: the peer may have
// half-closed and wait for replies.)
func (sc *servedConn) broke(err error) {
	sc.mu.Lock()
	if sc.broken == nil {
		sc.broken = err
	}
	sc.mu.Unlock()
	sc.cancel()
}

// endCause tells why the connection ended, once its handler has returned:
// the first that applies of a handler panic, the cause the Server or the
// Conn gave for closing it (a timeout, a violation), an I/O error that broke
// a side, Shutdown or Close, the peer's end of the stream, and otherwise the
// handler's own return. A cause that left the Conn open does not outrank
// the one that closed it: a failed write does not hide the idle timeout
// that then cut the silent peer.
func (sc *servedConn) endCause(panicked bool) (endCause, error) {
	sc.mu.Lock()
	cause := sc.cause
	if cause == nil {
		cause = sc.broken
	}
	sc.mu.Unlock()
	switch {
	case panicked:
		return endPanic, nil
	case cause == errIdleTimeout:
		return endIdleTimeout, nil
	case cause == errFrameTimeout:
		return endFrameTimeout, nil
	case errors.Is(cause, ErrFrameTooLarge):
		return endFrameTooLarge, cause
	case errors.Is(cause, ErrInvalidJSON):
		return endInvalidJSON, cause
	case errors.Is(cause, io.ErrUnexpectedEOF), peerReset(cause):
		return endPeerClosed, cause
	case cause != nil:
		return endIOError, cause
	case sc.stopped.Load(), sc.drained.Load():
		return endShutdown, nil
	case sc.sawEOF.Load():
		return endPeerClosed, nil
	}
	return endHandlerReturned, nil
}

// An endCause is why a served connection ended, as ServerStats counts it.
type endCause int

const (
	endHandlerReturned endCause = iota
	endPeerClosed
	endIdleTimeout
	endFrameTimeout
	endFrameTooLarge
	endInvalidJSON
	endIOError
	endShutdown
	endPanic
	numEndCauses
)

var endCauseNames = [numEndCauses]string{
	endHandlerReturned: "handler returned",
	endPeerClosed:      "peer closed",
	endIdleTimeout:     "idle timeout",
	endFrameTimeout:    "frame timeout",
	endFrameTooLarge:   "frame too large",
	endInvalidJSON:     "invalid JSON",
	endIOError:         "I/O error",
	endShutdown:        "shutdown",
	endPanic:           "handler panic",
}

// serverStats holds a Server's counters: atomics, so that counting costs no
// lock and nothing per message.
type serverStats struct {
	accepted      atomic.Int64
	waits         atomic.Int64
	waitNanos     atomic.Int64
	ended         [numEndCauses]atomic.Int64
	writeTimeouts atomic.Int64
}

// ServerStats is a snapshot of a Server's counters, returned by
// Server.Stats. Like database/sql's DBStats it holds plain values, ready to
// publish with expvar (see the example) or to copy into another metrics
// system's gauges and counters. The counts run from the Server's first
// Serve call and never go back.
type ServerStats struct {
	MaxConns int // Server.MaxConns: the most connections served at once; 0 for no bound

	Open     int   // connections being served now
	Accepted int64 // connections accepted and served, in all

	// Accepted connections that waited for a slot at MaxConns, and the time
	// they waited in all.
	WaitCount    int64
	WaitDuration time.Duration

	// Connections that ended, by cause. Each counts once, under the first
	// of these that applies: a handler panic; a cause the Server saw end
	// the connection (a timeout, a protocol violation, a read or write
	// error); Shutdown or Close; the peer's end of the stream; the
	// handler's return.
	HandlerPanics  int64 // the handler panicked
	IdleTimeouts   int64 // IdleTimeout passed with no whole message
	FrameTimeouts  int64 // FrameTimeout passed before the rest of a frame
	FramesTooLarge int64 // the peer announced a frame over the cap
	InvalidJSON    int64 // the peer sent a payload that is not JSON
	IOErrors       int64 // a read or write failed otherwise
	Shutdowns      int64 // Shutdown stopped its reads, or Close closed it
	PeerClosed     int64 // the peer ended its stream, reset the connection, or closed it mid-frame
	Returned       int64 // the handler returned with the connection sound

	// Events that do not end a connection by themselves.
	WriteTimeouts int64 // writes that WriteTimeout cut short
}

// Stats returns a snapshot of the server's counters. It may be called at
// any time, concurrently with Serve and with the connections it serves;
// counting costs the message path nothing.
func (srv *Server) Stats() ServerStats {
	srv.mu.Lock()
	open := len(srv.conns)
	srv.mu.Unlock()
	st := &srv.stats
	return ServerStats{
		MaxConns:       srv.MaxConns,
		Open:           open,
		Accepted:       st.accepted.Load(),
		WaitCount:      st.waits.Load(),
		WaitDuration:   time.Duration(st.waitNanos.Load()),
		HandlerPanics:  st.ended[endPanic].Load(),
		IdleTimeouts:   st.ended[endIdleTimeout].Load(),
		FrameTimeouts:  st.ended[endFrameTimeout].Load(),
		FramesTooLarge: st.ended[endFrameTooLarge].Load(),
		InvalidJSON:    st.ended[endInvalidJSON].Load(),
		IOErrors:       st.ended[endIOError].Load(),
		Shutdowns:      st.ended[endShutdown].Load(),
		PeerClosed:     st.ended[endPeerClosed].Load(),
		Returned:       st.ended[endHandlerReturned].Load(),
		WriteTimeouts:  st.writeTimeouts.Load(),
	}
}

// logEnd logs that the connection c ended, and why: at level Error with the
// stack for a panic, Warn for a cause a hostile or broken peer can bring
// about, Debug for the rest. The lines share one rate limit.
func (srv *Server) logEnd(c *Conn, cause endCause, err error, panicked any, stack []byte) {
	level := slog.LevelDebug
	switch cause {
	case endPanic:
		level = slog.LevelError
	case endIdleTimeout, endFrameTimeout, endFrameTooLarge, endInvalidJSON, endIOError:
		level = slog.LevelWarn
	}
	l := srv.logger()
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	// A panic is always logged: it is a bug to fix, and its stack is the
	// one record of it. The others share the rate limit.
	ok, dropped := srv.endLog.allow(time.Now(), cause == endPanic)
	if !ok {
		return
	}
	attrs := []any{"remote", c.RemoteAddr(), "cause", endCauseNames[cause]}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	if dropped > 0 {
		attrs = append(attrs, "dropped", dropped)
	}
	if cause == endPanic {
		attrs = append(attrs, "panic", panicked, "stack", string(stack))
		l.Log(ctx, level, "jsonconn: panic serving connection", attrs...)
		return
	}
	l.Log(ctx, level, "jsonconn: connection ended", attrs...)
}

// A logLimiter is a token bucket for log lines: a burst of logBurst, then
// logRate a second.
type logLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
}

const (
	logBurst = 100
	logRate  = 10
)

// allow reports whether a line may be logged at now, and how many were
// dropped since the last one that was. A forced line is always let through;
// it takes a token if there is one, and with none left it is neither
// counted as dropped nor reports the lines that were, which the next line
// let through by the limit reports.
func (l *logLimiter) allow(now time.Time, force bool) (ok bool, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = logBurst
	} else {
		l.tokens = min(logBurst, l.tokens+now.Sub(l.last).Seconds()*logRate)
	}
	l.last = now
	if l.tokens < 1 {
		if force {
			return true, 0
		}
		l.dropped++
		return false, 0
	}
	l.tokens--
	dropped, l.dropped = l.dropped, 0
	return true, dropped
}

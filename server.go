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

	// WriteTimeout, if positive, sets the write deadline before each
	// message written to a served Conn, replacing any deadline the handler
	// set. A peer that does not read gets a timeout (see ErrPending) instead
	// of a handler blocked forever.
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

	// mu guards the fields below.
	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*Conn]context.CancelFunc // served conns and their contexts' cancel
	idle      chan struct{}                // closed when conns empties during Shutdown
	done      chan struct{}                // closed when Shutdown or Close begins
	slots     chan struct{}                // MaxConns semaphore, shared by all Serve calls
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
		// Configure c before anything else can see it.
		ctx, cancel := context.WithCancel(base)
		c.serve(srv.IdleTimeout, srv.WriteTimeout, cancel)
		if srv.ConnContext != nil {
			if ctx = srv.ConnContext(ctx, c); ctx == nil {
				panic("jsonconn: Server.ConnContext returned a nil context")
			}
		}
		if !srv.startConn(c, cancel) {
			c.Close()
			if slots != nil {
				<-slots
			}
			return ErrServerClosed
		}
		if srv.ConnState != nil {
			srv.ConnState(c, StateNew)
		}
		go srv.serveConn(ctx, c, slots)
	}
}

// serveConn runs the handler for c and cleans up after it.
func (srv *Server) serveConn(ctx context.Context, c *Conn, slots chan struct{}) {
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
		srv.endConn(c)
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
	for c := range srv.conns {
		c.drain()
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
	for c := range srv.conns {
		c.Close()
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
	for _, cancel := range srv.conns {
		cancel()
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

// trackListener adds or removes l. Adding fails once the server is shutting
// down.
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

// startConn registers c, whose context cancel cancels, before its handler
// starts. It fails once the server is shutting down.
func (srv *Server) startConn(c *Conn, cancel context.CancelFunc) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.inShutdown.Load() {
		return false
	}
	if srv.conns == nil {
		srv.conns = make(map[*Conn]context.CancelFunc)
	}
	srv.conns[c] = cancel
	return true
}

// endConn unregisters c once its handler has returned.
func (srv *Server) endConn(c *Conn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, c)
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

// onceCloseListener makes Close safe to call from both Serve and
// Shutdown.
type onceCloseListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceCloseListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

package jsonconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// echo answers every message with itself until the stream ends.
var echo = jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
	for {
		m, err := c.ReadMessage()
		if err != nil {
			return
		}
		if _, err := c.Write(m); err != nil {
			return
		}
	}
})

// appendEcho answers every message with itself until the stream ends,
// reading into one buffer it reuses.
var appendEcho = jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
	var buf []byte
	for {
		var err error
		if buf, err = c.AppendMessage(buf[:0]); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
})

// serving is the result of a Serve call running in the background.
type serving struct {
	once sync.Once
	ch   <-chan error
	err  error
}

// wait returns Serve's result, waiting for it the first time.
func (s *serving) wait(t testing.TB) error {
	t.Helper()
	s.once.Do(func() { s.err = await(t, s.ch) })
	return s.err
}

// startServer serves srv on a fresh loopback listener of network and closes
// it when the test ends.
func startServer(t testing.TB, srv *jsonconn.Server, network string) (addr string, served *serving) {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unix" {
		address = tempSocket(t)
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	return ln.Addr().String(), serveListener(t, srv, ln)
}

// startServerWrapped serves srv on a fresh TCP loopback listener whose
// accepted conns wrap wraps, and closes it when the test ends. A wrapped
// conn is not a *net.TCPConn, so the Conn reads it through its Read.
func startServerWrapped(t testing.TB, srv *jsonconn.Server, wrap func(net.Conn) net.Conn) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveListener(t, srv, wrappingListener{ln, wrap})
	return ln.Addr().String()
}

// serveListener serves srv on ln in the background until the test ends.
func serveListener(t testing.TB, srv *jsonconn.Server, ln net.Listener) *serving {
	t.Helper()
	served := &serving{ch: async(func() error { return srv.Serve(ln) })}
	t.Cleanup(func() {
		srv.Close()
		if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return served
}

// wrappingListener wraps each conn it accepts with wrap.
type wrappingListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// dial connects to a test server with a deadline that only catches hangs.
func dial(t testing.TB, network, addr string) *jsonconn.Conn {
	t.Helper()
	c, err := jsonconn.Dial(network, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(hangTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// quietLogger returns a logger that writes into buf, so tests can read
// what the server logged.
func quietLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, nil))
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServerEcho(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			addr, _ := startServer(t, &jsonconn.Server{Handler: echo}, network)
			var wg sync.WaitGroup
			for i := 0; i < 5; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := dial(t, network, addr)
					for j := 0; j < 20; j++ {
						want := map[string]int{"client": i, "n": j}
						if err := c.Send(want); err != nil {
							t.Error(err)
							return
						}
						var got map[string]int
						if err := c.Receive(&got); err != nil || got["client"] != i || got["n"] != j {
							t.Errorf("client %d: got %v, %v; want %v", i, got, err, want)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func TestServerListenAndServe(t *testing.T) {
	t.Parallel()
	srv := &jsonconn.Server{Handler: echo}
	path := tempSocket(t)
	served := async(func() error { return srv.ListenAndServe("unix", path) })
	var c *jsonconn.Conn
	for i := 0; ; i++ { // until the socket exists
		var err error
		if c, err = jsonconn.Dial("unix", path, nil); err == nil {
			break
		}
		if i == 1000 {
			t.Fatalf("the server never listened: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangTimeout))
	if err := c.Send("hi"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := c.Receive(&got); err != nil || got != "hi" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("ListenAndServe = %v, want ErrServerClosed", err)
	}
	if err := srv.ListenAndServe("unix", path); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("ListenAndServe after Shutdown = %v, want ErrServerClosed", err)
	}
}

func TestServerMaxConns(t *testing.T) {
	t.Parallel()
	const maxConns = 3
	var active, peak atomic.Int32
	full := make(chan struct{}, 2*maxConns)
	release := make(chan struct{})
	srv := &jsonconn.Server{MaxConns: maxConns, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n == maxConns {
			full <- struct{}{}
		}
		<-release
		echo(ctx, c)
	})}
	addr, _ := startServer(t, srv, "tcp")

	// Twice as many clients as slots: all connect (the kernel queues
	// them), but only maxConns are served at a time.
	var wg sync.WaitGroup
	for i := 0; i < 2*maxConns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, "tcp", addr)
			defer c.Close()
			if err := c.Send(i); err != nil {
				t.Error(err)
				return
			}
			var got int
			if err := c.Receive(&got); err != nil || got != i {
				t.Errorf("client %d: got %d, %v", i, got, err)
			}
		}()
	}
	select {
	case <-full:
	case <-time.After(hangTimeout):
		t.Fatal("the server never reached MaxConns handlers")
	}
	close(release)
	wg.Wait()
	if p := peak.Load(); p != maxConns {
		t.Errorf("at most %d handlers ran at once, want exactly MaxConns = %d", p, maxConns)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	t.Parallel()
	handlerErr := make(chan error, 3)
	srv := &jsonconn.Server{IdleTimeout: 300 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for {
			m, err := c.ReadMessage()
			if err != nil {
				handlerErr <- err
				return
			}
			if _, err := c.Write(m); err != nil {
				handlerErr <- err
				return
			}
		}
	})}
	addr, _ := startServer(t, srv, "tcp")

	t.Run("drip", func(t *testing.T) {
		// A client that drips a frame a byte at a time, never finishing it.
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		wire := frame(`"` + strings.Repeat("d", 1000) + `"`)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(hangTimeout)
		cutOff := func(err error) {
			t.Helper()
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("the handler's read ended with %v, want net.ErrClosed", err)
			}
			raw.SetReadDeadline(time.Now().Add(hangTimeout))
			if n, err := raw.Read(make([]byte, 1)); err == nil {
				t.Fatalf("the client read %d bytes, want the closed connection", n)
			}
		}
		for i := range wire {
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatal("the dripping client was never cut off")
			}
			if _, err := raw.Write(wire[i : i+1]); err != nil {
				// The server closed the connection; its handler may not
				// have reported yet.
				select {
				case herr := <-handlerErr:
					cutOff(herr)
				case <-time.After(hangTimeout):
					t.Fatalf("a write failed (%v), but the handler's read never ended", err)
				}
				return
			}
			select {
			case err := <-handlerErr:
				cutOff(err)
				return
			default:
			}
		}
		t.Fatal("the client dripped the whole frame without being cut off")
	})

	t.Run("active client stays", func(t *testing.T) {
		// Messages every 50 ms for well over IdleTimeout: never idle.
		// (A wide ratio: a loaded machine must not make this flaky.)
		srv := &jsonconn.Server{IdleTimeout: time.Second, Handler: echo}
		addr, _ := startServer(t, srv, "tcp")
		c := dial(t, "tcp", addr)
		for i := 0; i < 30; i++ {
			if err := c.Send(i); err != nil {
				t.Fatal(err)
			}
			var got int
			if err := c.Receive(&got); err != nil || got != i {
				t.Fatalf("message %d: got %d, %v", i, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestServerWriteTimeout(t *testing.T) {
	t.Parallel()
	handlerErr := make(chan error, 1)
	srv := &jsonconn.Server{WriteTimeout: 200 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		big := strings.Repeat("w", 64<<10)
		for i := 0; i < 10000; i++ { // far beyond any socket buffer
			if err := c.Send(big); err != nil {
				handlerErr <- err
				return
			}
		}
		handlerErr <- nil
	})}
	addr, _ := startServer(t, srv, "tcp")
	dial(t, "tcp", addr) // and never read
	select {
	case err := <-handlerErr:
		checkTimeout(t, err)
	case <-time.After(hangTimeout):
		t.Fatal("the handler's writes to a client that does not read never timed out")
	}
}

func TestServerShutdownWaitsForHandlers(t *testing.T) {
	t.Parallel()
	busy := make(chan struct{})
	cancelled := make(chan struct{})
	release := make(chan struct{})
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		var req string
		if err := c.Receive(&req); err != nil {
			t.Error(err)
			return
		}
		close(busy)
		<-ctx.Done() // Shutdown cancels the context...
		close(cancelled)
		<-release // ...and waits while the handler finishes its work.
		if err := c.Send("reply to " + req); err != nil {
			t.Errorf("writing during Shutdown: %v", err)
		}
		if _, err := c.ReadMessage(); !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Errorf("reading the next message during Shutdown: got %v, want ErrServerClosed", err)
		}
	})}
	addr, served := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	if err := c.Send("work"); err != nil {
		t.Fatal(err)
	}
	<-busy
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	<-cancelled
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a handler was still running", err)
	default:
	}
	// No new connection is accepted any more.
	if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	close(release)
	if err := await(t, shutdown); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	var reply string
	if err := c.Receive(&reply); err != nil || reply != "reply to work" {
		t.Fatalf("got %q, %v", reply, err)
	}
	if _, err := c.ReadMessage(); err != io.EOF {
		t.Fatalf("after the handler returned: %v, want io.EOF", err)
	}
}

// TestServerShutdownFinishesFrameUnderWay checks that Shutdown lets a
// message whose frame the server has started reading arrive before reads end.
func TestServerShutdownFinishesFrameUnderWay(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	draining := make(chan struct{})
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		context.AfterFunc(ctx, func() { close(draining) }) // Shutdown cancels, then drains
		m, err := c.ReadMessage()
		if err != nil {
			t.Errorf("the message under way was lost: %v", err)
			close(got)
			return
		}
		got <- string(m)
		if _, err := c.ReadMessage(); !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Errorf("next read: got %v, want ErrServerClosed", err)
		}
	})}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reads := make(chan struct{}, 8)
	ln := &signalListener{Listener: inner, reads: reads}
	served := &serving{ch: async(func() error { return srv.Serve(ln) })}
	raw, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	wire := frame(`{"half":"way"}`)
	if _, err := raw.Write(wire[:7]); err != nil {
		t.Fatal(err)
	}
	// The first read returns the 7 bytes; the second waits for the rest.
	<-reads
	<-reads
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	<-draining
	if _, err := raw.Write(wire[7:]); err != nil {
		t.Fatal(err)
	}
	if err := await(t, shutdown); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != `{"half":"way"}` {
		t.Fatalf("got %q", m)
	}
	if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}

// signalListener wraps each accepted conn in a signalConn reporting reads.
type signalListener struct {
	net.Listener
	reads chan struct{}
}

func (l *signalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &signalConn{Conn: c, reads: l.reads, writes: make(chan struct{})}, nil
}

func TestServerShutdownContextExpires(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		close(started)
		<-release // ignores ctx
	})}
	addr, _ := startServer(t, srv, "tcp")
	dial(t, "tcp", addr)
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	close(release)
}

func TestServerCloseUnblocksHandlers(t *testing.T) {
	t.Parallel()
	const clients = 5
	errs := make(chan error, clients)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		_, err := c.ReadMessage()
		errs <- err
	})}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reads := make(chan struct{}, clients)
	served := &serving{ch: async(func() error { return srv.Serve(&signalListener{Listener: inner, reads: reads}) })}
	for i := 0; i < clients; i++ {
		dial(t, "tcp", inner.Addr().String())
	}
	for i := 0; i < clients; i++ {
		<-reads // every handler is blocked in its read
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	for i := 0; i < clients; i++ {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("a handler's read after Close: got %v, want net.ErrClosed", err)
			}
		case <-time.After(hangTimeout):
			t.Fatal("Close did not unblock a handler")
		}
	}
	if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}

func TestServerSurvivesPanickingHandler(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	srv := &jsonconn.Server{Logger: quietLogger(&log), Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		var cmd string
		if err := c.Receive(&cmd); err != nil {
			return
		}
		if cmd == "panic" {
			panic("handler exploded")
		}
		c.Send("ok")
	})}
	addr, _ := startServer(t, srv, "tcp")
	bad := dial(t, "tcp", addr)
	if err := bad.Send("panic"); err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ReadMessage(); err != io.EOF {
		t.Fatalf("the panicking handler's client read %v, want io.EOF (its conn closed)", err)
	}
	good := dial(t, "tcp", addr)
	if err := good.Send("hello"); err != nil {
		t.Fatal(err)
	}
	var reply string
	if err := good.Receive(&reply); err != nil || reply != "ok" {
		t.Fatalf("after a panic the server answered %q, %v", reply, err)
	}
	if l := log.String(); !strings.Contains(l, "handler exploded") || !strings.Contains(l, "server_test.go") {
		t.Errorf("the panic was not logged with its stack:\n%s", l)
	}
}

// flakyListener fails its first Accept calls with a temporary error.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

type temporaryError struct{}

func (temporaryError) Error() string   { return "accept: too many open files" }
func (temporaryError) Timeout() bool   { return false }
func (temporaryError) Temporary() bool { return true }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, temporaryError{}
	}
	return l.Listener.Accept()
}

func TestServerRetriesTemporaryAcceptErrors(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	srv := &jsonconn.Server{Handler: echo, Logger: quietLogger(&log)}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: inner}
	fl.failures.Store(3)
	served := async(func() error { return srv.Serve(fl) })
	c := dial(t, "tcp", inner.Addr().String())
	if err := c.Send(1); err != nil {
		t.Fatal(err)
	}
	var got int
	if err := c.Receive(&got); err != nil || got != 1 {
		t.Fatalf("after temporary accept errors the server answered %d, %v", got, err)
	}
	if n := strings.Count(log.String(), "retrying"); n != 3 {
		t.Errorf("logged %d retries, want 3:\n%s", n, log.String())
	}
	srv.Close()
	if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
}

type ctxKey struct{}

func TestServerContexts(t *testing.T) {
	t.Parallel()
	type seen struct {
		base      any
		remote    net.Addr
		cancelled bool
	}
	results := make(chan seen, 1)
	var states syncBuffer
	srv := &jsonconn.Server{
		IdleTimeout: 200 * time.Millisecond,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), ctxKey{}, "base")
		},
		ConnContext: func(ctx context.Context, c *jsonconn.Conn) context.Context {
			return context.WithValue(ctx, &ctxKey{}, c.RemoteAddr())
		},
		ConnState: func(c *jsonconn.Conn, s jsonconn.ConnState) {
			states.Write([]byte(s.String() + " "))
		},
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			s := seen{base: ctx.Value(ctxKey{})}
			if addr, ok := ctx.Value(&ctxKey{}).(net.Addr); ok {
				s.remote = addr
			}
			_, err := c.ReadMessage() // the client sends nothing: IdleTimeout closes the conn
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("idle read = %v, want net.ErrClosed", err)
			}
			select { // the conn died, so the context is cancelled
			case <-ctx.Done():
				s.cancelled = true
			case <-time.After(hangTimeout):
			}
			results <- s
		}),
	}
	addr, _ := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	s := <-results
	if s.base != "base" || s.remote == nil || s.remote.String() != c.LocalAddr().String() || !s.cancelled {
		t.Errorf("handler saw base %v, remote %v (want %v), cancelled %t", s.base, s.remote, c.LocalAddr(), s.cancelled)
	}
	srv.Shutdown(context.Background())
	if got := states.String(); got != "new closed " {
		t.Errorf("ConnState calls: %q, want %q", got, "new closed ")
	}
}

// TestServerShutdownIdleConns measures Shutdown with 100 idle connections
// and checks that it leaves no goroutine behind.
func TestServerShutdownIdleConns(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	before := runtime.NumGoroutine()
	const conns = 100
	var ready sync.WaitGroup
	ready.Add(conns)
	errs := make(chan error, conns)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		ready.Done()
		for {
			if _, err := c.ReadMessage(); err != nil {
				errs <- err
				return
			}
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := async(func() error { return srv.Serve(ln) })
	clients := make([]net.Conn, conns)
	for i := range clients {
		if clients[i], err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		defer clients[i].Close()
	}
	ready.Wait()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	took := time.Since(start)
	t.Logf("Shutdown with %d idle connections took %v", conns, took)
	for i := 0; i < conns; i++ {
		if err := <-errs; !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Fatalf("an idle handler's read ended with %v, want ErrServerClosed", err)
		}
	}
	if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	for _, c := range clients {
		c.Close()
	}
	for i := 0; ; i++ {
		n := runtime.NumGoroutine()
		if n <= before {
			break
		}
		if i == 200 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before the server, %d after Shutdown:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServerIdleTimerStopsAtEndOfStream: a client that half-closes and waits
// for its replies is not cut off while the handler works after io.EOF.
func TestServerIdleTimerStopsAtEndOfStream(t *testing.T) {
	t.Parallel()
	// The handler reads only once the client has sent everything, so that
	// a client slowed down past IdleTimeout cannot be cut off before then.
	sent := make(chan struct{})
	srv := &jsonconn.Server{IdleTimeout: 100 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		<-sent
		var reqs []string
		for {
			var r string
			if err := c.Receive(&r); err != nil {
				break // io.EOF: the client is done sending
			}
			reqs = append(reqs, r)
		}
		time.Sleep(400 * time.Millisecond) // work well past IdleTimeout
		for _, r := range reqs {
			if err := c.Send("done " + r); err != nil {
				t.Errorf("reply after the client's half-close: %v", err)
				return
			}
		}
	})}
	addr, _ := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	for _, r := range []string{"a", "b"} {
		if err := c.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	close(sent)
	for _, want := range []string{"done a", "done b"} {
		var got string
		if err := c.Receive(&got); err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
}

// TestServerShutdownKeepsHandlerDeadline: a read mid-frame during Shutdown
// still ends at the deadline the handler set.
func TestServerShutdownKeepsHandlerDeadline(t *testing.T) {
	t.Parallel()
	reading := make(chan struct{}, 8)
	result := make(chan error, 1)
	var deadline time.Time
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		deadline = time.Now().Add(time.Second)
		c.SetReadDeadline(deadline)
		_, err := c.ReadMessage()
		if early := time.Until(deadline); err != nil && early > 0 {
			err = fmt.Errorf("%w, %v before the handler's deadline", err, early)
		}
		result <- err
	})}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := &serving{ch: async(func() error { return srv.Serve(&signalListener{Listener: inner, reads: reading}) })}
	raw, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Write(frame(`"stalls"`)[:6]); err != nil { // then stalls
		t.Fatal(err)
	}
	<-reading
	<-reading // the read is now waiting mid-frame
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	select {
	case err := <-result:
		checkTimeout(t, err)
		if strings.Contains(err.Error(), "before the handler's deadline") {
			t.Fatalf("the read ended early: %v: drain left its past deadline in place", err)
		}
	case <-time.After(hangTimeout):
		t.Fatal("a read mid-frame lost its deadline during Shutdown")
	}
	if err := await(t, shutdown); err != nil {
		t.Fatal(err)
	}
	if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

// TestServerShutdownLeavesTLSWritesAlone: a push-only handler over TLS,
// whose handshake has not run yet, can still say goodbye during Shutdown.
func TestServerShutdownLeavesTLSWritesAlone(t *testing.T) {
	t.Parallel()
	cert := testCert(t)
	started := make(chan struct{})
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		close(started)
		<-ctx.Done()
		if err := c.Send("goodbye"); err != nil {
			t.Errorf("Send during Shutdown: %v", err)
		}
	})}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := &serving{ch: async(func() error {
		return srv.Serve(tls.NewListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}}))
	})}
	raw, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	client := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	defer client.Close()
	<-started
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	c := jsonconn.New(client, nil)
	c.SetDeadline(time.Now().Add(hangTimeout))
	var got string
	if err := c.Receive(&got); err != nil || got != "goodbye" {
		t.Fatalf("got %q, %v; want the goodbye", got, err)
	}
	if err := await(t, shutdown); err != nil {
		t.Fatal(err)
	}
	if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

func TestServerMaxConnsAcrossListeners(t *testing.T) {
	t.Parallel()
	var active, peak atomic.Int32
	release := make(chan struct{})
	srv := &jsonconn.Server{MaxConns: 1, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		c.Send("served")
		<-release
	})}
	tcpAddr, _ := startServer(t, srv, "tcp")
	unixAddr, _ := startServer(t, srv, "unix")
	first := dial(t, "tcp", tcpAddr)
	var got string
	if err := first.Receive(&got); err != nil {
		t.Fatal(err)
	}
	second := dial(t, "unix", unixAddr)
	second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if err := second.Receive(&got); err == nil {
		t.Fatal("a second listener served a second conn past MaxConns = 1")
	}
	close(release)
	second.SetReadDeadline(time.Now().Add(hangTimeout))
	if err := second.Receive(&got); err != nil || got != "served" {
		t.Fatalf("after the slot freed: %q, %v", got, err)
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d handlers ran at once, want 1", p)
	}
}

// TestServerServeReturnLeavesHandlersAlone: when Serve returns because its
// listener failed, live handlers keep their contexts, as in net/http.
func TestServerServeReturnLeavesHandlersAlone(t *testing.T) {
	t.Parallel()
	started := make(chan context.Context, 1)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		started <- ctx
		c.ReadMessage()
	})}
	var origin net.Listener
	srv.BaseContext = func(l net.Listener) context.Context {
		origin = l
		return context.Background()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := async(func() error { return srv.Serve(ln) })
	dial(t, "tcp", ln.Addr().String())
	ctx := <-started
	if origin != ln {
		t.Errorf("BaseContext got %T, want the listener passed to Serve", origin)
	}
	ln.Close() // not Shutdown: Serve fails
	if err := await(t, served); err == nil || errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want the accept error", err)
	}
	select {
	case <-ctx.Done():
		t.Fatal("Serve's return cancelled a live handler's context")
	default:
	}
	srv.Close()
	select {
	case <-ctx.Done():
	case <-time.After(hangTimeout):
		t.Fatal("Close did not cancel the handler's context")
	}
}

func TestServerNilHandler(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&jsonconn.Server{}).Serve(ln); err == nil {
		t.Fatal("Serve with a nil Handler succeeded")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Serve returned, Accept = %v; want the listener closed", err)
	}
}

// brokenListener fails Accept with a permanent error.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("listener broke") }

func TestServerReturnsPermanentAcceptError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &jsonconn.Server{Handler: echo}
	if err := srv.Serve(brokenListener{ln}); err == nil || err.Error() != "listener broke" {
		t.Fatalf("Serve = %v, want the accept error", err)
	}
}

// TestServerContextEndsWhenPeerResets: a handler's context is cancelled
// when its conn breaks under it.
func TestServerContextEndsWhenPeerResets(t *testing.T) {
	t.Parallel()
	cancelled := make(chan bool, 1)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		c.Send("hello")
		_, err := c.ReadMessage()
		if err == nil || err == io.EOF {
			t.Errorf("read after the peer's reset = %v, want an error", err)
		}
		select {
		case <-ctx.Done():
			cancelled <- true
		case <-time.After(hangTimeout):
			cancelled <- false
		}
	})}
	addr, _ := startServer(t, srv, "tcp")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := jsonconn.NewReader(raw, nil)
	if _, err := r.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetLinger(0) // Close sends a reset
	raw.Write([]byte{0, 0})         // half a header, so the server's read fails mid-frame
	raw.Close()
	if !<-cancelled {
		t.Fatal("the handler's context was not cancelled when its conn broke")
	}
}

func TestListenAndDialRejectPacketNetworks(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"udp", "unixgram", "unixpacket"} {
		address := "127.0.0.1:0"
		if strings.HasPrefix(network, "unix") {
			address = tempSocket(t) // where net.Listen("unixpacket") would succeed
		}
		_, err := jsonconn.Listen(network, address, nil)
		var unknown net.UnknownNetworkError
		if !errors.As(err, &unknown) {
			t.Errorf("Listen(%q) = %v; want net.UnknownNetworkError: framing needs a byte stream", network, err)
		}
		if _, err := jsonconn.Dial(network, "127.0.0.1:9", nil); err == nil {
			t.Errorf("Dial(%q) succeeded; framing needs a byte stream", network)
		}
		srv := &jsonconn.Server{Handler: echo}
		served := async(func() error { return srv.ListenAndServe(network, address) })
		select {
		case serr := <-served:
			if !errors.As(serr, &unknown) || serr.Error() != err.Error() {
				t.Errorf("ListenAndServe(%q) = %v; want Listen's error, %v", network, serr, err)
			}
		case <-time.After(hangTimeout):
			srv.Close()
			t.Errorf("ListenAndServe(%q) is serving; framing needs a byte stream", network)
		}
	}
}

// TestServerWriteTimeoutIsPerMessage: the deadline is renewed for each
// message, so a handler that writes slowly to a reading client, for longer
// than WriteTimeout in all, never times out.
func TestServerWriteTimeoutIsPerMessage(t *testing.T) {
	t.Parallel()
	const n = 8
	handlerErr := make(chan error, 1)
	srv := &jsonconn.Server{WriteTimeout: 400 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for i := 0; i < n; i++ {
			time.Sleep(100 * time.Millisecond) // 800 ms in all, twice WriteTimeout
			if err := c.Send(i); err != nil {
				handlerErr <- err
				return
			}
		}
		handlerErr <- nil
	})}
	addr, _ := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	for i := 0; i < n; i++ {
		var got int
		if err := c.Receive(&got); err != nil || got != i {
			t.Fatalf("message %d: got %d, %v", i, got, err)
		}
	}
	if err := <-handlerErr; err != nil {
		t.Fatalf("a slow but read stream timed out: %v", err)
	}
}

// TestServerWriteTimeoutKeepsEarlierHandlerDeadline: WriteTimeout bounds
// each message, but never pushes back an earlier deadline the handler set,
// and a later one the handler sets never extends a message past it.
func TestServerWriteTimeoutKeepsEarlierHandlerDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		writeTimeout, before time.Duration // before: the handler's deadline from now
	}{
		{"handler's deadline is earlier", hangTimeout * 3 / 2, 200 * time.Millisecond},
		{"WriteTimeout is earlier", 200 * time.Millisecond, hangTimeout * 3 / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			type result struct {
				err  error
				took time.Duration
			}
			done := make(chan result, 1)
			srv := &jsonconn.Server{WriteTimeout: tc.writeTimeout, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
				start := time.Now()
				c.SetWriteDeadline(start.Add(tc.before))
				big := strings.Repeat("w", 64<<10)
				for i := 0; i < 10000; i++ { // far beyond any socket buffer
					if err := c.Send(big); err != nil {
						done <- result{err, time.Since(start)}
						return
					}
				}
				done <- result{nil, time.Since(start)}
			})}
			addr, _ := startServer(t, srv, "tcp")
			dial(t, "tcp", addr) // and never read
			select {
			case r := <-done:
				checkTimeout(t, r.err)
				t.Logf("the handler's writes timed out after %v", r.took)
			case <-time.After(hangTimeout):
				t.Fatal("the earlier of the two deadlines did not end the blocked write")
			}
		})
	}
}

// TestServerShutdownKeepsEndOfStream: a read during Shutdown still reports
// what the stream already said (here, the peer's clean end) rather than
// ErrServerClosed, as it would for a Conn that no Server drains.
func TestServerShutdownKeepsEndOfStream(t *testing.T) {
	t.Parallel()
	sawEOF := make(chan error, 1)
	got := make(chan error, 1)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		_, err := c.ReadMessage()
		sawEOF <- err
		if err != io.EOF {
			return
		}
		<-ctx.Done() // Shutdown
		_, err = c.ReadMessage()
		got <- err
	})}
	addr, _ := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := await(t, sawEOF); err != io.EOF {
		t.Fatalf("first read = %v, want io.EOF", err)
	}
	shutdown := async(func() error { return srv.Shutdown(context.Background()) })
	if err := await(t, got); err != io.EOF {
		t.Fatalf("read during Shutdown after the peer's end = %v, want io.EOF", err)
	}
	if err := await(t, shutdown); err != nil {
		t.Fatal(err)
	}
}

// TestServerFrameTimeout checks what FrameTimeout cuts off, and what it
// leaves alone.
func TestServerFrameTimeout(t *testing.T) {
	t.Parallel()
	const ft = 300 * time.Millisecond

	t.Run("a stalled frame is cut off", func(t *testing.T) {
		t.Parallel()
		errs := make(chan error, 1)
		srv := &jsonconn.Server{FrameTimeout: ft, IdleTimeout: time.Hour, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			_, err := c.ReadMessage()
			errs <- err
		})}
		addr, _ := startServer(t, srv, "tcp")
		raw := rawDial(t, addr)
		if _, err := raw.Write(frame(`"stalls"`)[:6]); err != nil {
			t.Fatal(err)
		}
		if err := await(t, errs); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("the stalled read ended with %v, want net.ErrClosed", err)
		}
		awaitStats(t, srv, "a frame timeout", func(s jsonconn.ServerStats) bool { return s.FrameTimeouts == 1 && s.IdleTimeouts == 0 })
	})

	t.Run("a quiet peer is left alone", func(t *testing.T) {
		t.Parallel()
		srv := &jsonconn.Server{FrameTimeout: ft, Handler: echo}
		addr, _ := startServer(t, srv, "tcp")
		c := dial(t, "tcp", addr)
		time.Sleep(5 * ft) // quiet for five times FrameTimeout
		if err := c.Send("still here"); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := c.Receive(&got); err != nil || got != "still here" {
			t.Fatalf("after a quiet spell: %q, %v", got, err)
		}
		if s := srv.Stats(); s.FrameTimeouts != 0 {
			t.Fatalf("a quiet peer counted a frame timeout: %+v", s)
		}
	})

	t.Run("buffered bytes start no clock while the handler is busy", func(t *testing.T) {
		t.Parallel()
		// The handler itself sends the rest of the frame when it is done
		// being busy, so that no stall of the test's goroutine can make
		// the rest late: a clock started while the handler was busy is
		// past its end by then, and a read with it fails at once.
		var raw net.Conn
		dialed := make(chan struct{})
		got := make(chan error, 1)
		second := frame(`"second"`)
		srv := &jsonconn.Server{FrameTimeout: ft, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			if _, err := c.ReadMessage(); err != nil {
				got <- err
				return
			}
			time.Sleep(4 * ft) // busy, with half the next frame buffered
			<-dialed
			if _, err := raw.Write(second[6:]); err != nil {
				got <- err
				return
			}
			_, err := c.ReadMessage()
			got <- err
		})}
		addr, _ := startServer(t, srv, "tcp")
		raw = rawDial(t, addr)
		close(dialed)
		if _, err := raw.Write(append(frame(`"first"`), second[:6]...)); err != nil {
			t.Fatal(err)
		}
		if err := await(t, got); err != nil {
			t.Fatalf("the frame whose start arrived while the handler was busy: %v", err)
		}
	})

	t.Run("Shutdown does not wait for a stalled frame", func(t *testing.T) {
		t.Parallel()
		errs := make(chan error, 1)
		srv := &jsonconn.Server{FrameTimeout: ft, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			_, err := c.ReadMessage()
			errs <- err
		})}
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		reads := make(chan struct{}, 8)
		served := &serving{ch: async(func() error { return srv.Serve(&signalListener{Listener: inner, reads: reads}) })}
		raw := rawDial(t, inner.Addr().String())
		if _, err := raw.Write(frame(`"half"`)[:5]); err != nil {
			t.Fatal(err)
		}
		// The first read returns some of the 5 bytes (it waits for them
		// if need be); the second waits for the rest of the frame.
		<-reads
		<-reads
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with a stalled frame = %v, want nil once FrameTimeout cut it", err)
		}
		if err := await(t, errs); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("the stalled read ended with %v, want net.ErrClosed", err)
		}
		if s := srv.Stats(); s.FrameTimeouts != 1 {
			t.Fatalf("stats after Shutdown: %+v, want one frame timeout", s)
		}
		if err := served.wait(t); !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Fatalf("Serve = %v, want ErrServerClosed", err)
		}
	})
}

// rawDial connects a plain TCP conn to addr, closed when the test ends.
func rawDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.SetDeadline(time.Now().Add(hangTimeout))
	t.Cleanup(func() { raw.Close() })
	return raw
}

// awaitStats waits until srv's stats satisfy ok.
func awaitStats(t *testing.T, srv *jsonconn.Server, what string, ok func(jsonconn.ServerStats) bool) {
	t.Helper()
	waitUntil(t, what+" in the stats", func() bool { return ok(srv.Stats()) })
}

// TestServerStatsCountEachEnd checks that each way a connection can end is
// counted once, under its own cause, and logged with it.
func TestServerStatsCountEachEnd(t *testing.T) {
	t.Parallel()
	readOne := func(ctx context.Context, c *jsonconn.Conn) { c.ReadMessage() }
	for _, tc := range []struct {
		name    string
		srv     *jsonconn.Server                // nil for a zero Server
		wrap    func(net.Listener) net.Listener // if set, what the Server serves
		peer    func(t *testing.T, raw net.Conn, srv *jsonconn.Server)
		count   func(jsonconn.ServerStats) int64
		logged  string // in the log line, if set
		handler func(ctx context.Context, c *jsonconn.Conn)
	}{
		{name: "handler returned", handler: func(context.Context, *jsonconn.Conn) {},
			count: func(s jsonconn.ServerStats) int64 { return s.Returned }},
		{name: "peer closed", handler: readOne,
			peer:  func(t *testing.T, raw net.Conn, _ *jsonconn.Server) { raw.(*net.TCPConn).CloseWrite() },
			count: func(s jsonconn.ServerStats) int64 { return s.PeerClosed }},
		{name: "peer closed mid-frame", handler: readOne,
			peer: func(t *testing.T, raw net.Conn, _ *jsonconn.Server) {
				raw.Write([]byte{0, 0})
				raw.(*net.TCPConn).CloseWrite()
			},
			count: func(s jsonconn.ServerStats) int64 { return s.PeerClosed }},
		{name: "idle timeout", srv: &jsonconn.Server{IdleTimeout: 100 * time.Millisecond}, handler: readOne,
			count: func(s jsonconn.ServerStats) int64 { return s.IdleTimeouts }, logged: `cause="idle timeout"`},
		{name: "frame timeout", srv: &jsonconn.Server{FrameTimeout: 100 * time.Millisecond}, handler: readOne,
			peer:  func(t *testing.T, raw net.Conn, _ *jsonconn.Server) { raw.Write([]byte{0, 0}) },
			count: func(s jsonconn.ServerStats) int64 { return s.FrameTimeouts }, logged: `cause="frame timeout"`},
		{name: "frame too large", handler: readOne,
			peer:  func(t *testing.T, raw net.Conn, _ *jsonconn.Server) { raw.Write([]byte{0xff, 0xff, 0xff, 0xff}) },
			count: func(s jsonconn.ServerStats) int64 { return s.FramesTooLarge }, logged: `cause="frame too large"`},
		{name: "invalid JSON", handler: readOne,
			peer:  func(t *testing.T, raw net.Conn, _ *jsonconn.Server) { raw.Write(frame(`{"a":`)) },
			count: func(s jsonconn.ServerStats) int64 { return s.InvalidJSON }, logged: `cause="invalid JSON"`},
		{name: "reset", handler: readOne,
			peer: func(t *testing.T, raw net.Conn, _ *jsonconn.Server) {
				raw.Write([]byte{0, 0})
				raw.(*net.TCPConn).SetLinger(0)
				raw.Close()
			},
			count: func(s jsonconn.ServerStats) int64 { return s.PeerClosed }},
		{name: "shutdown", handler: readOne,
			peer: func(t *testing.T, raw net.Conn, srv *jsonconn.Server) {
				awaitStats(t, srv, "the connection served", func(s jsonconn.ServerStats) bool { return s.Open == 1 })
				srv.Shutdown(context.Background())
			},
			count: func(s jsonconn.ServerStats) int64 { return s.Shutdowns }},
		{name: "close", handler: readOne,
			peer: func(t *testing.T, raw net.Conn, srv *jsonconn.Server) {
				awaitStats(t, srv, "the connection served", func(s jsonconn.ServerStats) bool { return s.Open == 1 })
				srv.Close()
			},
			count: func(s jsonconn.ServerStats) int64 { return s.Shutdowns }},
		{name: "handler panic", handler: func(context.Context, *jsonconn.Conn) { panic("boom") },
			count: func(s jsonconn.ServerStats) int64 { return s.HandlerPanics }, logged: "boom"},
		{name: "I/O error", handler: readOne,
			wrap:  func(ln net.Listener) net.Listener { return failingListener{ln} },
			count: func(s jsonconn.ServerStats) int64 { return s.IOErrors }, logged: `cause="I/O error"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log syncBuffer
			srv := tc.srv
			if srv == nil {
				srv = new(jsonconn.Server)
			}
			srv.Logger = quietLogger(&log)
			srv.Handler = jsonconn.HandlerFunc(tc.handler)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := ln
			if tc.wrap != nil {
				served = tc.wrap(ln)
			}
			serving := async(func() error { return srv.Serve(served) })
			t.Cleanup(func() {
				srv.Close()
				if err := await(t, serving); !errors.Is(err, jsonconn.ErrServerClosed) {
					t.Errorf("Serve = %v, want ErrServerClosed", err)
				}
			})
			raw := rawDial(t, ln.Addr().String())
			if tc.peer != nil {
				tc.peer(t, raw, srv)
			}
			awaitStats(t, srv, "the connection's end", func(s jsonconn.ServerStats) bool { return s.Accepted == 1 && s.Open == 0 })
			s := srv.Stats()
			ends := s.Returned + s.PeerClosed + s.IdleTimeouts + s.FrameTimeouts + s.FramesTooLarge +
				s.InvalidJSON + s.IOErrors + s.Shutdowns + s.HandlerPanics
			if tc.count(s) != 1 || ends != 1 {
				t.Errorf("stats %+v: want the one connection counted once, under %s", s, tc.name)
			}
			if tc.logged != "" && !strings.Contains(log.String(), tc.logged) {
				t.Errorf("the log does not say %s:\n%s", tc.logged, log.String())
			}
		})
	}
}

// TestServerStatsMaxConnsWaits checks that a connection that waits for a
// slot at MaxConns is counted, with its wait.
func TestServerStatsMaxConnsWaits(t *testing.T) {
	// Not parallel: it looks for its Serve call's wait among the process's
	// goroutines, and other tests' Servers wait for slots too.
	release := make(chan struct{})
	srv := &jsonconn.Server{MaxConns: 1, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		<-release
	})}
	addr, _ := startServer(t, srv, "tcp")
	rawDial(t, addr)
	awaitStats(t, srv, "the first connection served", func(s jsonconn.ServerStats) bool { return s.Open == 1 })
	rawDial(t, addr) // waits for the slot
	waitUntil(t, "Serve waiting for a slot", func() bool { return goroutineIn("jsonconn.(*Server).Serve", "[select") })
	close(release)
	awaitStats(t, srv, "both connections served and ended", func(s jsonconn.ServerStats) bool { return s.Accepted == 2 && s.Open == 0 })
	if s := srv.Stats(); s.WaitCount != 1 || s.WaitDuration <= 0 || s.MaxConns != 1 {
		t.Fatalf("stats %+v: want one wait at MaxConns 1, of some duration", s)
	}
}

// failingListener accepts conns whose reads fail with errDiskOnFire.
type failingListener struct{ net.Listener }

var errDiskOnFire = errors.New("disk on fire")

func (l failingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return failingConn{c}, nil
}

type failingConn struct{ net.Conn }

func (failingConn) Read([]byte) (int, error) { return 0, errDiskOnFire }

// TestServerLogLimiter checks the rate limit on the log of ended
// connections: a burst, then the rate, and the count of dropped lines on
// the next line let through. A panic's line, which is always logged, is
// neither dropped nor counted as dropped.
func TestServerLogLimiter(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	var at []time.Time
	for range jsonconn.LogBurst + 50 { // a flood, all at once
		at = append(at, start)
	}
	panicLine := len(at)
	at = append(at, start)                                   // a panic's line, in the flood
	at = append(at, start.Add(time.Second/jsonconn.LogRate)) // one token later
	force := make([]bool, len(at))
	force[panicLine] = true
	ok, dropped := jsonconn.LogLimiterAllows(at, force)
	for i := range jsonconn.LogBurst + 50 {
		if want := i < jsonconn.LogBurst; ok[i] != want || dropped[i] != 0 {
			t.Fatalf("line %d of the flood: let through %t (dropped %d), want %t", i, ok[i], dropped[i], want)
		}
	}
	if !ok[panicLine] || dropped[panicLine] != 0 {
		t.Fatalf("the panic's line: let through %t, reporting %d dropped; want true and 0", ok[panicLine], dropped[panicLine])
	}
	if last := len(at) - 1; !ok[last] || dropped[last] != 50 {
		t.Fatalf("the line after the flood: let through %t, reporting %d dropped; want true and 50 (the panic's line was logged)", ok[last], dropped[last])
	}
}

// TestServerLogCountsDroppedLinesExactly floods a Server's log of ended
// connections, with a handler panic in the flood, and checks that the lines
// reported dropped are exactly the lines that were not logged: a panic's
// line, which is logged whatever the limit says, is not among them.
func TestServerLogCountsDroppedLinesExactly(t *testing.T) {
	t.Parallel()
	var log bytes.Buffer
	srv := &jsonconn.Server{Logger: slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a, b := net.Pipe()
	defer b.Close()
	c := jsonconn.New(a, nil)
	defer c.Close()

	const flood = jsonconn.LogBurst + 50
	for range flood {
		jsonconn.LogEnd(srv, c, false)
	}
	jsonconn.LogEnd(srv, c, true)
	calls := flood
	for lines := strings.Count(log.String(), "\n"); ; {
		// A token comes back every 1/LogRate seconds: end with a line
		// the limit lets through, so that it reports every drop.
		time.Sleep(2 * time.Second / jsonconn.LogRate)
		jsonconn.LogEnd(srv, c, false)
		calls++
		if strings.Count(log.String(), "\n") > lines {
			break
		}
		if calls > flood+50 {
			t.Fatal("no line let through in 10 s")
		}
	}

	var linesLogged, panics, reported int
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var rec struct {
			Cause   string `json:"cause"`
			Dropped int    `json:"dropped"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Cause == "handler panic" {
			panics++
		} else {
			linesLogged++
		}
		reported += rec.Dropped
	}
	if panics != 1 {
		t.Fatalf("%d panic lines logged, want 1", panics)
	}
	if want := calls - linesLogged; reported != want {
		t.Fatalf("the log reports %d lines dropped; %d of %d were not logged", reported, want, calls)
	}
}

// goroutineIn reports whether some goroutine is in the function fn and in
// the state state ("[select", "[IO wait", ...), as its stack shows.
func goroutineIn(fn, state string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, state) && strings.Contains(g, fn+"(") {
			return true
		}
	}
	return false
}

// TestServerTypeMismatchKeepsTheClocks: a Receive that cannot decode a
// valid message into its destination leaves the stream in sync. It must not
// count as a broken connection: the handler's context goes on, the idle
// clock still cuts off a peer that then falls silent, and the end is
// counted as an idle timeout, not an I/O error.
func TestServerTypeMismatchKeepsTheClocks(t *testing.T) {
	t.Parallel()
	got := make(chan error, 3)
	sent := make(chan struct{}) // the first read waits for the message, not the idle clock for a slow client
	srv := &jsonconn.Server{IdleTimeout: 300 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		<-sent
		var n int
		got <- c.Receive(&n) // the peer sends a string
		got <- ctx.Err()
		_, err := c.ReadMessage() // and then nothing
		got <- err
	})}
	addr, _ := startServer(t, srv, "tcp")
	c := dial(t, "tcp", addr)
	if err := c.Send("not a number"); err != nil {
		t.Fatal(err)
	}
	close(sent)
	var ute *json.UnmarshalTypeError
	if err := await(t, got); !errors.As(err, &ute) {
		t.Fatalf("Receive = %v, want a *json.UnmarshalTypeError", err)
	}
	if err := await(t, got); err != nil {
		t.Fatalf("after the type mismatch the handler's context ended: %v", err)
	}
	if err := await(t, got); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the read on a silent peer ended with %v, want net.ErrClosed from IdleTimeout", err)
	}
	awaitStats(t, srv, "the idle timeout counted", func(s jsonconn.ServerStats) bool {
		return s.IdleTimeouts == 1 && s.IOErrors == 0 && s.Open == 0
	})
}

// firstReadConn is a wrapped conn whose first Read runs first in place of
// the conn's own. It keeps CloseWrite.
type firstReadConn struct {
	net.Conn
	first func(c net.Conn, p []byte) (int, error)
	done  atomic.Bool
}

func (f *firstReadConn) Read(p []byte) (int, error) {
	if f.done.CompareAndSwap(false, true) {
		return f.first(f.Conn, p)
	}
	return f.Conn.Read(p)
}

func (f *firstReadConn) CloseWrite() error { return f.Conn.(*net.TCPConn).CloseWrite() }

// onFirstRead returns a wrap function for startServerWrapped whose conns
// are firstReadConns running first.
func onFirstRead(first func(c net.Conn, p []byte) (int, error)) func(net.Conn) net.Conn {
	return func(c net.Conn) net.Conn { return &firstReadConn{Conn: c, first: first} }
}

// awaitCancel waits for ctx to end, and returns an error if it does not
// within hangTimeout.
func awaitCancel(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(hangTimeout):
		return errors.New("the handler's context was not cancelled")
	}
}

// oneEnded waits until the one connection srv accepted has ended, and
// returns srv's stats.
func oneEnded(t *testing.T, srv *jsonconn.Server) jsonconn.ServerStats {
	t.Helper()
	awaitStats(t, srv, "the connection ended", func(s jsonconn.ServerStats) bool { return s.Open == 0 && s.Accepted == 1 })
	return srv.Stats()
}

// panickyValue's UnmarshalJSON panics.
type panickyValue struct{}

func (*panickyValue) UnmarshalJSON([]byte) error { panic("UnmarshalJSON broke") }

// TestServerRecoveredPanicInReceiveStopsTheClocks: a Receive whose decoder
// panics on a message that arrived whole, recovered by the handler, ends
// like a Receive that returned: the message arrived, so neither IdleTimeout
// nor FrameTimeout runs while the handler then works with no read pending,
// and its reply goes out.
func TestServerRecoveredPanicInReceiveStopsTheClocks(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	broken := &jsonconn.Config{Unmarshal: func([]byte, any) error { panic("Config.Unmarshal broke") }}
	tests := []struct {
		name        string
		idle, frame time.Duration
		cfg         *jsonconn.Config
		dst         any
	}{
		{"UnmarshalJSON under IdleTimeout", timeout, 0, nil, new(panickyValue)},
		{"UnmarshalJSON under FrameTimeout", 0, timeout, nil, new(panickyValue)},
		{"Config.Unmarshal under IdleTimeout", timeout, 0, broken, new(int)},
		{"Config.Unmarshal under FrameTimeout", 0, timeout, broken, new(int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			recovered := make(chan any, 1)
			replied := make(chan error, 1)
			srv := &jsonconn.Server{IdleTimeout: tt.idle, FrameTimeout: tt.frame, Config: tt.cfg, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
				func() {
					defer func() { recovered <- recover() }()
					c.Receive(tt.dst)
				}()
				time.Sleep(3 * timeout) // work, with no read pending
				replied <- c.Send("done")
			})}
			// The first read returns 6 bytes of the frame, so that the
			// Reader waits for the rest: the frame clock starts.
			addr := startServerWrapped(t, srv, onFirstRead(func(c net.Conn, p []byte) (int, error) {
				return c.Read(p[:min(len(p), 6)])
			}))
			raw := rawDial(t, addr)
			if _, err := raw.Write(frame(`{"n":1}`)); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-recovered:
				if p == nil {
					t.Fatal("Receive did not panic")
				}
			case <-time.After(hangTimeout):
				t.Fatal("Receive never returned")
			}
			if err := await(t, replied); err != nil {
				t.Fatalf("the reply after the recovered panic failed: %v; want it sent, since no clock runs after a message", err)
			}
			if m, err := jsonconn.NewReader(raw, nil).ReadMessage(); err != nil || string(m) != `"done"` {
				t.Fatalf("the client got %q, %v; want the reply", m, err)
			}
			if s := oneEnded(t, srv); s.IdleTimeouts != 0 || s.FrameTimeouts != 0 || s.Returned != 1 {
				t.Fatalf("stats %+v: want the handler's return, and no timeout", s)
			}
		})
	}
}

// TestServerPanickingReadEndsLikeAnIOError: a panic from the wrapped conn's
// Read, recovered by the handler, ends the Conn's read side as an I/O error
// does, since what it consumed of the stream is unknown: later reads return
// an error, the handler's context is cancelled, the clocks stop, and the
// end counts as an I/O error.
func TestServerPanickingReadEndsLikeAnIOError(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	recovered := make(chan any, 1)
	got := make(chan error, 2)
	srv := &jsonconn.Server{IdleTimeout: idle, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		func() {
			defer func() { recovered <- recover() }()
			c.ReadMessage()
		}()
		_, err := c.ReadMessage()
		got <- err
		got <- awaitCancel(ctx)
		time.Sleep(3 * idle) // no clock may cut the Conn meanwhile
	})}
	addr := startServerWrapped(t, srv, onFirstRead(func(net.Conn, []byte) (int, error) {
		panic("wrapped conn's Read broke")
	}))
	rawDial(t, addr)
	if p := <-recovered; p == nil {
		t.Fatal("ReadMessage did not panic")
	}
	if err := await(t, got); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("the read after the panic = %v, want the error of a source that panicked", err)
	}
	if err := await(t, got); err != nil {
		t.Fatal(err)
	}
	if s := oneEnded(t, srv); s.IOErrors != 1 || s.IdleTimeouts != 0 {
		t.Fatalf("stats %+v: want one I/O error and no idle timeout", s)
	}
}

// TestServerFailedWriteKeepsTheReadClocks: a write that fails (here with
// EPIPE, after CloseWrite) while a read waits on a silent peer does not
// disarm IdleTimeout: the peer is cut as it would have been without the
// write, and the end counts as an idle timeout, since the Conn was open
// until the timeout closed it.
func TestServerFailedWriteKeepsTheReadClocks(t *testing.T) {
	t.Parallel()
	reading := make(chan struct{})
	sendErr := make(chan error, 1)
	readErr := make(chan error, 1)
	srv := &jsonconn.Server{IdleTimeout: 300 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		go func() {
			_, err := c.ReadMessage()
			readErr <- err
		}()
		<-reading
		if err := c.CloseWrite(); err != nil {
			sendErr <- err
			return
		}
		sendErr <- c.Send("after CloseWrite")
		select {
		case err := <-readErr:
			readErr <- err
		case <-time.After(hangTimeout):
		}
	})}
	addr := startServerWrapped(t, srv, onFirstRead(func(c net.Conn, p []byte) (int, error) {
		close(reading) // the read is under way, its idle clock running
		return c.Read(p)
	}))
	rawDial(t, addr) // and then silent
	if err := await(t, sendErr); err == nil {
		t.Fatal("Send after CloseWrite succeeded")
	}
	if err := await(t, readErr); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the read on the silent peer ended with %v, want net.ErrClosed from IdleTimeout", err)
	}
	if s := oneEnded(t, srv); s.IdleTimeouts != 1 || s.IOErrors != 0 || s.PeerClosed != 0 {
		t.Fatalf("stats %+v: want the end counted as an idle timeout", s)
	}
}

// errKeepAliveExpired is what a read or write returns on Linux once TCP
// keep-alive probes (or TCP_USER_TIMEOUT) found the peer gone. Its Timeout
// reports true, as syscall.Errno's does for ETIMEDOUT.
var errKeepAliveExpired = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}

// TestServerDeadPeerIsNoDeadline: a read that fails with ETIMEDOUT, a dead
// peer found by TCP keep-alive, ends the read side like any I/O error: the
// error is sticky, the handler's context is cancelled, and the end counts as
// an I/O error, as docs/operations.md promises.
func TestServerDeadPeerIsNoDeadline(t *testing.T) {
	t.Parallel()
	got := make(chan error, 3)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		_, err := c.ReadMessage()
		got <- err
		_, err = c.ReadMessage()
		got <- err
		got <- awaitCancel(ctx)
	})}
	addr := startServerWrapped(t, srv, onFirstRead(func(net.Conn, []byte) (int, error) {
		return 0, errKeepAliveExpired
	}))
	rawDial(t, addr).Close() // the next real read finds the end of the stream
	if err := await(t, got); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("the read = %v, want ETIMEDOUT", err)
	}
	if err := await(t, got); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("the read after ETIMEDOUT = %v, want ETIMEDOUT again: the read side ended", err)
	}
	if err := await(t, got); err != nil {
		t.Fatal(err)
	}
	if s := oneEnded(t, srv); s.IOErrors != 1 || s.PeerClosed != 0 {
		t.Fatalf("stats %+v: want one I/O error", s)
	}
}

// blockingClose is a wrapped conn whose Close waits for release.
type blockingClose struct {
	net.Conn
	closing chan<- struct{}
	release <-chan struct{}
}

func (b blockingClose) Close() error {
	b.closing <- struct{}{}
	<-b.release
	return b.Conn.Close()
}

// TestServerCloseDoesNotHoldItsLockOnConns: Server.Close closes the conns
// outside the server's lock, so a conn whose Close blocks (the user's own
// type, or a TLS conn writing its close_notify) stalls neither Stats nor the
// end of other handlers.
func TestServerCloseDoesNotHoldItsLockOnConns(t *testing.T) {
	t.Parallel()
	closing := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		c.ReadMessage()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := async(func() error {
		return srv.Serve(wrappingListener{ln, func(c net.Conn) net.Conn { return blockingClose{c, closing, release} }})
	})
	rawDial(t, ln.Addr().String())
	awaitStats(t, srv, "the connection served", func(s jsonconn.ServerStats) bool { return s.Open == 1 })
	closed := async(srv.Close)
	select {
	case <-closing:
	case <-time.After(hangTimeout):
		t.Fatal("Server.Close never closed the conn")
	}
	stats := make(chan jsonconn.ServerStats, 1)
	go func() { stats <- srv.Stats() }()
	select {
	case <-stats:
	case <-time.After(hangTimeout):
		t.Error("Stats waited for a conn's Close")
	}
	close(release)
	if err := await(t, closed); err != nil {
		t.Fatal(err)
	}
	if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	awaitStats(t, srv, "the handler returned", func(s jsonconn.ServerStats) bool { return s.Open == 0 })
}

// stalledWrites is a conn under TLS whose writes, once stall is set, block
// until the write deadline or Close, as a socket's do once a peer that
// stopped reading has let every buffer fill.
type stalledWrites struct {
	net.Conn
	stall    atomic.Bool
	mu       sync.Mutex
	deadline time.Time
	once     sync.Once
	closed   chan struct{}
}

func (s *stalledWrites) Write(p []byte) (int, error) {
	if !s.stall.Load() {
		return s.Conn.Write(p)
	}
	s.mu.Lock()
	d := s.deadline
	s.mu.Unlock()
	var expired <-chan time.Time
	if !d.IsZero() {
		timer := time.NewTimer(time.Until(d))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-s.closed:
		return 0, net.ErrClosed
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	}
}

func (s *stalledWrites) SetDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	return s.Conn.SetDeadline(t)
}

func (s *stalledWrites) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	return s.Conn.SetWriteDeadline(t)
}

func (s *stalledWrites) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// TestServerCloseDoesNotWaitForTLSPeers: Server.Close closes TLS
// connections whose peers have stopped reading without the close_notify
// alert that tls.Conn.Close writes, which would wait 5 seconds for each.
func TestServerCloseDoesNotWaitForTLSPeers(t *testing.T) {
	t.Parallel()
	const conns = 2
	srv := &jsonconn.Server{Handler: echo}
	cert := testCert(t)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	under := make(chan *stalledWrites, conns)
	stalling := wrappingListener{tcp, func(c net.Conn) net.Conn {
		s := &stalledWrites{Conn: c, closed: make(chan struct{})}
		under <- s
		return s
	}}
	served := async(func() error {
		return srv.Serve(tls.NewListener(stalling, &tls.Config{Certificates: []tls.Certificate{cert}}))
	})
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	for range conns {
		c, err := jsonconn.Dial("tcp", tcp.Addr().String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(c.NetConn(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		c = jsonconn.New(tc, nil)
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(hangTimeout))
		if err := c.Send("hello"); err != nil {
			t.Fatal(err)
		}
		if err := c.Receive(new(string)); err != nil { // the handshake is done
			t.Fatal(err)
		}
		(<-under).stall.Store(true)
	}
	start := time.Now()
	srv.Close()
	// With close_notify it would take 5 s for the first conn alone.
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Server.Close took %v, waiting on peers that do not read", d)
	}
	if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	awaitStats(t, srv, "the handlers returned", func(s jsonconn.ServerStats) bool { return s.Open == 0 })
}

// TestServerLogNamesTheProtocolAPeerSpeaks: a real TLS client and a real
// HTTP client sent to a plain Server are logged as what they are, not as a
// frame of a billion bytes.
func TestServerLogNamesTheProtocolAPeerSpeaks(t *testing.T) {
	t.Parallel()
	var log syncBuffer
	srv := &jsonconn.Server{Handler: echo, Logger: quietLogger(&log)}
	addr, _ := startServer(t, srv, "tcp")

	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		tc.Close()
		t.Fatal("a TLS handshake with a plain jsonconn Server succeeded")
	}
	client := &http.Client{Timeout: hangTimeout}
	if resp, err := client.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("an HTTP request to a plain jsonconn Server got a response")
	}
	awaitStats(t, srv, "both ends counted", func(s jsonconn.ServerStats) bool { return s.FramesTooLarge == 2 && s.Open == 0 })
	for _, want := range []string{"looks like a TLS record", "looks like HTTP"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, log.String())
		}
	}
}

// panickyWriteConn's Write panics.
type panickyWriteConn struct{ net.Conn }

func (panickyWriteConn) Write([]byte) (int, error) { panic("wrapped conn's Write broke") }

// TestServerPanickingWriteEndsLikeAnIOError: a panic from the wrapped
// conn's Write, recovered by the handler, ends the write side as an I/O
// error does: the handler's context is cancelled and the end counts as an
// I/O error, as for a panicking Read.
func TestServerPanickingWriteEndsLikeAnIOError(t *testing.T) {
	t.Parallel()
	recovered := make(chan any, 1)
	ctxErr := make(chan error, 1)
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		func() {
			defer func() { recovered <- recover() }()
			c.Send("reply")
		}()
		select {
		case <-ctx.Done():
			ctxErr <- nil
		case <-time.After(hangTimeout):
			ctxErr <- context.DeadlineExceeded
		}
	})}
	addr := startServerWrapped(t, srv, func(c net.Conn) net.Conn { return panickyWriteConn{c} })
	rawDial(t, addr)
	if p := <-recovered; p == nil {
		t.Fatal("Send did not panic")
	}
	if err := <-ctxErr; err != nil {
		t.Errorf("the handler's context was not cancelled after its write side ended with a panic")
	}
	if s := oneEnded(t, srv); s.IOErrors != 1 || s.Returned != 0 {
		t.Errorf("stats %+v: want one I/O error, not a sound return", s)
	}
}

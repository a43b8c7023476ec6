package jsonconn_test

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// restartable is an echo server on a fixed loopback address that a test can
// stop and start again, as a service is restarted.
type restartable struct {
	t       testing.TB
	addr    string
	handler jsonconn.Handler
	mu      sync.Mutex
	srv     *jsonconn.Server
	served  <-chan error
}

// startRestartable serves handler (echo if nil) on a fresh loopback port.
func startRestartable(t testing.TB, handler jsonconn.Handler) *restartable {
	t.Helper()
	if handler == nil {
		handler = echo
	}
	rs := &restartable{t: t, addr: "127.0.0.1:0", handler: handler}
	rs.start()
	t.Cleanup(rs.stop)
	return rs
}

// start serves on rs.addr, which the first start picks.
func (rs *restartable) start() {
	rs.t.Helper()
	ln, err := net.Listen("tcp", rs.addr)
	if err != nil {
		rs.t.Fatal(err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.addr = ln.Addr().String()
	rs.srv = &jsonconn.Server{Handler: rs.handler, Logger: quietLogger(new(syncBuffer))}
	srv := rs.srv
	rs.served = async(func() error { return srv.Serve(ln) })
}

// stop closes the server and every connection it serves.
func (rs *restartable) stop() {
	rs.mu.Lock()
	srv, served := rs.srv, rs.served
	rs.srv = nil
	rs.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	await(rs.t, served)
}

// newClient returns a Client of addr with fast backoff, closed when the
// test ends.
func newClient(t testing.TB, addr string) *jsonconn.Client {
	cl := &jsonconn.Client{Address: addr, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// hangCtx returns a context that only catches hangs.
func hangCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	t.Cleanup(cancel)
	return ctx
}

// TestClientSendReceive: the first call dials; until then the Client is
// idle and has made no attempt.
func TestClientSendReceive(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, nil)
	cl := newClient(t, rs.addr)
	if s := cl.Stats(); s.State != jsonconn.ClientIdle || s.DialAttempts != 0 {
		t.Fatalf("stats before any call %+v, want idle with no attempt", s)
	}
	ctx := hangCtx(t)
	for i := range 3 {
		if err := cl.SendContext(ctx, i); err != nil {
			t.Fatal(err)
		}
		var got int
		if err := cl.ReceiveContext(ctx, &got); err != nil || got != i {
			t.Fatalf("ReceiveContext = %d, %v; want %d", got, err, i)
		}
	}
	if s := cl.Stats(); s.State != jsonconn.ClientConnected || s.DialAttempts != 1 || s.Connections != 1 {
		t.Fatalf("stats %+v, want connected after one attempt", s)
	}
	// A message the Conn would refuse is refused at once.
	if err := cl.SendContext(ctx, func() {}); err == nil || errors.Is(err, jsonconn.ErrDisconnected) {
		t.Fatalf("SendContext of a func = %v, want the encoding error", err)
	}
}

// TestClientRecoversFromARestart: a restart drops the connection; the
// pending ReceiveContext reports it once, with ErrDisconnected and not
// net.ErrClosed, and the Client redials by itself.
func TestClientRecoversFromARestart(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, nil)
	cl := newClient(t, rs.addr)
	ctx := hangCtx(t)
	if err := cl.SendContext(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ReceiveContext(ctx, new(string)); err != nil {
		t.Fatal(err)
	}
	pending := async(func() error { return cl.ReceiveContext(ctx, new(string)) })
	rs.stop()
	err := await(t, pending)
	if !errors.Is(err, jsonconn.ErrDisconnected) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("the pending ReceiveContext = %v, want ErrDisconnected and not net.ErrClosed", err)
	}
	rs.start()
	for {
		err := cl.SendContext(ctx, "after")
		if err == nil {
			break
		}
		if !errors.Is(err, jsonconn.ErrDisconnected) {
			t.Fatalf("SendContext after the restart = %v", err)
		}
	}
	var got string
	if err := cl.ReceiveContext(ctx, &got); err != nil || got != "after" {
		t.Fatalf("ReceiveContext after the restart = %q, %v", got, err)
	}
	if s := cl.Stats(); s.Connections < 2 || s.PeerClosed+s.IOErrors < 1 {
		t.Fatalf("stats %+v: want a second connection and the first one's end counted", s)
	}
}

// TestClientReportsAGapOnceAfterWhatArrived: when the connection ends, the
// messages that had arrived on it come first, then one ErrDisconnected,
// then the next connection's messages.
func TestClientReportsAGapOnceAfterWhatArrived(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		n := conns.Add(1)
		var hello string
		if c.Receive(&hello) != nil {
			return
		}
		c.Send(map[string]int32{"conn": n, "seq": 1})
		c.Send(map[string]int32{"conn": n, "seq": 2})
		if n == 1 {
			return // the first connection ends after two messages
		}
		c.Receive(new(any))
	}))
	cl := newClient(t, rs.addr)
	ctx := hangCtx(t)
	if err := cl.SendContext(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	type msg struct{ Conn, Seq int32 }
	for _, want := range []msg{{1, 1}, {1, 2}} {
		var got msg
		if err := cl.ReceiveContext(ctx, &got); err != nil || got != want {
			t.Fatalf("ReceiveContext = %+v, %v; want %+v", got, err, want)
		}
	}
	if err := cl.ReceiveContext(ctx, new(msg)); !errors.Is(err, jsonconn.ErrDisconnected) {
		t.Fatalf("after the first connection's messages: %v, want ErrDisconnected", err)
	}
	if err := cl.SendContext(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	var got msg
	if err := cl.ReceiveContext(ctx, &got); err != nil || got != (msg{2, 1}) {
		t.Fatalf("ReceiveContext on the second connection = %+v, %v; want the gap reported once", got, err)
	}
}

// TestClientBacksOffAServerThatAcceptsAndCloses: against a server that
// accepts and closes at once, attempts follow the backoff, not a loop, with
// a Handshake and without.
func TestClientBacksOffAServerThatAcceptsAndCloses(t *testing.T) {
	t.Parallel()
	for _, handshake := range []bool{false, true} {
		t.Run(map[bool]string{false: "no handshake", true: "handshake"}[handshake], func(t *testing.T) {
			t.Parallel()
			rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {}))
			cl := &jsonconn.Client{Address: rs.addr, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
			t.Cleanup(func() { cl.Close() })
			if handshake {
				cl.Handshake = func(ctx context.Context, c *jsonconn.Conn) error {
					if err := c.SendContext(ctx, "hello"); err != nil {
						return err
					}
					return c.ReceiveContext(ctx, new(any))
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				cl.ReceiveContext(ctx, new(any))
			}
			// Sleeps of [0, 20 ms), [0, 40 ms), ... capped at [0, 200 ms):
			// about 20 attempts in 2 s on average, against thousands for a
			// loop. The bounds allow for a slow machine and for chance.
			s := cl.Stats()
			if s.DialAttempts < 4 || s.DialAttempts > 60 {
				t.Fatalf("%d attempts in 2 s (stats %+v): want the backoff's pace", s.DialAttempts, s)
			}
			if handshake && s.HandshakeFailures == 0 {
				t.Fatalf("stats %+v: want failed handshakes counted", s)
			}
		})
	}
}

// TestClientGivesUp: after MaxAttempts failures in a row, every call
// returns ErrGaveUp wrapping the last dial error.
func TestClientGivesUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cl := newClient(t, addr)
	cl.MaxAttempts = 3
	ctx := hangCtx(t)
	err = cl.SendContext(ctx, "x")
	if !errors.Is(err, jsonconn.ErrGaveUp) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("SendContext = %v, want ErrGaveUp wrapping the refused dial", err)
	}
	if err := cl.ReceiveContext(ctx, new(any)); !errors.Is(err, jsonconn.ErrGaveUp) {
		t.Fatalf("ReceiveContext = %v, want ErrGaveUp", err)
	}
	if s := cl.Stats(); s.State != jsonconn.ClientGaveUp || s.DialAttempts != 3 {
		t.Fatalf("stats %+v, want given up after 3 attempts", s)
	}
}

// TestClientCutSendIsDisconnectedNotPending: a SendContext cut mid-frame
// by its ctx cannot be finished on another connection: the Client drops
// the connection and says ErrDisconnected, never ErrPending.
func TestClientCutSendIsDisconnectedNotPending(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	started := make(chan net.Conn, 1)
	go func() { // reads one byte of the frame, then nothing
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Read(make([]byte, 1))
		started <- c
	}()
	cl := newClient(t, ln.Addr().String())
	// A frame larger than every buffer between the two ends: its write
	// blocks after part of it left, whatever the kernel's sizes.
	cl.Dialer = &jsonconn.Dialer{Config: &jsonconn.Config{MaxFrameSize: 64 << 20}}
	big := strings.Repeat("x", 16<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := async(func() error { return cl.SendContext(ctx, big) })
	select {
	case c := <-started:
		t.Cleanup(func() { c.Close() })
	case <-time.After(hangTimeout):
		t.Fatal("the frame never started")
	}
	cancel()
	err = await(t, sent)
	if !errors.Is(err, jsonconn.ErrDisconnected) || errors.Is(err, jsonconn.ErrPending) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("SendContext = %v, want ErrDisconnected, not ErrPending or net.ErrClosed", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("SendContext = %v, want it to match the ctx's error too", err)
	}
}

// TestClientHandshakeAndHeartbeat: Handshake runs on the connection before
// any call uses it; the heartbeat's pings are sent after silence, and the
// peer's answers reach ReceiveContext.
func TestClientHandshakeAndHeartbeat(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		var hello string
		if err := c.Receive(&hello); err != nil || hello != "hello" {
			c.Send("no hello first")
			return
		}
		echo.ServeConn(ctx, c)
	}))
	cl := newClient(t, rs.addr)
	cl.Handshake = func(ctx context.Context, c *jsonconn.Conn) error { return c.SendContext(ctx, "hello") }
	cl.HeartbeatInterval = 50 * time.Millisecond
	cl.Heartbeat = func(ctx context.Context, c *jsonconn.Conn) error { return c.SendContext(ctx, "ping") }
	ctx := hangCtx(t)
	if err := cl.SendContext(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	// The echo of the first call (which the server answers only after the
	// handshake's hello) and the heartbeat's answer, in either order: a
	// slow machine may ping before it sends.
	got := map[string]bool{}
	for range 2 {
		var m string
		if err := cl.ReceiveContext(ctx, &m); err != nil {
			t.Fatal(err)
		}
		got[m] = true
	}
	if !got["first"] || !got["ping"] {
		t.Fatalf("received %v, want the echo of the first call and the heartbeat's answer", got)
	}
	if s := cl.Stats(); s.HeartbeatTimeouts != 0 || s.Connections != 1 {
		t.Fatalf("stats %+v: an answered heartbeat must keep the connection", s)
	}
}

// TestClientHeartbeatFindsASilentPeer: a peer that stops answering is found
// within HeartbeatInterval + HeartbeatTimeout, counted, and redialed; the
// calls see ErrDisconnected, never net.ErrClosed, though the Client closed
// that connection itself.
func TestClientHeartbeatFindsASilentPeer(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		if conns.Add(1) == 1 {
			<-ctx.Done() // silent: reads and answers nothing
			return
		}
		echo.ServeConn(ctx, c)
	}))
	cl := newClient(t, rs.addr)
	cl.HeartbeatInterval, cl.HeartbeatTimeout = 100*time.Millisecond, 100*time.Millisecond
	ctx := hangCtx(t)
	start := time.Now()
	err := cl.ReceiveContext(ctx, new(any))
	if !errors.Is(err, jsonconn.ErrDisconnected) || errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReceiveContext on a silent peer = %v, want ErrDisconnected and not net.ErrClosed", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("the silent peer was cut after %v, before HeartbeatInterval + HeartbeatTimeout", d)
	}
	if s := cl.Stats(); s.HeartbeatTimeouts != 1 {
		t.Fatalf("stats %+v, want one heartbeat timeout", s)
	}
	if err := cl.SendContext(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ReceiveContext(ctx, new(string)); err != nil {
		t.Fatalf("ReceiveContext on the new connection: %v", err)
	}
}

// TestClientSlowReceiverIsNoSilentPeer: an application that stops reading
// while the peer keeps talking is not taken for a dead peer: the bytes wait
// in the kernel.
func TestClientSlowReceiverIsNoSilentPeer(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for i := 0; ; i++ {
			if c.Send(map[string]any{"seq": i, "pad": strings.Repeat("p", 1000)}) != nil {
				return
			}
		}
	}))
	cl := newClient(t, rs.addr)
	cl.HeartbeatInterval, cl.HeartbeatTimeout = 50*time.Millisecond, 50*time.Millisecond
	ctx := hangCtx(t)
	type msg struct{ Seq int }
	var m msg
	if err := cl.ReceiveContext(ctx, &m); err != nil || m.Seq != 0 {
		t.Fatalf("ReceiveContext = %+v, %v", m, err)
	}
	time.Sleep(500 * time.Millisecond) // five times Interval + Timeout, reading nothing
	for want := 1; want < 100; want++ {
		if err := cl.ReceiveContext(ctx, &m); err != nil || m.Seq != want {
			t.Fatalf("ReceiveContext after the pause = %+v, %v; want seq %d on the same connection", m, err, want)
		}
	}
	if s := cl.Stats(); s.HeartbeatTimeouts != 0 || s.Connections != 1 {
		t.Fatalf("stats %+v: a slow reader was taken for a silent peer", s)
	}
}

// clientGoroutines returns the stacks of the goroutines running the
// Client's code.
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var gs []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "jsonconn.(*Client).run(") {
			gs = append(gs, g)
		}
	}
	return gs
}

// TestClientCloseReturnsAtOnce: Close returns promptly during a backoff
// sleep, a dial that never completes and a Handshake that never ends, with
// calls blocked in SendContext and ReceiveContext, which return net.ErrClosed;
// and no goroutine of the Client remains.
func TestClientCloseReturnsAtOnce(t *testing.T) {
	// Not parallel: it counts the Client's goroutines in the process.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := dead.Addr().String()
	dead.Close()
	live := startRestartable(t, nil)
	tests := []struct {
		name  string
		setup func(cl *jsonconn.Client)
		state jsonconn.ClientState
	}{
		{"backoff", func(cl *jsonconn.Client) {
			cl.Address, cl.MinBackoff, cl.MaxBackoff = refused, time.Hour, time.Hour
		}, jsonconn.ClientBackoff},
		{"dial", func(cl *jsonconn.Client) {
			cl.Address = live.addr
			cl.Dialer = &jsonconn.Dialer{NetDialer: &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
				<-ctx.Done() // a dial that never completes
				return ctx.Err()
			}}}
		}, jsonconn.ClientDialing},
		{"handshake", func(cl *jsonconn.Client) {
			cl.Address = live.addr
			cl.Handshake = func(ctx context.Context, c *jsonconn.Conn) error {
				<-ctx.Done()
				return ctx.Err()
			}
			cl.HandshakeTimeout = time.Hour
		}, jsonconn.ClientHandshaking},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := &jsonconn.Client{}
			tt.setup(cl)
			ctx := hangCtx(t)
			sent := async(func() error { return cl.SendContext(ctx, "x") })
			received := async(func() error { return cl.ReceiveContext(ctx, new(any)) })
			waitUntil(t, "the Client is "+tt.state.String(), func() bool { return cl.Stats().State == tt.state })
			closed := async(cl.Close)
			if err := await(t, closed); err != nil {
				t.Fatalf("Close = %v", err)
			}
			for name, ch := range map[string]<-chan error{"SendContext": sent, "ReceiveContext": received} {
				if err := await(t, ch); !errors.Is(err, net.ErrClosed) || errors.Is(err, jsonconn.ErrDisconnected) {
					t.Errorf("%s after Close = %v, want net.ErrClosed", name, err)
				}
			}
			if gs := clientGoroutines(); len(gs) != 0 {
				t.Errorf("%d of the Client's goroutines remain after Close:\n%s", len(gs), strings.Join(gs, "\n\n"))
			}
			if err := cl.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close = %v, want net.ErrClosed", err)
			}
			if s := cl.Stats(); s.State != jsonconn.ClientClosed {
				t.Errorf("state after Close: %v", s.State)
			}
		})
	}
}

// TestClientUserTimeout: UserTimeout sets TCP_USER_TIMEOUT on Linux, after
// any Control function the NetDialer already had.
func TestClientUserTimeout(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, nil)
	var controlled atomic.Bool
	cl := newClient(t, rs.addr)
	cl.UserTimeout = 5 * time.Second
	cl.Dialer = &jsonconn.Dialer{NetDialer: &net.Dialer{Control: func(string, string, syscall.RawConn) error {
		controlled.Store(true)
		return nil
	}}}
	var got int
	cl.Handshake = func(ctx context.Context, c *jsonconn.Conn) error {
		got = userTimeoutOf(t, c.NetConn())
		return nil
	}
	ctx := hangCtx(t)
	if err := cl.SendContext(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if !controlled.Load() {
		t.Error("the NetDialer's own Control was not called")
	}
	if want := wantUserTimeout(5 * time.Second); got != want {
		t.Errorf("TCP_USER_TIMEOUT = %d, want %d", got, want)
	}
}

// TestClientStatesAndLog: each state change reaches OnStateChange, in
// order, and the Logger.
func TestClientStatesAndLog(t *testing.T) {
	t.Parallel()
	rs := startRestartable(t, nil)
	var mu sync.Mutex
	var states []jsonconn.ClientState
	var log syncBuffer
	cl := newClient(t, rs.addr)
	cl.Logger = quietLogger(&log)
	cl.OnStateChange = func(s jsonconn.ClientState, err error) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
		_ = cl.Stats() // allowed
	}
	cl.Handshake = func(ctx context.Context, c *jsonconn.Conn) error { return nil }
	if err := cl.SendContext(hangCtx(t), "x"); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	mu.Lock()
	defer mu.Unlock()
	want := []jsonconn.ClientState{jsonconn.ClientDialing, jsonconn.ClientHandshaking, jsonconn.ClientConnected, jsonconn.ClientClosed}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
	if !strings.Contains(log.String(), "state=connected") {
		t.Errorf("the log does not show the connection:\n%s", log.String())
	}
}

// tcpProxy forwards each connection it accepts to the next of backends, in
// turn, and keeps the client's side open as long as the backend's is, as a
// TCP balancer does. It returns its address.
func tcpProxy(t *testing.T, backends ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	track := func(cs ...net.Conn) {
		mu.Lock()
		open = append(open, cs...)
		mu.Unlock()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			backend, err := net.Dial("tcp", backends[min(i, len(backends)-1)])
			if err != nil {
				client.Close()
				continue
			}
			track(client, backend)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(backend, client) }()
			go func() { defer wg.Done(); io.Copy(client, backend) }()
		}
	}()
	return ln.Addr().String()
}

// TestClientHeartbeatThroughAProxyToAFrozenBackend: a backend that froze
// (its kernel still accepts, nothing answers) behind a TCP proxy that keeps
// the client's side open is found by the heartbeat within HeartbeatInterval
// + HeartbeatTimeout and some slack, and the Client redials through the
// proxy to a live backend.
func TestClientHeartbeatThroughAProxyToAFrozenBackend(t *testing.T) {
	t.Parallel()
	frozen, err := net.Listen("tcp", "127.0.0.1:0") // accepts in the kernel; never read
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.Close() })
	live := startRestartable(t, nil)
	cl := newClient(t, tcpProxy(t, frozen.Addr().String(), live.addr))
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	cl.HeartbeatInterval, cl.HeartbeatTimeout = interval, timeout
	cl.Heartbeat = func(ctx context.Context, c *jsonconn.Conn) error { return c.SendContext(ctx, "ping") }
	ctx := hangCtx(t)
	if err := cl.SendContext(ctx, "hello"); err != nil { // goes to the frozen backend's kernel
		t.Fatal(err)
	}
	start := time.Now()
	if err := cl.ReceiveContext(ctx, new(any)); !errors.Is(err, jsonconn.ErrDisconnected) {
		t.Fatalf("ReceiveContext = %v, want ErrDisconnected once the heartbeat finds the backend dead", err)
	}
	if d := time.Since(start); d > interval+timeout+2*time.Second {
		t.Fatalf("the frozen backend was found after %v, want about HeartbeatInterval + HeartbeatTimeout (%v)", d, interval+timeout)
	}
	if err := cl.SendContext(ctx, "hello again"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := cl.ReceiveContext(ctx, &got); err != nil || got != "hello again" {
		t.Fatalf("through the proxy to the live backend: %q, %v", got, err)
	}
	if s := cl.Stats(); s.HeartbeatTimeouts != 1 {
		t.Fatalf("stats %+v, want one heartbeat timeout", s)
	}
}

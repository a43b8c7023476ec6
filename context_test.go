package jsonconn_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// TestContextBackgroundAllocatesNothingMore: with a ctx that cannot end,
// the context calls are the plain calls, allocations included.
func TestContextBackgroundAllocatesNothingMore(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src := &loopReader{data: frames(`{"id":1,"name":"small message"}`)}
	c := jsonconn.New(loopConn{Conn: a, src: src}, nil)
	ctx := context.Background()
	buf := make([]byte, 0, 1<<10)
	if allocs := testing.AllocsPerRun(1000, func() {
		var err error
		if buf, err = c.AppendMessageContext(ctx, buf[:0]); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("AppendMessageContext(Background) allocated %.1f times per message, want 0", allocs)
	}
	var v struct {
		ID   int
		Name string
	}
	plain := testing.AllocsPerRun(1000, func() { c.Receive(&v) })
	withCtx := testing.AllocsPerRun(1000, func() { c.ReceiveContext(ctx, &v) })
	if withCtx != plain {
		t.Errorf("ReceiveContext(Background) allocated %.1f times per message, Receive %.1f", withCtx, plain)
	}

	w, r := tcpPair(t)
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(drained) }()
	wc := jsonconn.New(w, nil)
	defer func() { wc.Close(); <-drained }()
	msg := map[string]int{"id": 1}
	plain = testing.AllocsPerRun(1000, func() { wc.Send(msg) })
	withCtx = testing.AllocsPerRun(1000, func() { wc.SendContext(ctx, msg) })
	if withCtx != plain {
		t.Errorf("SendContext(Background) allocated %.1f times per message, Send %.1f", withCtx, plain)
	}
}

// checkCtxErr fails the test unless err matches want (context.Canceled or
// context.DeadlineExceeded).
func checkCtxErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want an error matching %v", err, want)
	}
}

// TestContextDoneBeforeTheCall: a ctx that is already done returns at once;
// nothing is sent and nothing is consumed.
func TestContextDoneBeforeTheCall(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		raw, c := rawPair(t, tr, nil)
		raw.SetDeadline(time.Now().Add(hangTimeout))
		c.SetDeadline(time.Now().Add(hangTimeout))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()

		checkCtxErr(t, c.SendContext(ctx, "not sent"), context.Canceled)
		_, err := c.WriteBatchContext(ctx, [][]byte{[]byte(`"not sent either"`)})
		checkCtxErr(t, err, context.Canceled)
		go c.Send("sent")
		if m, err := jsonconn.NewReader(raw, nil).ReadMessage(); err != nil || string(m) != `"sent"` {
			t.Fatalf("the peer got %q, %v; want only the message sent after", m, err)
		}

		go raw.Write(frame(`"kept"`))
		checkCtxErr(t, c.ReceiveContext(ctx, new(string)), context.Canceled)
		_, err = c.ReadMessageContext(ctx)
		checkCtxErr(t, err, context.Canceled)
		dst, err := c.AppendMessageContext(ctx, []byte("x"))
		checkCtxErr(t, err, context.Canceled)
		if string(dst) != "x" {
			t.Fatalf("AppendMessageContext changed dst to %q", dst)
		}
		var got string
		if err := c.Receive(&got); err != nil || got != "kept" {
			t.Fatalf("Receive after = %q, %v; want the message the context calls left", got, err)
		}
	})
}

// TestContextInterruptsARead: a ctx that ends while a read waits for the
// rest of a frame interrupts it; the Conn stays open, the next read
// continues the frame, and the read deadline set through the Conn is back.
func TestContextInterruptsARead(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		raw, c := rawPair(t, tr, nil)
		raw.SetDeadline(time.Now().Add(hangTimeout))
		wire := frame(`{"split":"` + strings.Repeat("s", 3000) + `"}`)
		go raw.Write(wire[:100])
		// The ctx ends with the read waiting for the rest of the frame, or,
		// on a machine slow enough, before it began: either way the frame
		// must come out whole next.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		checkCtxErr(t, c.ReceiveContext(ctx, new(any)), context.DeadlineExceeded)

		go raw.Write(wire[100:])
		m, err := c.ReadMessage()
		if err != nil || !bytes.Equal(m, wire[4:]) {
			t.Fatalf("ReadMessage after = %d bytes, %v; want the whole frame", len(m), err)
		}

		// The deadline set through the Conn is in force again, not the
		// past one that interrupted the read.
		deadline := time.Now().Add(time.Second)
		c.SetReadDeadline(deadline)
		ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel2()
		checkCtxErr(t, c.ReceiveContext(ctx2, new(any)), context.DeadlineExceeded)
		_, err = c.ReadMessage()
		checkTimeout(t, err)
		if time.Now().Before(deadline) {
			t.Fatal("the read after an interrupted one timed out before the Conn's deadline: the past deadline stayed")
		}
	})
}

// TestContextDeadlineAgainstTheConns: the earlier of a ctx deadline and the
// Conn's deadline ends a call, and the error says which.
func TestContextDeadlineAgainstTheConns(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		_, c := rawPair(t, tr, nil)

		c.SetReadDeadline(time.Now().Add(hangTimeout))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.ReceiveContext(ctx, new(any))
		checkCtxErr(t, err, context.DeadlineExceeded)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the ctx's deadline ended the read, but the error %v matches os.ErrDeadlineExceeded", err)
		}

		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		ctx, cancel = context.WithTimeout(context.Background(), hangTimeout)
		defer cancel()
		err = c.ReceiveContext(ctx, new(any))
		checkTimeout(t, err)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the Conn's deadline ended the read, but the error %v matches context.DeadlineExceeded", err)
		}
	})
}

// TestContextInterruptsAWrite: a ctx that ends while a write waits for a
// peer that does not read interrupts it. Before any byte of the frame left,
// the message was not sent; after, it is committed (ErrPending and the ctx's
// error), and its rest goes out ahead of the next message.
func TestContextInterruptsAWrite(t *testing.T) {
	t.Parallel()
	for _, sent := range []int{0, 3} {
		t.Run(map[int]string{0: "before the first byte", 3: "mid-frame"}[sent], func(t *testing.T) {
			t.Parallel()
			raw, c := rawPair(t, transport{"pipe", pipePair}, nil)
			raw.SetDeadline(time.Now().Add(hangTimeout))
			ctx, cancel := context.WithCancel(context.Background())
			done := async(func() error { return c.SendContext(ctx, "cut") })
			first := make([]byte, sent)
			if _, err := io.ReadFull(raw, first); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
			cancel()
			err := await(t, done)
			checkCtxErr(t, err, context.Canceled)
			if committed := errors.Is(err, jsonconn.ErrPending); committed != (sent > 0) {
				t.Fatalf("SendContext = %v: committed %t, want %t", err, committed, sent > 0)
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("SendContext = %v: Timeout() reports true for a cancellation", err)
			}
			go c.Send("next")
			r := jsonconn.NewReader(io.MultiReader(bytes.NewReader(first), raw), nil)
			want := []string{`"next"`}
			if sent > 0 {
				want = []string{`"cut"`, `"next"`}
			}
			for _, w := range want {
				if m, err := r.ReadMessage(); err != nil || string(m) != w {
					t.Fatalf("the peer got %q, %v; want %q", m, err, w)
				}
			}
		})
	}
}

// TestContextWriterLeavesTheQueue: a context call waiting in the writers'
// queue behind a blocked sender leaves it unsent when its ctx ends, and the
// other writers' messages all arrive, once each; one that stays goes out
// alone, never in another goroutine's batch.
func TestContextWriterLeavesTheQueue(t *testing.T) {
	t.Parallel()
	c, rawPeer, batches := batchedPipe(t)

	first, results := queueWriters(t, c, rawPeer, `"lead"`, []string{`1`})
	leaving, cancel := context.WithCancel(context.Background())
	left := async(func() error { return c.SendContext(leaving, "withdrawn") })
	waitUntil(t, "the context call queues", func() bool { return c.Queued() == 2 })
	stays, stop := context.WithCancel(context.Background())
	defer stop()
	staying := async(func() error { return c.SendContext(stays, "alone") })
	waitUntil(t, "a second context call queues", func() bool { return c.Queued() == 3 })
	results = append(results, goWrite(c, `2`), goWrite(c, `3`))
	waitUntil(t, "two more writers queue", func() bool { return c.Queued() == 5 })
	cancel()
	checkCtxErr(t, await(t, left), context.Canceled)
	if c.Queued() != 4 {
		t.Fatalf("%d writers queued after the context call left; want 4", c.Queued())
	}

	r := jsonconn.NewReader(io.MultiReader(bytes.NewReader(first), rawPeer), nil)
	var got []string
	for range 5 {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m))
	}
	if err := await(t, staying); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		if res := awaitWrite(t, ch); res.err != nil {
			t.Errorf("writer %d: %v", i, res.err)
		}
	}
	slices.Sort(got)
	if want := []string{`"alone"`, `"lead"`, `1`, `2`, `3`}; !slices.Equal(got, want) {
		t.Fatalf("the peer got %q, want %q: each once, the withdrawn one never", got, want)
	}
	// The lead alone, then 1 (queued before the context calls), then the
	// context call alone, then 2 and 3 together.
	if got, want := batches(), []int{1, 1, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("batches %v, want %v: a context call is never in a batch", got, want)
	}
}

// TestContextEndJustAfterTheCall: a ctx that ends just as its call returns
// (the peer's reply arrives and the ctx is cancelled at once, racing) must
// leave no past deadline behind for later calls. Run with the race
// detector.
func TestContextEndJustAfterTheCall(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := tr.pair(t)
		c, peer := jsonconn.New(a, nil), jsonconn.New(b, nil)
		t.Cleanup(func() { c.Close(); peer.Close() })
		c.SetDeadline(time.Now().Add(hangTimeout))
		peer.SetDeadline(time.Now().Add(hangTimeout))
		cancels := make(chan context.CancelFunc, 1)
		go func() { // echoes each message, and cancels the ctx of its reply's read at once
			for {
				m, err := peer.ReadMessage()
				if err != nil {
					return
				}
				cancel := <-cancels
				if _, err := peer.Write(m); err != nil {
					return
				}
				cancel()
			}
		}()
		for i := range 200 {
			sendCtx, cancelSend := context.WithCancel(context.Background())
			readCtx, cancelRead := context.WithCancel(context.Background())
			cancels <- cancelRead
			err := c.SendContext(sendCtx, i)
			cancelSend()
			if err != nil {
				t.Fatalf("round %d: SendContext: %v", i, err)
			}
			var got int
			if err := c.ReceiveContext(readCtx, &got); err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: ReceiveContext = %v", i, err)
			} else if err != nil { // cancelled before the reply was read: read it now
				if err := c.Receive(&got); err != nil {
					t.Fatalf("round %d: Receive of the reply = %v", i, err)
				}
			}
			if got != i {
				t.Fatalf("round %d: the reply is %d", i, got)
			}
			// The plain calls right after must find no deadline held.
			cancels <- func() {}
			if err := c.Send(-i); err != nil {
				t.Fatalf("round %d: Send after: %v", i, err)
			}
			if err := c.Receive(&got); err != nil || got != -i {
				t.Fatalf("round %d: Receive after = %d, %v", i, got, err)
			}
		}
	})
}

// smallBufferTLSPair is tlsPair over TCP sockets with 4 KiB buffers, so
// that a frame of some hundred KiB cannot leave in one go.
func smallBufferTLSPair(t *testing.T) (client, server *tls.Conn) {
	t.Helper()
	a, b := tcpPair(t)
	for _, c := range []net.Conn{a, b} {
		c.(*net.TCPConn).SetWriteBuffer(4 << 10)
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
	}
	// Closing the sockets first spares each TLS conn's Close the 5 s it
	// would try to write close_notify into full buffers.
	t.Cleanup(func() { a.Close(); b.Close() })
	cert := testCert(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	client = tls.Client(a, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	server = tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}})
	done := async(server.Handshake)
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := await(t, done); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// TestContextInterruptedTLSWriteBreaksTheWriteSide shows the limit that
// crypto/tls sets: once a write is cut, every later write on that TLS conn
// fails, while reads go on.
func TestContextInterruptedTLSWriteBreaksTheWriteSide(t *testing.T) {
	t.Parallel()
	a, b := smallBufferTLSPair(t)
	c, peer := jsonconn.New(a, nil), jsonconn.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	sent := async(func() error { return c.SendContext(ctx, strings.Repeat("x", 200<<10)) })
	first := make([]byte, 1)
	if _, err := io.ReadFull(b, first); err != nil { // the frame is under way
		t.Fatal(err)
	}
	cancel()
	checkCtxErr(t, await(t, sent), context.Canceled)
	if err := c.Send("after"); err == nil {
		t.Fatal("a write after an interrupted TLS write succeeded")
	}
	go peer.Send("to the reader")
	c.SetReadDeadline(time.Now().Add(hangTimeout))
	var got string
	if err := c.Receive(&got); err != nil || got != "to the reader" {
		t.Fatalf("Receive after = %q, %v; want reads to go on", got, err)
	}
}

// TestContextRunsTheTLSHandshakeUnderItsCtx: a tls.Conn runs its handshake
// in its first read or write, reading and writing whichever side the call
// is on. A context call runs it under its ctx first, so that ctx's end
// interrupts it, for a write too, which holding the write deadline alone
// would not. crypto/tls cannot resume an interrupted handshake: the Conn is
// closed, and says so.
func TestContextRunsTheTLSHandshakeUnderItsCtx(t *testing.T) {
	t.Parallel()
	cert := testCert(t)
	for _, op := range []string{"SendContext", "ReceiveContext"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			a, b := tcpPair(t) // a: a client that never says hello
			t.Cleanup(func() { a.Close() })
			c := jsonconn.New(tls.Server(b, &tls.Config{Certificates: []tls.Certificate{cert}}), nil)
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			done := async(func() error {
				if op == "SendContext" {
					return c.SendContext(ctx, "hello")
				}
				return c.ReceiveContext(ctx, new(any))
			})
			checkCtxErr(t, await(t, done), context.DeadlineExceeded)
			if err := c.Send("after"); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Send after the interrupted handshake = %v, want net.ErrClosed", err)
			}
		})
	}

	t.Run("served", func(t *testing.T) {
		// A handler that speaks first on a TLS conn whose client is
		// silent: Shutdown cancels its ctx, and its SendContext returns.
		t.Parallel()
		got := make(chan error, 1)
		started := make(chan struct{})
		srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			close(started)
			got <- c.SendContext(ctx, "hello")
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		serveListener(t, srv, jsonconn.NewListener(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}), nil))
		rawDial(t, ln.Addr().String()) // connects; never sends a ClientHello
		<-started
		if err := srv.Shutdown(hangCtx(t)); err != nil {
			t.Fatalf("Shutdown = %v: the handler's SendContext did not return once its ctx was cancelled", err)
		}
		checkCtxErr(t, await(t, got), context.Canceled)
	})
}

// TestContextLaterCtxNeverReplacesTheConnsDeadline: the Conn's read deadline
// ends a read, and the ctx, later, ends while the wrapped conn's Read is
// returning that timeout: the error is the Conn's own timeout, not the
// ctx's.
func TestContextLaterCtxNeverReplacesTheConnsDeadline(t *testing.T) {
	t.Parallel()
	a, raw := pipePair(t)
	g := &gatedReads{Conn: a, timedOut: make(chan struct{}), gate: make(chan struct{}), changed: make(chan struct{})}
	c := jsonconn.New(g, nil)
	t.Cleanup(func() { c.Close(); raw.Close() })
	go raw.Write(frame(`"half"`)[:5]) // the first Read gets part of a frame
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	got := async(func() error { return c.ReceiveContext(ctx, new(any)) })
	select {
	case <-g.timedOut: // the Conn's deadline struck
	case <-time.After(hangTimeout):
		t.Fatal("the Conn's deadline did not strike")
	}
	<-ctx.Done()
	// The ctx's end runs in a goroutine of its own, which would hold the
	// read deadline in the past; let it run before the Read returns.
	time.Sleep(100 * time.Millisecond)
	g.gate <- struct{}{}
	err := await(t, got)
	if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReceiveContext = %v; want the Conn's own timeout, not the later ctx's", err)
	}
}

// TestContextWriteBatchWaitingForTheLock: a WriteBatchContext whose ctx
// ends while it waits for the write lock, held by a plain WriteBatch, sends
// nothing once it gets the lock, as the other context calls.
func TestContextWriteBatchWaitingForTheLock(t *testing.T) {
	t.Parallel()
	raw, c := rawPair(t, transport{"pipe", pipePair}, nil)
	raw.SetDeadline(time.Now().Add(hangTimeout))
	holder := async(func() error { _, err := c.WriteBatch([][]byte{[]byte(`"holder"`)}); return err })
	first := make([]byte, 1)
	if _, err := io.ReadFull(raw, first); err != nil { // the holder writes, under the lock
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	late := async(func() error { _, err := c.WriteBatchContext(ctx, [][]byte{[]byte(`"late"`)}); return err })
	time.Sleep(20 * time.Millisecond) // it waits for the lock, or has not begun: the same either way
	cancel()
	go c.Send("next")
	r := jsonconn.NewReader(io.MultiReader(bytes.NewReader(first), raw), nil)
	for _, want := range []string{`"holder"`, `"next"`} {
		if m, err := r.ReadMessage(); err != nil || string(m) != want {
			t.Fatalf("the peer got %q, %v; want %q, and never the late batch", m, err, want)
		}
	}
	if err := await(t, holder); err != nil {
		t.Fatal(err)
	}
	checkCtxErr(t, await(t, late), context.Canceled)
}

// TestServerContextCallsKeepTheClocks: on a served Conn, a handler that
// polls with short context calls on a silent peer is still cut off at
// IdleTimeout: an interrupted read, like one a deadline ended, leaves the
// clock running.
func TestServerContextCallsKeepTheClocks(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	srv := &jsonconn.Server{IdleTimeout: 300 * time.Millisecond, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for {
			poll, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			err := c.ReceiveContext(poll, new(any))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				got <- err
				return
			}
		}
	})}
	addr, _ := startServer(t, srv, "tcp")
	rawDial(t, addr) // and then silent
	if err := await(t, got); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the polling handler's read ended with %v, want net.ErrClosed from IdleTimeout", err)
	}
	if s := oneEnded(t, srv); s.IdleTimeouts != 1 {
		t.Fatalf("stats %+v: want one idle timeout", s)
	}
}

// TestServerShutdownDuringAContextCall: Shutdown's drain reaches a handler
// blocked in a context call between frames, which returns ErrServerClosed.
func TestServerShutdownDuringAContextCall(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	reading := make(chan struct{})
	call, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		close(reading)
		got <- c.ReceiveContext(call, new(any))
	})}
	addr, _ := startServer(t, srv, "tcp")
	rawDial(t, addr)
	<-reading
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := await(t, got); !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Fatalf("the context call ended with %v, want ErrServerClosed", err)
	}
}

// gatedReads is a wrapped conn whose first Read reads the conn, and whose
// later Reads wait for their read deadline by themselves: once it passes,
// they report it on timedOut and return the timeout only when gate lets
// them. So a test can act between a read's timeout and its return.
type gatedReads struct {
	net.Conn
	waiting   chan struct{} // if not nil, gets a value when a gated Read begins
	timedOut  chan struct{}
	gate      chan struct{}
	mu        sync.Mutex
	reads     int
	deadline  time.Time
	deadlines int           // SetReadDeadline calls
	changed   chan struct{} // closed when the deadline changes or the conn closes
	closed    bool
}

func (g *gatedReads) Read(p []byte) (int, error) {
	g.mu.Lock()
	g.reads++
	first := g.reads == 1
	g.mu.Unlock()
	if first {
		return g.Conn.Read(p)
	}
	if g.waiting != nil {
		select {
		case g.waiting <- struct{}{}:
		default:
		}
	}
	for {
		g.mu.Lock()
		d, changed, closed := g.deadline, g.changed, g.closed
		g.mu.Unlock()
		if closed {
			return 0, net.ErrClosed
		}
		var expired <-chan time.Time
		if !d.IsZero() {
			timer := time.NewTimer(time.Until(d))
			expired = timer.C
			defer timer.Stop()
		}
		select {
		case <-changed:
		case <-expired:
			g.timedOut <- struct{}{}
			<-g.gate
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (g *gatedReads) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadline = t
	g.deadlines++
	close(g.changed)
	g.changed = make(chan struct{})
	return nil
}

func (g *gatedReads) SetDeadline(t time.Time) error { return g.SetReadDeadline(t) }

func (g *gatedReads) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.changed)
	}
	g.mu.Unlock()
	return g.Conn.Close()
}

// TestServerDrainKeepsAContextCallsInterrupt: a context call whose ctx
// ended while it waited for the rest of a frame returns the ctx's error,
// even when Shutdown's drain wakes the same read before it returns. The
// drain's wake-up must not put the handler's deadline back and read on:
// the read would then wait for the rest of the frame past its ctx.
func TestServerDrainKeepsAContextCallsInterrupt(t *testing.T) {
	t.Parallel()
	conns := make(chan *gatedReads, 1)
	got := make(chan error, 1)
	call, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		got <- c.ReceiveContext(call, new(any))
	})}
	addr := startServerWrapped(t, srv, func(c net.Conn) net.Conn {
		g := &gatedReads{Conn: c, waiting: make(chan struct{}, 1), timedOut: make(chan struct{}), gate: make(chan struct{}), changed: make(chan struct{})}
		conns <- g
		return g
	})
	raw := rawDial(t, addr)
	if _, err := raw.Write(frame(`"half"`)[:5]); err != nil {
		t.Fatal(err)
	}
	g := <-conns
	<-g.waiting // the read waits for the rest of the frame
	cancel()    // and times out...
	select {
	case <-g.timedOut:
	case <-time.After(hangTimeout):
		t.Fatal("the ctx did not interrupt the read")
	}
	g.mu.Lock()
	before := g.deadlines
	g.mu.Unlock()
	shut := async(func() error { return srv.Shutdown(context.Background()) })
	waitUntil(t, "the drain wakes the read", func() bool { // ...and the drain wakes it too
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.deadlines > before
	})
	g.gate <- struct{}{} // now the read returns
	if err := await(t, got); !errors.Is(err, context.Canceled) {
		t.Fatalf("the context call ended with %v, want context.Canceled", err)
	}
	if err := await(t, shut); err != nil {
		t.Fatal(err)
	}
}

// TestServerWriteTimeoutAndContext: on a Conn served with a WriteTimeout,
// the earlier of the ctx's end and the message's WriteTimeout ends a
// SendContext to a peer that does not read, and the error says which.
func TestServerWriteTimeoutAndContext(t *testing.T) {
	t.Parallel()
	for _, ctxFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "WriteTimeout first", true: "ctx first"}[ctxFirst], func(t *testing.T) {
			t.Parallel()
			writeTimeout, ctxTimeout := 200*time.Millisecond, hangTimeout
			if ctxFirst {
				writeTimeout, ctxTimeout = hangTimeout, 200*time.Millisecond
			}
			got := make(chan error, 1)
			srv := &jsonconn.Server{WriteTimeout: writeTimeout, Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
				call, cancel := context.WithTimeout(context.Background(), ctxTimeout)
				defer cancel()
				big := strings.Repeat("x", 200<<10)
				for {
					if err := c.SendContext(call, big); err != nil {
						got <- err
						return
					}
				}
			})}
			addr, _ := startServer(t, srv, "tcp")
			rawDial(t, addr) // reads nothing
			err := await(t, got)
			if ctxFirst {
				checkCtxErr(t, err, context.DeadlineExceeded)
				return
			}
			checkTimeout(t, err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WriteTimeout ended the write, but %v matches context.DeadlineExceeded", err)
			}
			awaitStats(t, srv, "the write timeout counted", func(s jsonconn.ServerStats) bool { return s.WriteTimeouts >= 1 })
		})
	}
}

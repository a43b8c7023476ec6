package jsonrpc_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/handler"
	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonrpc"
	"github.com/sourcegraph/jsonrpc2"
)

// hangTimeout only catches hangs.
const hangTimeout = 20 * time.Second

// TestMain fails the run if a goroutine of the adapters, the libraries or
// jsonconn outlives the tests: a cancelled call, a dead server and a closed
// client must leave none.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := leakedGoroutines(10 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests:\n\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to wait for the goroutines running code of
// jsonconn, jrpc2 or jsonrpc2 to end, and returns the stacks of those left.
func leakedGoroutines(wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaks []string
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i > 0 && (strings.Contains(g, "jsonconn/jsonconn") || strings.Contains(g, "creachadair/jrpc2") || strings.Contains(g, "sourcegraph/jsonrpc2")) {
				leaks = append(leaks, g)
			}
		}
		if len(leaks) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaks, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pair returns both ends of a TCP loopback connection as Conns, the
// server's with cfg, closed when the test ends.
func pair(t *testing.T, cfg *jsonconn.Config) (client, server *jsonconn.Conn) {
	t.Helper()
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *jsonconn.Conn, 1)
	go func() {
		c, err := ln.AcceptConn()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// hangCtx returns a context that only catches hangs.
func hangCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	t.Cleanup(cancel)
	return ctx
}

// jrpc2Pair starts a jrpc2 server with the methods over one end of a TCP
// connection, whose Conn has cfg, and returns a client over the other.
func jrpc2Pair(t *testing.T, cfg *jsonconn.Config, methods handler.Map) *jrpc2.Client {
	t.Helper()
	cc, sc := pair(t, cfg)
	srv := jrpc2.NewServer(methods, nil).Start(jsonrpc.NewChannel(sc))
	cli := jrpc2.NewClient(jsonrpc.NewChannel(cc), nil)
	t.Cleanup(func() {
		cli.Close()
		srv.Stop()
		srv.Wait()
	})
	return cli
}

// methods are the jrpc2 server's methods in these tests.
func methods(notes chan<- string, release <-chan struct{}) handler.Map {
	return handler.Map{
		"Add": handler.New(func(ctx context.Context, xs []int) int {
			sum := 0
			for _, x := range xs {
				sum += x
			}
			return sum
		}),
		"Fail": handler.New(func(ctx context.Context) error {
			return jrpc2.Errorf(42, "it failed, as asked")
		}),
		"Note": handler.New(func(ctx context.Context, s []string) error {
			notes <- s[0]
			return nil
		}),
		"Big": handler.New(func(ctx context.Context, n []int) string {
			return strings.Repeat("x", n[0])
		}),
		"Wait": handler.New(func(ctx context.Context) string {
			select {
			case <-release:
				return "released"
			case <-ctx.Done():
				return "cancelled"
			}
		}),
	}
}

func TestJRPC2CallsNotificationsAndErrors(t *testing.T) {
	t.Parallel()
	notes := make(chan string, 1)
	cli := jrpc2Pair(t, nil, methods(notes, nil))
	ctx := hangCtx(t)
	var sum int
	if err := cli.CallResult(ctx, "Add", []int{1, 2, 3}, &sum); err != nil || sum != 6 {
		t.Fatalf("Add = %d, %v; want 6", sum, err)
	}
	if err := cli.Notify(ctx, "Note", []string{"hello"}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-notes:
		if n != "hello" {
			t.Fatalf("the server got the notification %q", n)
		}
	case <-time.After(hangTimeout):
		t.Fatal("the notification never arrived")
	}
	_, err := cli.Call(ctx, "Fail", nil)
	var jerr *jrpc2.Error
	if !errors.As(err, &jerr) || jerr.Code != 42 {
		t.Fatalf("Fail = %v, want the server's error with code 42", err)
	}
	if _, err := cli.Call(ctx, "NoSuchMethod", nil); jrpc2.ErrorCode(err) != jrpc2.MethodNotFound {
		t.Fatalf("an unknown method = %v, want MethodNotFound", err)
	}
}

func TestJRPC2Batch(t *testing.T) {
	t.Parallel()
	cli := jrpc2Pair(t, nil, methods(make(chan string, 1), nil))
	rsps, err := cli.Batch(hangCtx(t), []jrpc2.Spec{
		{Method: "Add", Params: []int{1, 2}},
		{Method: "Note", Params: []string{"in a batch"}, Notify: true},
		{Method: "Add", Params: []int{3, 4}},
		{Method: "Fail"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rsps) != 3 {
		t.Fatalf("%d responses, want 3 (the notification gets none)", len(rsps))
	}
	for i, want := range []int{3, 7} {
		var got int
		if err := rsps[i].UnmarshalResult(&got); err != nil || got != want {
			t.Errorf("response %d = %d, %v; want %d", i, got, err, want)
		}
	}
	if rsps[2].Error() == nil {
		t.Error("the failing call of the batch got no error")
	}
}

func TestJRPC2ConcurrentCalls(t *testing.T) {
	t.Parallel()
	cli := jrpc2Pair(t, nil, methods(nil, nil))
	ctx := hangCtx(t)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sum int
			if err := cli.CallResult(ctx, "Add", []int{i, i}, &sum); err != nil || sum != 2*i {
				t.Errorf("call %d: %d, %v; want %d", i, sum, err, 2*i)
			}
		}()
	}
	wg.Wait()
}

// TestJRPC2CancelledCall: a call whose ctx ends returns, its late reply is
// discarded, and the next call gets its own answer.
func TestJRPC2CancelledCall(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	cli := jrpc2Pair(t, nil, methods(nil, release))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := cli.Call(ctx, "Wait", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call whose ctx ended = %v, want context.DeadlineExceeded", err)
	}
	close(release) // its reply comes now, late
	var sum int
	if err := cli.CallResult(hangCtx(t), "Add", []int{20, 22}, &sum); err != nil || sum != 42 {
		t.Fatalf("the next call = %d, %v; want its own answer, 42", sum, err)
	}
}

// TestJRPC2ReplyOverTheCap: a reply over the server's frame cap becomes an
// error response for the same id, and the Conn goes on.
func TestJRPC2ReplyOverTheCap(t *testing.T) {
	t.Parallel()
	cli := jrpc2Pair(t, &jsonconn.Config{MaxFrameSize: 1 << 10}, methods(nil, nil))
	ctx := hangCtx(t)
	_, err := cli.Call(ctx, "Big", []int{2 << 10})
	var jerr *jrpc2.Error
	if !errors.As(err, &jerr) || jerr.Code != jsonrpc.CodeFrameCap || !strings.Contains(jerr.Message, "frame cap") {
		t.Fatalf("a reply over the cap = %v, want the error response %d", err, jsonrpc.CodeFrameCap)
	}
	var s string
	if err := cli.CallResult(ctx, "Big", []int{10}, &s); err != nil || len(s) != 10 {
		t.Fatalf("the next call = %q, %v; want the Conn usable", s, err)
	}
	// A request over the client's cap fails before anything is sent.
	if _, err := cli.Call(ctx, "Add", make([]int, 1<<18)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		t.Fatalf("a request over the cap = %v, want ErrFrameTooLarge", err)
	}
}

// TestJRPC2ServerDiesMidCall: every pending call fails promptly when the
// server's connection goes, and nothing is left running.
func TestJRPC2ServerDiesMidCall(t *testing.T) {
	t.Parallel()
	cc, sc := pair(t, nil)
	release := make(chan struct{})
	defer close(release)
	srv := jrpc2.NewServer(methods(nil, release), nil).Start(jsonrpc.NewChannel(sc))
	cli := jrpc2.NewClient(jsonrpc.NewChannel(cc), nil)
	defer cli.Close()
	ctx := hangCtx(t)
	errs := make(chan error, 5)
	for range 5 {
		go func() { _, err := cli.Call(ctx, "Wait", nil); errs <- err }()
	}
	time.Sleep(50 * time.Millisecond) // the calls are out
	srv.Stop()                        // the server dies: its Conn closes
	srv.Wait()
	for range 5 {
		select {
		case err := <-errs:
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("a pending call = %v, want the connection's end", err)
			}
		case <-time.After(hangTimeout):
			t.Fatal("a pending call hung after the server died")
		}
	}
}

// sourcegraphPair serves handle over one end of a TCP connection, whose
// Conn has cfg, and returns a jsonrpc2.Conn over the other.
func sourcegraphPair(t *testing.T, cfg *jsonconn.Config, handle func(ctx context.Context, req *jsonrpc2.Request) (any, error)) (client, server *jsonrpc2.Conn) {
	t.Helper()
	cc, sc := pair(t, cfg)
	ctx := context.Background()
	h := jsonrpc2.HandlerWithError(func(ctx context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		return handle(ctx, req)
	})
	server = jsonrpc2.NewConn(ctx, jsonrpc.NewObjectStream(sc), h)
	client = jsonrpc2.NewConn(ctx, jsonrpc.NewObjectStream(cc), nil)
	t.Cleanup(func() {
		client.Close()
		server.Close()
		<-client.DisconnectNotify()
		<-server.DisconnectNotify()
	})
	return client, server
}

func TestSourcegraphCallsNotificationsAndErrors(t *testing.T) {
	t.Parallel()
	notes := make(chan string, 1)
	cli, _ := sourcegraphPair(t, &jsonconn.Config{MaxFrameSize: 1 << 10}, func(ctx context.Context, req *jsonrpc2.Request) (any, error) {
		switch req.Method {
		case "Echo":
			return req.Params, nil
		case "Note":
			notes <- string(*req.Params)
			return nil, nil
		case "Big":
			return strings.Repeat("x", 2<<10), nil
		}
		return nil, &jsonrpc2.Error{Code: 42, Message: "no such method"}
	})
	ctx := hangCtx(t)
	var got []int
	if err := cli.Call(ctx, "Echo", []int{1, 2}, &got); err != nil || len(got) != 2 {
		t.Fatalf("Echo = %v, %v", got, err)
	}
	if err := cli.Notify(ctx, "Note", "hello"); err != nil {
		t.Fatal(err)
	}
	if n := <-notes; n != `"hello"` {
		t.Fatalf("the notification carried %s", n)
	}
	var jerr *jsonrpc2.Error
	if err := cli.Call(ctx, "Nothing", nil, nil); !errors.As(err, &jerr) || jerr.Code != 42 {
		t.Fatalf("an unknown method = %v, want the error response 42", err)
	}
	if err := cli.Call(ctx, "Big", nil, new(string)); !errors.As(err, &jerr) || jerr.Code != jsonrpc.CodeFrameCap {
		t.Fatalf("a reply over the cap = %v, want the error response %d", err, jsonrpc.CodeFrameCap)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got int
			if err := cli.Call(ctx, "Echo", i, &got); err != nil || got != i {
				t.Errorf("concurrent call %d = %d, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
}

func TestSourcegraphServerDiesMidCall(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	cli, srv := sourcegraphPair(t, nil, func(ctx context.Context, req *jsonrpc2.Request) (any, error) {
		<-release
		return "late", nil
	})
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- cli.Call(hangCtx(t), "Wait", nil, nil) }()
	}
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	for range 3 {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("a pending call succeeded after the server died")
			}
		case <-time.After(hangTimeout):
			t.Fatal("a pending call hung after the server died")
		}
	}
}

// TestJRPC2BatchReplyOverTheCap: a batch whose replies together exceed the
// server's frame cap gets an error response for each of its ids.
func TestJRPC2BatchReplyOverTheCap(t *testing.T) {
	t.Parallel()
	cli := jrpc2Pair(t, &jsonconn.Config{MaxFrameSize: 1 << 10}, methods(nil, nil))
	rsps, err := cli.Batch(hangCtx(t), []jrpc2.Spec{
		{Method: "Big", Params: []int{2 << 10}},
		{Method: "Add", Params: []int{1, 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rsps {
		var jerr *jrpc2.Error
		if !errors.As(r.Error(), &jerr) || jerr.Code != jsonrpc.CodeFrameCap {
			t.Errorf("response %d: %v, want the error response %d", i, r.Error(), jsonrpc.CodeFrameCap)
		}
	}
	var sum int
	if err := cli.CallResult(hangCtx(t), "Add", []int{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("the next call = %d, %v; want the Conn usable", sum, err)
	}
}

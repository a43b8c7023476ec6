package jsonrpc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
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
	if _, err := cli.Call(ctx, "Big", []int{2 << 10}); !isFrameCap(err) {
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
	started := make(chan struct{}, 5)
	srv := jrpc2.NewServer(handler.Map{
		"Wait": handler.New(func(ctx context.Context) string {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return "late"
		}),
	}, &jrpc2.ServerOptions{Concurrency: 5}).Start(jsonrpc.NewChannel(sc)) // all five at once: the default is GOMAXPROCS
	cli := jrpc2.NewClient(jsonrpc.NewChannel(cc), nil)
	defer cli.Close()
	ctx := hangCtx(t)
	errs := make(chan error, 5)
	for range 5 {
		go func() { _, err := cli.Call(ctx, "Wait", nil); errs <- err }()
	}
	for range 5 {
		<-started // every call is out, its method running
	}
	srv.Stop() // the server dies: its Conn closes
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
	if !cli.IsStopped() {
		t.Error("the client is not stopped after its connection ended")
	}
}

// sourcegraphPair serves handle over one end of a TCP connection, whose
// Conn has cfg, and returns a jsonrpc2.Conn over the other.
func sourcegraphPair(t *testing.T, cfg *jsonconn.Config, handle func(ctx context.Context, req *jsonrpc2.Request) (any, error)) (client, server *jsonrpc2.Conn) {
	t.Helper()
	cc, sc := pair(t, cfg)
	ctx := context.Background()
	// AsyncHandler: a request's handler runs while the next is read, as a
	// server with calls in flight does; jsonrpc2 runs them one by one
	// otherwise.
	h := jsonrpc2.AsyncHandler(jsonrpc2.HandlerWithError(func(ctx context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		return handle(ctx, req)
	}))
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
	if err := cli.Call(ctx, "Big", nil, new(string)); !isFrameCap(err) {
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
	started := make(chan struct{}, 3)
	cli, srv := sourcegraphPair(t, nil, func(ctx context.Context, req *jsonrpc2.Request) (any, error) {
		started <- struct{}{}
		<-release
		return "late", nil
	})
	errs := make(chan error, 3)
	for range 3 {
		go func() { errs <- cli.Call(hangCtx(t), "Wait", nil, nil) }()
	}
	for range 3 {
		<-started
	}
	srv.Close()
	for range 3 {
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

// TestSourcegraphCancelledCall: a call whose ctx ends returns, its late reply
// is discarded, and the next call gets its own answer.
func TestSourcegraphCancelledCall(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	cli, _ := sourcegraphPair(t, nil, func(ctx context.Context, req *jsonrpc2.Request) (any, error) {
		if req.Method == "Wait" {
			<-release
			return "late", nil
		}
		return req.Params, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := cli.Call(ctx, "Wait", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a call whose ctx ended = %v, want context.DeadlineExceeded", err)
	}
	close(release) // its reply comes now, late
	var got int
	if err := cli.Call(hangCtx(t), "Echo", 42, &got); err != nil || got != 42 {
		t.Fatalf("the next call = %d, %v; want its own answer, 42", got, err)
	}
}

// isFrameCap reports whether err is the error response that replaces a
// reply over the frame cap.
func isFrameCap(err error) bool {
	var jerr *jrpc2.Error
	if errors.As(err, &jerr) {
		return jerr.Code == jsonrpc.CodeFrameCap && jerr.Message == jsonrpc.MessageFrameCap
	}
	var serr *jsonrpc2.Error
	return errors.As(err, &serr) && serr.Code == jsonrpc.CodeFrameCap && serr.Message == jsonrpc.MessageFrameCap
}

// TestJRPC2BatchReplyOverTheCap: in a batch whose replies together exceed
// the server's frame cap, a reply that alone exceeds it is replaced, and the
// others arrive as they are.
func TestJRPC2BatchReplyOverTheCap(t *testing.T) {
	t.Parallel()
	cli := jrpc2Pair(t, &jsonconn.Config{MaxFrameSize: 1 << 10}, methods(nil, nil))
	rsps, err := cli.Batch(hangCtx(t), []jrpc2.Spec{
		{Method: "Big", Params: []int{2 << 10}},
		{Method: "Add", Params: []int{1, 2}},
		{Method: "Big", Params: []int{600}},
		{Method: "Big", Params: []int{600}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rsps) != 4 || !isFrameCap(rsps[0].Error()) {
		t.Fatalf("%d responses, the first %v; want 4, the first the error response %d", len(rsps), rsps[0].Error(), jsonrpc.CodeFrameCap)
	}
	var sum int
	if err := rsps[1].UnmarshalResult(&sum); err != nil || sum != 3 {
		t.Errorf("response 1 = %d, %v; want 3", sum, err)
	}
	for i := 2; i < 4; i++ {
		var s string
		if err := rsps[i].UnmarshalResult(&s); err != nil || len(s) != 600 {
			t.Errorf("response %d = %d bytes, %v; want 600 bytes", i, len(s), err)
		}
	}
	if err := cli.CallResult(hangCtx(t), "Add", []int{1, 2}, &sum); err != nil || sum != 3 {
		t.Fatalf("the next call = %d, %v; want the Conn usable", sum, err)
	}
}

// TestJRPC2BatchOfSmallRepliesOverTheCap: a batch of replies that each fit
// but together exceed the cap arrives whole, in several frames. Error
// responses in their place would be larger still.
func TestJRPC2BatchOfSmallRepliesOverTheCap(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		cap   int // 0 for the default
		calls int
	}{
		{"1 KiB cap, 20 calls", 1 << 10, 20}, // a request of ~800 bytes, replies of ~1,160
		{"default cap, 5000 calls", 0, 5000}, // a request of ~225 KB, replies of ~320 KB
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cli := jrpc2Pair(t, &jsonconn.Config{MaxFrameSize: tt.cap}, handler.Map{
				"N": handler.New(func(ctx context.Context) string { return strings.Repeat("n", 20) }),
			})
			specs := make([]jrpc2.Spec, tt.calls)
			for i := range specs {
				specs[i] = jrpc2.Spec{Method: "N"}
			}
			rsps, err := cli.Batch(hangCtx(t), specs)
			if err != nil {
				t.Fatal(err)
			}
			if len(rsps) != tt.calls {
				t.Fatalf("%d responses, want %d", len(rsps), tt.calls)
			}
			for i, r := range rsps {
				var s string
				if err := r.UnmarshalResult(&s); err != nil || len(s) != 20 {
					t.Fatalf("response %d = %q, %v; want its result", i, s, err)
				}
			}
		})
	}
}

// TestReplacementOverTheCapClosesConn: when even the error response exceeds
// the cap, the server's Conn is closed, so that the call fails at once
// instead of waiting for its ctx.
func TestReplacementOverTheCapClosesConn(t *testing.T) {
	t.Parallel()
	// {"jsonrpc":"2.0","id":1,"method":"Big","params":[100]} fits in 80
	// bytes; the error response for id 1 takes 88.
	cfg := &jsonconn.Config{MaxFrameSize: 80}
	t.Run("jrpc2", func(t *testing.T) {
		t.Parallel()
		cli := jrpc2Pair(t, cfg, methods(nil, nil))
		_, err := cli.Call(hangCtx(t), "Big", []int{100})
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a reply whose replacement is over the cap = %v; want the connection's end", err)
		}
	})
	t.Run("sourcegraph", func(t *testing.T) {
		t.Parallel()
		cli, _ := sourcegraphPair(t, cfg, func(ctx context.Context, req *jsonrpc2.Request) (any, error) {
			return strings.Repeat("x", 100), nil
		})
		err := cli.Call(hangCtx(t), "Big", nil, new(string))
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a reply whose replacement is over the cap = %v; want the connection's end", err)
		}
	})
}

// TestChannelSendOverTheCap drives Channel.Send directly, with what jrpc2
// would hand it, and checks what the peer receives.
func TestChannelSendOverTheCap(t *testing.T) {
	t.Parallel()
	const max = 256
	big := strings.Repeat("x", 300)
	recv := func(t *testing.T, c *jsonconn.Conn) string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(hangTimeout))
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("the peer's read: %v", err)
		}
		return string(m)
	}
	t.Run("not JSON-RPC", func(t *testing.T) {
		t.Parallel()
		peer, c := pair(t, &jsonconn.Config{MaxFrameSize: max})
		ch := jsonrpc.NewChannel(c)
		for _, rec := range []string{
			`{"id":7,"payload":"` + big + `"}`,
			`{"jsonrpc":"2.0","id":7,"method":"m","params":["` + big + `"]}`,
		} {
			err := ch.Send([]byte(rec))
			var fse *jsonconn.FrameSizeError
			if !errors.As(err, &fse) || fse.Size != int64(len(rec)) || errors.Is(err, jsonrpc.ErrReplaced) {
				t.Fatalf("Send of %d bytes of what is not a reply = %v; want the FrameSizeError alone", len(rec), err)
			}
		}
		if err := ch.Send([]byte(`{"jsonrpc":"2.0","id":1,"result":1}`)); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, peer); got != `{"jsonrpc":"2.0","id":1,"result":1}` {
			t.Fatalf("the peer got %s first; want nothing of the refused messages", got)
		}
	})
	t.Run("reply replaced", func(t *testing.T) {
		t.Parallel()
		peer, c := pair(t, &jsonconn.Config{MaxFrameSize: max})
		ch := jsonrpc.NewChannel(c)
		rec := `{"jsonrpc":"2.0","id":"q-1","result":"` + big + `"}`
		err := ch.Send([]byte(rec))
		var fse *jsonconn.FrameSizeError
		if !errors.Is(err, jsonrpc.ErrReplaced) || !errors.Is(err, jsonconn.ErrFrameTooLarge) || !errors.As(err, &fse) || fse.Size != int64(len(rec)) || fse.Max != max {
			t.Fatalf("Send = %v; want ErrReplaced and the FrameSizeError of %d bytes over %d", err, len(rec), max)
		}
		want := fmt.Sprintf(`{"jsonrpc":"2.0","id":"q-1","error":{"code":%d,"message":%q}}`, jsonrpc.CodeFrameCap, jsonrpc.MessageFrameCap)
		if got := recv(t, peer); got != want {
			t.Fatalf("the peer got %s; want %s", got, want)
		}
	})
	t.Run("batch split", func(t *testing.T) {
		t.Parallel()
		peer, c := pair(t, &jsonconn.Config{MaxFrameSize: max})
		ch := jsonrpc.NewChannel(c)
		var elems []string
		for i := range 12 {
			elems = append(elems, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":"%s"}`, i, strings.Repeat("r", 40)))
		}
		if err := ch.Send([]byte("[" + strings.Join(elems, ",") + "]")); err != nil {
			t.Fatalf("Send of a batch of replies that fit one by one = %v; want nil", err)
		}
		var got []string
		frames := 0
		for len(got) < len(elems) {
			var batch []json.RawMessage
			if err := json.Unmarshal([]byte(recv(t, peer)), &batch); err != nil || len(batch) == 0 {
				t.Fatalf("frame %d is not a batch of replies: %v", frames, err)
			}
			frames++
			for _, r := range batch {
				got = append(got, string(r))
			}
		}
		if frames < 2 || !slices.Equal(got, elems) {
			t.Fatalf("the peer got %d replies in %d frames; want the %d replies, in order, in several frames", len(got), frames, len(elems))
		}
	})
	t.Run("batch of replies of the cap", func(t *testing.T) {
		t.Parallel()
		peer, c := pair(t, &jsonconn.Config{MaxFrameSize: max})
		ch := jsonrpc.NewChannel(c)
		// Replies of exactly the cap and one under fit alone, not in an
		// array: they go as frames of their own, not replaced.
		reply := func(id, size int) string {
			r := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":""}`, id)
			return r[:len(r)-2] + strings.Repeat("r", size-len(r)) + `"}`
		}
		elems := []string{reply(1, max), reply(2, max-1), reply(3, 60), reply(4, 60)}
		if err := ch.Send([]byte("[" + strings.Join(elems, ",") + "]")); err != nil {
			t.Fatalf("Send = %v; want nil, every reply sent as it was", err)
		}
		var got []string
		for len(got) < len(elems) {
			m := recv(t, peer)
			var batch []json.RawMessage
			if json.Unmarshal([]byte(m), &batch) != nil {
				batch = []json.RawMessage{json.RawMessage(m)}
			}
			for _, r := range batch {
				got = append(got, string(r))
			}
		}
		if !slices.Equal(got, elems) {
			t.Fatalf("the peer got %q; want the replies as they were, in order", got)
		}
	})
	t.Run("replacement over the cap", func(t *testing.T) {
		t.Parallel()
		peer, c := pair(t, &jsonconn.Config{MaxFrameSize: 64})
		ch := jsonrpc.NewChannel(c)
		err := ch.Send([]byte(`{"jsonrpc":"2.0","id":1,"result":"` + big + `"}`))
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Fatalf("Send = %v; want net.ErrClosed and ErrFrameTooLarge", err)
		}
		peer.SetReadDeadline(time.Now().Add(hangTimeout))
		if _, err := peer.ReadMessage(); !errors.Is(err, io.EOF) {
			t.Fatalf("the peer's read = %v; want io.EOF", err)
		}
	})
}

// TestJRPC2ServerShutdown pins what Server.Shutdown does to a jrpc2 server
// in a handler, as docs/operations.md says: its Recv returns
// ErrServerClosed, so jrpc2 stops, cancels the methods in flight and closes
// the Conn; the client's calls fail at once; Wait's error matches
// ErrServerClosed; and Shutdown returns once the handler has.
func TestJRPC2ServerShutdown(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	waitErr := make(chan error, 1)
	srv := &jsonconn.Server{
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			s := jrpc2.NewServer(handler.Map{
				"Wait": handler.New(func(ctx context.Context) string {
					started <- struct{}{}
					<-ctx.Done()
					close(cancelled)
					return "cancelled"
				}),
			}, nil).Start(jsonrpc.NewChannel(c))
			waitErr <- s.Wait()
		}),
	}
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })

	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cli := jrpc2.NewClient(jsonrpc.NewChannel(c), nil)
	defer cli.Close()
	called := make(chan error, 1)
	go func() {
		_, err := cli.Call(hangCtx(t), "Wait", nil)
		called <- err
	}()
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v; want it to return once the handler has", err)
	}
	select {
	case <-cancelled:
	default:
		t.Error("Shutdown returned before the method in flight was cancelled")
	}
	select {
	case err := <-waitErr:
		if !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Errorf("the jrpc2 server's Wait = %v; want ErrServerClosed", err)
		}
	default:
		t.Error("Shutdown returned before the handler")
	}
	// jrpc2's client reports its connection's end to the calls in flight
	// as context.Canceled, not the ctx's deadline: it does not wait.
	if err := <-called; !errors.Is(err, context.Canceled) {
		t.Errorf("the call in flight = %v; want context.Canceled, the connection's end", err)
	}
	if !cli.IsStopped() {
		t.Error("the client is not stopped after the server's Shutdown")
	}
	if err := <-served; !errors.Is(err, jsonconn.ErrServerClosed) {
		t.Errorf("Serve = %v; want ErrServerClosed", err)
	}
}

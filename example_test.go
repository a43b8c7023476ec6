package jsonconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jsonconn/jsonconn"
)

// Wrap any net.Conn, then send and receive Go values. net.Pipe stands in for a
// TCP or Unix connection here.
func Example() {
	client, server := net.Pipe()
	a, b := jsonconn.New(client, nil), jsonconn.New(server, nil)
	defer a.Close()
	defer b.Close()

	type greeting struct {
		From string   `json:"from"`
		Tags []string `json:"tags"`
	}
	go func() {
		if err := a.Send(greeting{From: "client", Tags: []string{"<hello>", "&"}}); err != nil {
			log.Print(err)
		}
	}()

	var g greeting
	if err := b.Receive(&g); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s says %v\n", g.From, g.Tags)
	// Output: client says [<hello> &]
}

// An echo server without a listener: one goroutine answers every message
// with itself until the client closes.
func Example_echo() {
	client, server := net.Pipe()
	go func() {
		c := jsonconn.New(server, nil)
		defer c.Close()
		for {
			msg, err := c.ReadMessage()
			if err != nil {
				if err != io.EOF {
					log.Print(err)
				}
				return
			}
			if _, err := c.Write(msg); err != nil {
				log.Print(err)
				return
			}
		}
	}()

	c := jsonconn.New(client, nil)
	defer c.Close()
	for _, msg := range []string{`{"n":1}`, `"two"`, `[3]`} {
		if _, err := c.Write([]byte(msg)); err != nil {
			log.Fatal(err)
		}
		reply, err := c.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", reply)
	}
	// Output:
	// {"n":1}
	// "two"
	// [3]
}

// A message the caller gets wrong is refused before any byte is sent, and the
// connection stays usable.
func ExampleConn_Write_refused() {
	client, server := net.Pipe()
	a, b := jsonconn.New(client, &jsonconn.Config{MaxFrameSize: 32}), jsonconn.New(server, nil)
	defer a.Close()
	defer b.Close()

	_, err := a.Write([]byte(`{"unterminated": `))
	fmt.Println(errors.Is(err, jsonconn.ErrInvalidJSON), err)
	_, err = a.Write([]byte(`"` + strings.Repeat("x", 40) + `"`))
	fmt.Println(errors.Is(err, jsonconn.ErrFrameTooLarge), err)

	go a.Write([]byte(`"fine"`))
	msg, _ := b.ReadMessage()
	fmt.Printf("%s\n", msg)
	// Output:
	// true jsonconn: invalid JSON at offset 17: unexpected end of JSON input
	// true jsonconn: frame of 42 bytes exceeds the 32-byte limit
	// "fine"
}

// A Reader decodes frames from any io.Reader; a Writer encodes them onto any
// io.Writer. Here they frame standard output.
func ExampleNewWriter() {
	w := jsonconn.NewWriter(hexDumper{os.Stdout}, nil)
	if err := w.Send(map[string]int{"a": 1}); err != nil {
		log.Fatal(err)
	}
	// Output: 00 00 00 07 7b 22 61 22 3a 31 7d
}

type hexDumper struct{ w io.Writer }

func (h hexDumper) Write(p []byte) (int, error) {
	fmt.Fprintf(h.w, "% x", p)
	return len(p), nil
}

// AppendMessage reads into a buffer the caller reuses, so a read loop
// allocates nothing per message.
func ExampleConn_AppendMessage() {
	client, server := net.Pipe()
	a, b := jsonconn.New(client, nil), jsonconn.New(server, nil)
	defer a.Close()
	defer b.Close()
	go func() {
		for i := 0; i < 3; i++ {
			a.Send(i)
		}
		a.Close()
	}()

	buf := make([]byte, 0, 4096)
	for {
		var err error
		buf, err = b.AppendMessage(buf[:0])
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s ", buf)
	}
	// Output: 0 1 2 EOF
}

// A production echo server in a few lines, and a client for it, on the
// loopback interface.
func ExampleServer() {
	srv := &jsonconn.Server{
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			for {
				var msg map[string]any
				if err := c.Receive(&msg); err != nil {
					return // io.EOF, ErrServerClosed, a broken peer: the Server closes c
				}
				msg["echo"] = true
				if err := c.Send(msg); err != nil {
					return
				}
			}
		}),
		MaxConns:     1000,
		IdleTimeout:  time.Minute,
		WriteTimeout: 10 * time.Second,
	}
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(map[string]string{"hello": "server"}); err != nil {
		log.Fatal(err)
	}
	var reply map[string]any
	if err := c.Receive(&reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	// Output: map[echo:true hello:server]
}

// Publish a Server's counters with expvar, which serves them as JSON at
// /debug/vars once the program serves HTTP with http.DefaultServeMux. A
// Prometheus exporter or any other metrics system reads them the same way,
// from Stats, with no dependency in jsonconn.
func ExampleServer_Stats() {
	srv := &jsonconn.Server{
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			var msg any
			for c.Receive(&msg) == nil {
			}
		}),
		FrameTimeout: 10 * time.Second,
	}
	// One map for the program's servers; Publish panics on a name taken.
	vars, ok := expvar.Get("jsonconn").(*expvar.Map)
	if !ok {
		vars = expvar.NewMap("jsonconn")
	}
	vars.Set("api", expvar.Func(func() any { return srv.Stats() }))

	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	// Two clients: one breaks the protocol, one says hello and hangs up.
	// Each reads until the server closes its connection.
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	raw.Write([]byte("\x00\x00\x00\x05hello")) // not JSON
	io.Copy(io.Discard, raw)
	raw.Close()
	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	c.Send("hello")
	c.CloseWrite()
	c.ReadMessage() // io.EOF once the handler has returned
	c.Close()
	srv.Shutdown(context.Background())

	var stats jsonconn.ServerStats
	json.Unmarshal([]byte(vars.Get("api").String()), &stats)
	fmt.Printf("accepted %d, open %d, peer closed %d, invalid JSON %d\n",
		stats.Accepted, stats.Open, stats.PeerClosed, stats.InvalidJSON)
	// Output: accepted 2, open 0, peer closed 1, invalid JSON 1
}

// Request/reply with net/rpc's JSON-RPC codec, unchanged, over framed JSON:
// each call and each answer is one frame.
func Example_requestReply() {
	rpcs := rpc.NewServer()
	if err := rpcs.Register(Arith{}); err != nil {
		log.Fatal(err)
	}
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		rpcs.ServeCodec(jsonrpc.NewServerCodec(c))
	})}
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		log.Fatal(err)
	}
	client := jsonrpc.NewClient(c)
	defer client.Close()
	var product int
	if err := client.Call("Arith.Multiply", Args{6, 7}, &product); err != nil {
		log.Fatal(err)
	}
	fmt.Println(product)
	// Output: 42
}

// dialWithBackoff dials until it succeeds or ctx ends, waiting between
// attempts with capped exponential backoff and full jitter. A reconnect
// belongs in the application, not in Conn: a new connection cannot promise
// what the old one lost, so the caller decides what to resend.
func dialWithBackoff(ctx context.Context, d *jsonconn.Dialer, network, address string) (*jsonconn.Conn, error) {
	const base, maxDelay = 10 * time.Millisecond, 2 * time.Second
	for attempt := 0; ; attempt++ {
		c, err := d.DialConn(ctx, network, address)
		if err == nil {
			return c, nil
		}
		delay := min(maxDelay, base<<min(attempt, 16))
		delay = rand.N(delay) + 1 // full jitter: anywhere in (0, delay]
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), err)
		}
	}
}

// Reconnecting with backoff: the server comes up a little after the client
// starts dialing.
func ExampleDialer_reconnect() {
	dir, err := os.MkdirTemp("", "jc")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s")

	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		c.Send("welcome")
	})}
	defer srv.Shutdown(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond) // not listening yet
		ln, err := net.Listen("unix", sock)
		if err != nil {
			log.Print(err)
			return
		}
		srv.Serve(ln)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := &jsonconn.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
	c, err := dialWithBackoff(ctx, d, "unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var greeting string
	if err := c.Receive(&greeting); err != nil {
		log.Fatal(err)
	}
	fmt.Println(greeting)
	// Output: welcome
}

// Accept framed-JSON connections without a Server: AcceptConn returns the
// *Conn, with no type assertion.
func ExampleListener_AcceptConn() {
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
		if err != nil {
			log.Print(err)
			return
		}
		defer c.Close()
		c.Send(map[string]int{"answer": 42})
	}()

	c, err := ln.AcceptConn()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var msg map[string]int
	if err := c.Receive(&msg); err != nil {
		log.Fatal(err)
	}
	fmt.Println(msg["answer"])
	// Output: 42
}

// A Client keeps its connection up: it dials on the first call, says hello
// on each new connection, pings a quiet peer, and redials with jittered
// backoff when the connection ends. Its calls are named as Conn's.
func ExampleClient() {
	srv := &jsonconn.Server{Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		var msg any
		for c.Receive(&msg) == nil {
			if c.Send(msg) != nil {
				return
			}
		}
	})}
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	cl := &jsonconn.Client{
		Address: ln.Addr().String(),
		Handshake: func(ctx context.Context, c *jsonconn.Conn) error {
			return c.SendContext(ctx, map[string]string{"hello": "from the client"})
		},
		HeartbeatInterval: 30 * time.Second, // ping after 30 s of silence
		HeartbeatTimeout:  10 * time.Second, // and redial after 10 s more
		Heartbeat: func(ctx context.Context, c *jsonconn.Conn) error {
			return c.SendContext(ctx, map[string]string{"ping": ""})
		},
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.SendContext(ctx, map[string]int{"n": 1}); err != nil {
		log.Fatal(err)
	}
	for range 2 { // the echo of the hello, then of the message
		var reply map[string]any
		if err := cl.ReceiveContext(ctx, &reply); err != nil {
			log.Fatal(err) // errors.Is(err, jsonconn.ErrDisconnected): the connection ended
		}
		fmt.Println(reply)
	}
	// Output:
	// map[hello:from the client]
	// map[n:1]
}

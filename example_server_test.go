package jsonconn_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"time"

	"github.com/jsonconn/jsonconn"
)

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
		c, err := d.DialContext(ctx, network, address)
		if err == nil {
			return c.(*jsonconn.Conn), nil
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

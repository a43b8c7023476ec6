package jsonrpc_test

import (
	"context"
	"fmt"
	"log"
	"net"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/handler"
	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonrpc"
	"github.com/sourcegraph/jsonrpc2"
)

// A jrpc2 server and client over jsonconn: each request and each reply is
// one framed message. net.Pipe stands in for a TCP or Unix connection.
func ExampleNewChannel() {
	a, b := net.Pipe()
	srv := jrpc2.NewServer(handler.Map{
		"Add": handler.New(func(ctx context.Context, xs []int) int { return xs[0] + xs[1] }),
	}, nil).Start(jsonrpc.NewChannel(jsonconn.New(a, nil)))
	defer srv.Wait()
	cli := jrpc2.NewClient(jsonrpc.NewChannel(jsonconn.New(b, nil)), nil)
	defer cli.Close()

	var sum int
	if err := cli.CallResult(context.Background(), "Add", []int{20, 22}, &sum); err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum)
	// Output: 42
}

// A sourcegraph/jsonrpc2 connection over jsonconn.
func ExampleNewObjectStream() {
	a, b := net.Pipe()
	ctx := context.Background()
	server := jsonrpc2.NewConn(ctx, jsonrpc.NewObjectStream(jsonconn.New(a, nil)),
		jsonrpc2.HandlerWithError(func(ctx context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
			return map[string]string{"method": req.Method}, nil
		}))
	defer server.Close()
	client := jsonrpc2.NewConn(ctx, jsonrpc.NewObjectStream(jsonconn.New(b, nil)), nil)
	defer client.Close()

	var reply map[string]string
	if err := client.Call(ctx, "hello", nil, &reply); err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply["method"])
	// Output: hello
}

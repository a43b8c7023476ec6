// Command echo runs a jsonconn echo server and a client against it on the
// loopback interface, and prints what they say: a complete program using the
// library, as the README calls it. From the root of a clone of the
// repository:
//
//	go run ./examples/echo
//
// (The README's "see it work" command is go run ./cmd/jsonconn demo, which
// also measures throughput.)
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/jsonconn/jsonconn"
)

// Message is what the client sends and the server returns.
type Message struct {
	Seq  int    `json:"seq"`
	Text string `json:"text"`
}

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() { served <- serve(ln) }()

	raw, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return err
	}
	c := jsonconn.New(raw, nil)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(out, "connected to %s\n", c.RemoteAddr())

	for i, text := range []string{"hello", "framed JSON <&>", "héllo 🙂"} {
		if err := c.Send(Message{Seq: i, Text: text}); err != nil {
			return err
		}
		var reply Message
		if err := c.Receive(&reply); err != nil {
			return err
		}
		fmt.Fprintf(out, "sent %d %q, got back %d %q\n", i, text, reply.Seq, reply.Text)
	}

	// A message the client gets wrong never leaves it, and the conn goes on.
	_, err = c.Write([]byte(`{"seq": 3, "text": unquoted}`))
	fmt.Fprintf(out, "refused: %v\n", err)
	if err := c.Send(Message{Seq: 4, Text: "still connected"}); err != nil {
		return err
	}
	var reply Message
	if err := c.Receive(&reply); err != nil {
		return err
	}
	fmt.Fprintf(out, "got back %d %q\n", reply.Seq, reply.Text)

	// Half-close: the server sees io.EOF, finishes, and closes its side.
	if err := c.CloseWrite(); err != nil {
		return err
	}
	if err := <-served; err != nil {
		return fmt.Errorf("server: %w", err)
	}
	fmt.Fprintln(out, "server done")
	return nil
}

// serve accepts one connection and echoes every message until the client is
// done sending.
func serve(ln net.Listener) error {
	raw, err := ln.Accept()
	if err != nil {
		return err
	}
	c := jsonconn.New(raw, nil)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		msg, err := c.ReadMessage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := c.Write(msg); err != nil {
			return err
		}
	}
}

package jsonconn_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"

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

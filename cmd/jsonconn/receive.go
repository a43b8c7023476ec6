package main

import (
	"fmt"
	"io"

	"github.com/jsonconn/jsonconn"
)

// receive calls handle with each message c receives, until the stream ends
// or handle fails; the message is valid only during the call. It returns
// nil at a clean end of the stream (io.EOF), handle's error as it is, and
// any other read error prefixed with "receiving: ", which still matches what
// the Conn returned (net.ErrClosed, jsonconn.ErrServerClosed, a deadline).
// This is the receive loop of every command: dial and listen print what
// arrives, demo's server echoes it, and bench checks it.
func receive(c *jsonconn.Conn, handle func(msg []byte) error) error {
	var buf []byte
	for {
		var err error
		if buf, err = c.AppendMessage(buf[:0]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("receiving: %w", err)
		}
		if err := handle(buf); err != nil {
			return err
		}
	}
}

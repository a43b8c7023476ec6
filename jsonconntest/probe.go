package jsonconntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/jsonconn/jsonconn"
)

// A probe is one raw connection to the peer, with a Reader that accepts
// any frame the peer sends (the checks are the cases' own).
type probe struct {
	net.Conn
	r *jsonconn.Reader
}

// open dials a probe, closed when ctx ends. It tries three times, 100 ms
// apart, so that one failed dial does not fail a case.
func (k *checker) open(ctx context.Context) (*probe, error) {
	var c net.Conn
	var err error
	for try := range 3 {
		if try > 0 && !sleepCtx(ctx, 100*time.Millisecond) {
			break
		}
		if c, err = k.dial(ctx); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	return &probe{Conn: c, r: jsonconn.NewReader(c, &jsonconn.Config{MaxFrameSize: jsonconn.MaxFrameSizeLimit, DisableValidation: true})}, nil
}

// send writes the frames of payloads in one write.
func (p *probe) send(payloads ...[]byte) error {
	var b []byte
	for _, m := range payloads {
		b = appendFrame(b, m)
	}
	_, err := p.Write(b)
	return err
}

// recv returns the next payload the peer sends.
func (p *probe) recv() ([]byte, error) { return p.r.ReadMessage() }

// appendFrame appends the frame of payload m to b.
func appendFrame(b, m []byte) []byte {
	b = append(b, byte(len(m)>>24), byte(len(m)>>16), byte(len(m)>>8), byte(len(m)))
	return append(b, m...)
}

// closeKind says how a read found the connection ended: "" if it did not.
func closeKind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case isTimeoutErr(err):
		return ""
	case errors.Is(err, net.ErrClosed):
		return ""
	}
	return "reset" // ECONNRESET and the like: a close with unread bytes
}

// isTimeoutErr reports whether err is a deadline or a timeout.
func isTimeoutErr(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// awaitClose reads until the peer closes the connection or ctx ends, and
// reports how it ended and how many frames arrived first.
func (p *probe) awaitClose() (how string, frames int) {
	for {
		_, err := p.recv()
		if err == nil {
			frames++
			continue
		}
		return closeKind(err), frames
	}
}

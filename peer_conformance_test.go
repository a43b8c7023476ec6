package jsonconn_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonconntest"
)

// TestServerConformance runs the conformance suite against a Server whose
// handler echoes each message, as jsonconn listen -echo does: every case
// passes or is info, none fails or is non-strict. FrameTimeout cuts the
// dripped frame of case 3.5 within the case's timeout.
func TestServerConformance(t *testing.T) {
	t.Parallel()
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &jsonconn.Server{
		FrameTimeout: 500 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)), // the cases end connections on purpose
		Handler: jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
			for {
				m, err := c.ReadMessage()
				if err != nil {
					return
				}
				if _, err := c.Write(m); err != nil {
					return
				}
			}
		}),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, jsonconn.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	addr := ln.Addr().String()
	start := time.Now()
	jsonconntest.TestPeer(t, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	})
	t.Logf("the suite took %v", time.Since(start))
}

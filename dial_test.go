package jsonconn_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

func TestDialerDialsEveryNetwork(t *testing.T) {
	t.Parallel()
	for _, n := range streamNetworks(t) {
		t.Run(n.network, func(t *testing.T) {
			t.Parallel()
			ln, err := jsonconn.Listen(n.network, n.address, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			d := &jsonconn.Dialer{NetDialer: &net.Dialer{Timeout: hangTimeout}, Config: &jsonconn.Config{MaxFrameSize: 64}}
			for _, dial := range []struct {
				method string
				dial   func() (*jsonconn.Conn, error)
			}{
				{"DialContext", func() (*jsonconn.Conn, error) {
					nc, err := d.DialContext(context.Background(), n.network, ln.Addr().String())
					if err != nil {
						return nil, err
					}
					c, ok := nc.(*jsonconn.Conn)
					if !ok {
						nc.Close()
						return nil, fmt.Errorf("DialContext returned a %T, want *jsonconn.Conn", nc)
					}
					return c, nil
				}},
				{"DialConn", func() (*jsonconn.Conn, error) {
					return d.DialConn(context.Background(), n.network, ln.Addr().String())
				}},
			} {
				accepted := acceptConn(t, ln)
				c, err := dial.dial()
				if err != nil {
					t.Fatalf("%s: %v", dial.method, err)
				}
				defer c.Close()
				exchange(t, c, <-accepted)
				if err := c.Send(strings.Repeat("x", 64)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
					t.Errorf("%s: the Dialer's Config was not applied: got %v", dial.method, err)
				}
			}
		})
	}
}

func TestDialerHonoursCancelledContext(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var d jsonconn.Dialer
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if c != nil {
		t.Fatalf("got a non-nil net.Conn (%T) with the error", c)
	}
	jc, err := d.DialConn(ctx, "tcp", ln.Addr().String())
	if !errors.Is(err, context.Canceled) || jc != nil {
		t.Fatalf("DialConn = %p, %v; want nil, context.Canceled", jc, err)
	}
}

// silentListener accepts connections and never says anything, so that a TLS
// handshake against it can only end by timeout or cancellation.
func silentListener(t testing.TB) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), acceptOne(t, ln)
}

func TestDialerTimeoutBoundsTLSHandshake(t *testing.T) {
	t.Parallel()
	addr, accepted := silentListener(t)
	d := &jsonconn.Dialer{
		NetDialer: &net.Dialer{Timeout: 200 * time.Millisecond},
		TLSConfig: &tls.Config{ServerName: "localhost"},
	}
	res := make(chan error, 1)
	go func() { _, err := d.Dial("tcp", addr); res <- err }()
	err := await(t, res)
	if err == nil {
		t.Fatal("a handshake with a silent server succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	// The half-made connection was closed.
	server := <-accepted
	server.SetReadDeadline(time.Now().Add(hangTimeout))
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("the server side did not see the client close: %v", err)
	}
}

func TestDialerContextCancelsTLSHandshake(t *testing.T) {
	t.Parallel()
	addr, accepted := silentListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	d := &jsonconn.Dialer{TLSConfig: &tls.Config{ServerName: "localhost"}}
	res := make(chan error, 1)
	go func() { _, err := d.DialContext(ctx, "tcp", addr); res <- err }()
	server := <-accepted // the TCP dial is done: the handshake is under way
	cancel()
	if err := await(t, res); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	server.SetReadDeadline(time.Now().Add(hangTimeout))
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("the server side did not see the client close: %v", err)
	}
}

// TestDialerClosesConnOnHandshakeFailure: a handshake that fails for a
// reason other than time (here, a certificate for another name) still closes
// the half-made connection.
func TestDialerClosesConnOnHandshakeFailure(t *testing.T) {
	t.Parallel()
	cert := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverSaw := async(func() error {
		raw, err := ln.Accept()
		if err != nil {
			return err
		}
		defer raw.Close()
		tc := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.SetDeadline(time.Now().Add(hangTimeout))
		if tc.Handshake() == nil {
			return errors.New("the handshake succeeded")
		}
		// Ends at the client's close: io.EOF, or a reset if the client
		// closed with the server's alert unread. Only a timeout means the
		// client left the connection open.
		if _, err := io.ReadAll(raw); isTimeout(err) {
			return err
		}
		return nil
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	d := &jsonconn.Dialer{TLSConfig: &tls.Config{RootCAs: roots, ServerName: "not-localhost"}}
	if c, err := d.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("a handshake with the wrong server name succeeded")
	}
	if err := await(t, serverSaw); err != nil {
		t.Fatalf("server side: %v", err)
	}
}

func TestDialerTLSOverUnixNeedsServerName(t *testing.T) {
	t.Parallel()
	path := tempSocket(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	d := &jsonconn.Dialer{TLSConfig: &tls.Config{}}
	_, err = d.Dial("unix", path)
	if err == nil || !strings.Contains(err.Error(), "ServerName") {
		t.Fatalf("got %v, want crypto/tls asking for a ServerName rather than the socket path", err)
	}
}

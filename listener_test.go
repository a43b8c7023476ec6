package jsonconn_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// tempSocket returns a path for a Unix socket in a fresh directory, short
// enough for the 104-108 byte limit that t.TempDir can exceed.
func tempSocket(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "s")
}

// streamNetworks are the networks Listen and Dial must support, with a
// loopback address for each.
func streamNetworks(t testing.TB) []struct{ network, address string } {
	return []struct{ network, address string }{
		{"tcp", "127.0.0.1:0"},
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"unix", tempSocket(t)},
	}
}

// exchange checks that a and b can each send a message to the other.
func exchange(t testing.TB, a, b *jsonconn.Conn) {
	t.Helper()
	a.SetDeadline(time.Now().Add(hangTimeout))
	b.SetDeadline(time.Now().Add(hangTimeout))
	defer a.SetDeadline(time.Time{})
	defer b.SetDeadline(time.Time{})
	sent := async(func() error { return a.Send(map[string]string{"from": "a"}) })
	var got map[string]string
	if err := b.Receive(&got); err != nil || got["from"] != "a" {
		t.Fatalf("b received %v, %v", got, err)
	}
	if err := await(t, sent); err != nil {
		t.Fatal(err)
	}
	sent = async(func() error { return b.Send(map[string]string{"from": "b"}) })
	if err := a.Receive(&got); err != nil || got["from"] != "b" {
		t.Fatalf("a received %v, %v", got, err)
	}
	if err := await(t, sent); err != nil {
		t.Fatal(err)
	}
}

// acceptConn accepts one Conn from ln in the background, with AcceptConn.
func acceptConn(t testing.TB, ln *jsonconn.Listener) <-chan *jsonconn.Conn {
	t.Helper()
	return acceptWith(t, ln.AcceptConn)
}

// acceptOne accepts one conn from ln in the background.
func acceptOne(t testing.TB, ln net.Listener) <-chan net.Conn {
	t.Helper()
	return acceptWith(t, ln.Accept)
}

// acceptWith calls accept once in the background and sends what it
// accepted, which it closes when the test ends; it closes the channel if
// the listener was closed first.
func acceptWith[C net.Conn](t testing.TB, accept func() (C, error)) <-chan C {
	ch := make(chan C, 1)
	go func() {
		c, err := accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept: %v", err)
			}
			close(ch)
			return
		}
		t.Cleanup(func() { c.Close() })
		ch <- c
	}()
	return ch
}

func TestListenAndDialEveryNetwork(t *testing.T) {
	t.Parallel()
	for _, n := range streamNetworks(t) {
		t.Run(n.network, func(t *testing.T) {
			t.Parallel()
			ln, err := jsonconn.Listen(n.network, n.address, &jsonconn.Config{MaxFrameSize: 1 << 10})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := acceptConn(t, ln)
			c, err := jsonconn.Dial(n.network, ln.Addr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := <-accepted
			exchange(t, c, s)
			// The listener's Config applies to accepted conns.
			if _, err := s.Write(make([]byte, 2<<10)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
				t.Errorf("a 2 KiB write on a conn accepted with a 1 KiB cap: got %v, want ErrFrameTooLarge", err)
			}
		})
	}
}

func TestNewListenerCopiesConfig(t *testing.T) {
	t.Parallel()
	cfg := &jsonconn.Config{MaxFrameSize: 16}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := jsonconn.NewListener(inner, cfg)
	defer ln.Close()
	cfg.MaxFrameSize = 1 << 20
	accepted := acceptConn(t, ln)
	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if _, err := s.Write([]byte(`"more than sixteen bytes"`)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
		t.Errorf("got %v, want the cap of 16 given to NewListener", err)
	}
}

// TestTLSComposition serves framed JSON over a TLS listener wrapped by
// NewListener, to a Dialer that does the TLS handshake itself.
func TestTLSComposition(t *testing.T) {
	t.Parallel()
	cert := testCert(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := jsonconn.NewListener(tls.NewListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}}), nil)
	defer ln.Close()
	accepted := acceptConn(t, ln)

	// A TLS server handshakes on its first read, so the server side must
	// be reading while the client dials.
	served := async(func() error {
		s := <-accepted
		if _, ok := s.NetConn().(*tls.Conn); !ok {
			return fmt.Errorf("the accepted Conn wraps a %T, want *tls.Conn", s.NetConn())
		}
		s.SetDeadline(time.Now().Add(hangTimeout))
		m, err := s.ReadMessage()
		if err != nil {
			return err
		}
		_, err = s.Write(m)
		return err
	})
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	d := &jsonconn.Dialer{TLSConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	nc, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := nc.(*jsonconn.Conn)
	if _, ok := c.NetConn().(*tls.Conn); !ok {
		t.Errorf("the dialed Conn wraps a %T, want *tls.Conn", c.NetConn())
	}
	c.SetDeadline(time.Now().Add(hangTimeout))
	if err := c.Send("over TLS"); err != nil {
		t.Fatal(err)
	}
	var echo string
	if err := c.Receive(&echo); err != nil || echo != "over TLS" {
		t.Fatalf("echo = %q, %v", echo, err)
	}
	if err := await(t, served); err != nil {
		t.Fatal(err)
	}
	if state := c.NetConn().(*tls.Conn).ConnectionState(); !state.HandshakeComplete {
		t.Error("TLS handshake not complete")
	}
}

// The Listener is a net.Listener, for Server.Serve and any other
// Serve(net.Listener).
var _ net.Listener = (*jsonconn.Listener)(nil)

// TestListenerAccept: Accept returns a *Conn configured by the Listener, as
// AcceptConn does, and after Close both return an error matching
// net.ErrClosed with a nil conn: a nil net.Conn, not a nil *Conn in a
// non-nil interface.
func TestListenerAccept(t *testing.T) {
	t.Parallel()
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", &jsonconn.Config{MaxFrameSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range 2 {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				t.Cleanup(func() { c.Close() })
			}
		}
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, ok := nc.(*jsonconn.Conn)
	if !ok {
		t.Fatalf("Accept returned a %T, want *jsonconn.Conn", nc)
	}
	c2, err := ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for _, c := range []*jsonconn.Conn{c, c2} {
		if _, err := c.Write([]byte(`"over eight"`)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Errorf("a write over the Listener's cap of 8: got %v, want ErrFrameTooLarge", err)
		}
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if nc, err := ln.Accept(); nc != nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %#v, %v; want nil and net.ErrClosed", nc, err)
	}
	if c, err := ln.AcceptConn(); c != nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("AcceptConn after Close = %v, %v; want nil and net.ErrClosed", c, err)
	}
}

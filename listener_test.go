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

// acceptOne accepts one conn from ln in the background.
func acceptOne(t testing.TB, ln net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
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
			accepted := acceptOne(t, ln)
			c, err := jsonconn.Dial(n.network, ln.Addr().String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, ok := (<-accepted).(*jsonconn.Conn)
			if !ok {
				t.Fatal("Accept did not return a *jsonconn.Conn")
			}
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
	accepted := acceptOne(t, ln)
	c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := (<-accepted).(*jsonconn.Conn)
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
	accepted := acceptOne(t, ln)

	// A TLS server handshakes on its first read, so the server side must
	// be reading while the client dials.
	served := async(func() error {
		s := (<-accepted).(*jsonconn.Conn)
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

package haproxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/haproxy"
	proxyproto "github.com/pires/go-proxyproto"
)

// hang only catches hangs.
const hang = 30 * time.Second

// startServer serves a backend named name on loopback, trusting the PROXY
// header from 127.0.0.2, until the test ends, and returns its address.
func startServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := haproxy.Listen("127.0.0.1:0", net.IPv4(127, 0, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	srv := haproxy.NewServer(name, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// dialFrom connects to addr from the local address ip, and sends a PROXY
// protocol v2 header claiming the client claimed, if not nil.
func dialFrom(t *testing.T, ip net.IP, addr string, claimed *net.TCPAddr) *jsonconn.Conn {
	t.Helper()
	d := &jsonconn.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: hang}}
	c, err := d.DialConn(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if claimed != nil {
		h := proxyproto.HeaderProxyFromAddrs(2, claimed, c.RemoteAddr())
		// The header goes under the framing, straight to the socket: the
		// Conn has nothing buffered yet.
		raw, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetDeadline(time.Now().Add(hang)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.NetConn().Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// call sends a request and returns the reply.
func call(c *jsonconn.Conn, id int64) (haproxy.Reply, error) {
	var rep haproxy.Reply
	c.SetDeadline(time.Now().Add(hang))
	if err := c.Send(haproxy.Request{ID: id}); err != nil {
		return rep, err
	}
	err := c.Receive(&rep)
	return rep, err
}

// TestProxyProtocolPolicy: the header is trusted from 127.0.0.2 only. From
// there, the handler sees the address the header gives; from anywhere else
// a header is refused and the connection closed; a client that connects
// directly with no header is served with its own address.
func TestProxyProtocolPolicy(t *testing.T) {
	t.Parallel()
	addr := startServer(t, "a")
	claimed := &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 40000}

	t.Run("from the balancer", func(t *testing.T) {
		c := dialFrom(t, net.IPv4(127, 0, 0, 2), addr, claimed)
		rep, err := call(c, 1)
		if err != nil || rep.ID != 1 || rep.Backend != "a" || rep.Client != claimed.String() {
			t.Fatalf("reply %+v, %v; want the client address %s from the header", rep, err, claimed)
		}
	})
	t.Run("a forged header from a client", func(t *testing.T) {
		c := dialFrom(t, net.IPv4(127, 0, 0, 1), addr, claimed)
		rep, err := call(c, 2)
		if err == nil || !(errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
			t.Fatalf("a header from 127.0.0.1 got %+v, %v; want the connection closed", rep, err)
		}
	})
	t.Run("a client with no header", func(t *testing.T) {
		c := dialFrom(t, net.IPv4(127, 0, 0, 1), addr, nil)
		rep, err := call(c, 3)
		if err != nil || rep.ID != 3 || rep.Client != c.LocalAddr().String() {
			t.Fatalf("reply %+v, %v; want its own address %s", rep, err, c.LocalAddr())
		}
	})
	t.Run("the balancer without a header", func(t *testing.T) {
		c := dialFrom(t, net.IPv4(127, 0, 0, 2), addr, nil)
		if rep, err := call(c, 4); err == nil {
			t.Fatalf("a connection from 127.0.0.2 without a header got %+v; want it refused", rep)
		}
	})
}

// isReset reports whether err is a connection reset.
func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

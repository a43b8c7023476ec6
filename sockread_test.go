//go:build unix

package jsonconn_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// embeddedTCP is a conn type that embeds a *net.TCPConn, as wrappers that
// count or log bytes do; its Read is its own.
type embeddedTCP struct{ *net.TCPConn }

func TestConnReadsSocketsDirectly(t *testing.T) {
	t.Parallel()
	tcpA, tcpB := tcpPair(t)
	unixA, unixB := unixPair(t)
	pipeA, pipeB := net.Pipe()
	tlsA, tlsB := tlsPair(t)
	packetA, packetB := unixNetPair(t, "unixpacket")
	for _, c := range []net.Conn{tcpA, tcpB, unixA, unixB, pipeA, pipeB, tlsA, tlsB, packetA, packetB} {
		t.Cleanup(func() { c.Close() })
	}
	for _, tc := range []struct {
		name string
		conn net.Conn
		want bool
	}{
		{"tcp", tcpA, true},
		{"unix", unixA, true},
		{"pipe", pipeA, false},
		{"tls", tlsA, false},
		{"unixpacket", packetA, false},
		{"embedded tcp", embeddedTCP{tcpB.(*net.TCPConn)}, false},
	} {
		if got := jsonconn.New(tc.conn, nil).ReadsSocket(); got != tc.want {
			t.Errorf("%s: Conn reads the socket directly: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestConnSocketReadErrorsAreTheConns checks that reading a socket directly
// returns the errors that the conn's own Read returns, so that callers who
// inspect them (for a timeout, net.ErrClosed, a reset) see no difference.
func TestConnSocketReadErrorsAreTheConns(t *testing.T) {
	t.Parallel()
	for _, tr := range []transport{{"tcp", tcpPair}, {"unix", unixPair}} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			// The same conn read both ways, so that the messages,
			// addresses included, must match exactly.
			same := func(name string, setup func(raw net.Conn)) {
				t.Helper()
				_, raw := tr.pair(t)
				defer raw.Close()
				c := jsonconn.New(raw, nil)
				if !c.ReadsSocket() {
					t.Fatal("the Conn does not read the socket directly")
				}
				setup(raw)
				_, want := raw.Read(make([]byte, 16))
				_, got := c.ReadMessage()
				if want == nil || got == nil || got.Error() != want.Error() || errType(got) != errType(want) {
					t.Errorf("%s: ReadMessage returned %q (%s), the conn's Read %q (%s)", name, got, errType(got), want, errType(want))
				}
			}
			same("past deadline", func(raw net.Conn) { raw.SetReadDeadline(time.Now().Add(-time.Second)) })
			same("deadline", func(raw net.Conn) { raw.SetReadDeadline(time.Now().Add(10 * time.Millisecond)) })
			same("closed", func(raw net.Conn) { raw.Close() })

			a, raw := tr.pair(t)
			defer raw.Close()
			c := jsonconn.New(raw, nil)
			a.Close()
			if _, err := c.ReadMessage(); err != io.EOF {
				t.Errorf("after the peer closed, ReadMessage returned %v, want io.EOF", err)
			}
		})
	}
	t.Run("reset", func(t *testing.T) {
		t.Parallel()
		// A reset is reported once, so each way reads its own conn.
		reset := func() net.Conn {
			a, b := tcpPair(t)
			t.Cleanup(func() { b.Close() })
			a.(*net.TCPConn).SetLinger(0)
			b.Write([]byte{0}) // unread when a closes: a sends a reset
			a.Close()
			return b
		}
		raw := reset()
		c := jsonconn.New(reset(), nil)
		var want, got error
		for want == nil { // the byte the reset overtook, if it arrived
			_, want = raw.Read(make([]byte, 16))
		}
		_, got = c.ReadMessage()
		if !errors.Is(want, syscall.ECONNRESET) {
			t.Fatalf("the conn's Read returned %v, want a reset", want)
		}
		if !errors.Is(got, syscall.ECONNRESET) || errType(got) != errType(want) {
			t.Fatalf("ReadMessage returned %q (%s), want a reset like the conn's Read: %q (%s)", got, errType(got), want, errType(want))
		}
		// The addresses are the conn's.
		norm := func(err error, c net.Conn) string {
			return strings.NewReplacer(c.LocalAddr().String(), "LOCAL", c.RemoteAddr().String(), "REMOTE").Replace(err.Error())
		}
		if g, w := norm(got, c.NetConn()), norm(want, raw); g != w {
			t.Errorf("ReadMessage returned %q, the conn's Read %q", g, w)
		}
	})
}

// errType describes the chain of error types that callers inspect.
func errType(err error) string {
	var b bytes.Buffer
	for err != nil {
		b.WriteString(reflectType(err))
		b.WriteString(" ")
		err = errors.Unwrap(err)
	}
	return b.String()
}

func reflectType(err error) string {
	if oe, ok := err.(*net.OpError); ok {
		return "*net.OpError{" + oe.Op + " " + oe.Net + "}"
	}
	return fmt.Sprintf("%T", err)
}

// TestConnBlockedOnSocketHoldsNoBuffer checks that Conns blocked reading a
// quiet socket hold no read buffer: the buffer is taken only once bytes have
// arrived.
func TestConnBlockedOnSocketHoldsNoBuffer(t *testing.T) {
	const pairs = 64
	raw := make([][2]net.Conn, pairs)
	for i := range raw {
		a, b := tcpPair(t)
		if i%2 == 1 {
			a, b = unixPair(t)
		}
		raw[i] = [2]net.Conn{a, b}
	}
	start := liveHeap()
	var clients, servers []*jsonconn.Conn
	for _, r := range raw {
		ca, cb := jsonconn.New(r[0], nil), jsonconn.New(r[1], nil)
		t.Cleanup(func() { ca.Close(); cb.Close() })
		clients, servers = append(clients, ca), append(servers, cb)
		// One message first, so that a buffer has been taken and given
		// back.
		if err := ca.Send(1); err != nil {
			t.Fatal(err)
		}
		if err := cb.Receive(new(int)); err != nil {
			t.Fatal(err)
		}
	}
	before, idle := liveHeap(), ioWaiting()
	perConn := (before - start) / (2 * pairs)
	t.Logf("an idle Conn reading its socket directly holds %d bytes of heap beyond its wrapped conn", perConn)
	// About 900-1,000 bytes on amd64; a 512-byte read pad would take it
	// past 1,400.
	if perConn > 1280 {
		t.Errorf("an idle Conn reading its socket directly holds %d bytes, want at most 1,280 (no read pad)", perConn)
	}
	done := make(chan error, pairs)
	for _, b := range servers {
		go func() { done <- b.Receive(new(any)) }()
	}
	// Wait until every reader is parked in the poller.
	for deadline := time.Now().Add(30 * time.Second); ioWaiting() < idle+pairs; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d readers blocked on the network after 30s", ioWaiting()-idle, pairs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waiting := (liveHeap() - before) / pairs
	t.Logf("a Conn with a reader blocked on its socket holds %d bytes of heap", waiting)
	if waiting > 4<<10 {
		t.Errorf("a Conn blocked reading holds %d bytes, want under 4 KiB (a read buffer is %d)", waiting, jsonconn.ReadBufferSize)
	}
	closeAndAwaitEOF(t, clients, done)
	runtime.KeepAlive(servers)
}

// ioWaiting returns how many goroutines are blocked in the network poller.
func ioWaiting() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "[IO wait")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestConnSocketReadDoesNotAllocate reads each message with the buffer
// drained, so that every one is read from the socket directly.
func TestConnSocketReadDoesNotAllocate(t *testing.T) {
	for _, tr := range []transport{{"tcp", tcpPair}, {"unix", unixPair}} {
		a, b := tr.pair(t)
		c := jsonconn.New(b, nil)
		if !c.ReadsSocket() {
			t.Fatalf("%s: the Conn does not read the socket directly", tr.name)
		}
		small := frames(`{"id":1,"name":"small message","tags":["a","b"]}`)
		large := frames(`[` + strings.Repeat("1,", 2000) + `1]`)
		buf := make([]byte, 0, 8<<10)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			frame := small
			if i++; i%2 == 0 {
				frame = large
			}
			if _, err := a.Write(frame); err != nil {
				t.Fatal(err)
			}
			var err error
			if buf, err = c.AppendMessage(buf[:0]); err != nil {
				t.Fatal(err)
			}
		})
		a.Close()
		c.Close()
		if allocs != 0 {
			t.Errorf("%s: AppendMessage allocated %.1f times per message, want 0", tr.name, allocs)
		}
	}
}

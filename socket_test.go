//go:build unix

package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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
	// closed returns both ends of a pair, closed when the test ends.
	closed := func(a, b net.Conn) (net.Conn, net.Conn) {
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	tcpA, tcpB := closed(tcpPair(t))
	unixA, _ := closed(unixPair(t))
	pipeA, _ := closed(net.Pipe())
	tlsA, _ := closed(tlsPair(t))
	// How a Conn reads: straight from the socket, into a pad first, or not
	// at all (a socket that keeps message boundaries).
	const (
		direct = "direct"
		pad    = "pad"
		none   = "refused"
	)
	type sockCase struct {
		name string
		conn net.Conn
		want string
	}
	cases := []sockCase{
		{"tcp", tcpA, direct},
		{"unix", unixA, direct},
		{"pipe", pipeA, pad},
		{"tls", tlsA, pad},
		{"unixgram", unixgramConn(t), none},
		{"embedded tcp", embeddedTCP{tcpB.(*net.TCPConn)}, pad},
	}
	switch runtime.GOOS {
	case "aix", "android", "darwin", "ios":
		// No SOCK_SEQPACKET in the Unix domain (as in net's own tests).
	default:
		packetA, _ := closed(unixNetPair(t, "unixpacket"))
		cases = append(cases, sockCase{"unixpacket", packetA, none})
	}
	for _, tc := range cases {
		c := jsonconn.New(tc.conn, nil)
		got := none
		switch {
		case c.ReadsSocket() && c.HasReadPad():
			got = "both"
		case c.ReadsSocket():
			got = direct
		case c.HasReadPad():
			got = pad
		}
		if got != tc.want {
			t.Errorf("%s: the Conn reads %s, want %s", tc.name, got, tc.want)
		}
	}
}

// unixgramConn returns a bound Unix datagram socket.
func unixgramConn(t *testing.T) net.Conn {
	t.Helper()
	dir, err := os.MkdirTemp("", "jc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "g"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestConnSocketReadErrorsAreTheConns checks that reading a socket directly
// returns the errors that the conn's own Read returns, so that callers who
// inspect them (for a timeout, net.ErrClosed, a reset) see no difference.
// Each case happens once to a conn read by its own Read and once to a Conn
// reading its socket directly, with the read blocked in the poller where
// the case allows.
func TestConnSocketReadErrorsAreTheConns(t *testing.T) {
	t.Parallel()
	for _, tr := range []transport{{"tcp", tcpPair}, {"unix", unixPair}} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name  string
				setup func(raw net.Conn)
			}{
				{"past deadline", func(raw net.Conn) { raw.SetReadDeadline(time.Now().Add(-time.Second)) }},
				{"deadline while blocked", func(raw net.Conn) { raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) }},
				{"deadline moved into the past while blocked", func(raw net.Conn) {
					time.AfterFunc(20*time.Millisecond, func() { raw.SetReadDeadline(time.Now().Add(-time.Second)) })
				}},
				{"closed", func(raw net.Conn) { raw.Close() }},
				{"closed while blocked", func(raw net.Conn) { time.AfterFunc(20*time.Millisecond, func() { raw.Close() }) }},
			} {
				// The peers stay open: only the case ends each read.
				peer, plain := tr.pair(t)
				defer peer.Close()
				defer plain.Close()
				tc.setup(plain)
				_, want := plain.Read(make([]byte, 16))

				peer, raw := tr.pair(t)
				defer peer.Close()
				defer raw.Close()
				c := jsonconn.New(raw, nil)
				if !c.ReadsSocket() {
					t.Fatal("the Conn does not read the socket directly")
				}
				tc.setup(raw)
				_, got := c.ReadMessage()
				if want == nil || got == nil || errType(got) != errType(want) || sansAddrs(got, raw) != sansAddrs(want, plain) {
					t.Errorf("%s: ReadMessage returned %q (%s), the conn's Read %q (%s)", tc.name, got, errType(got), want, errType(want))
				}
				if errors.Is(want, os.ErrDeadlineExceeded) != errors.Is(got, os.ErrDeadlineExceeded) || errors.Is(want, net.ErrClosed) != errors.Is(got, net.ErrClosed) {
					t.Errorf("%s: ReadMessage returned %v, which matches os.ErrDeadlineExceeded and net.ErrClosed unlike the conn's Read's %v", tc.name, got, want)
				}
			}

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
		_, want := raw.Read(make([]byte, 16))
		_, got := c.ReadMessage()
		if !errors.Is(want, syscall.ECONNRESET) {
			t.Fatalf("the conn's Read returned %v, want a reset", want)
		}
		if !errors.Is(got, syscall.ECONNRESET) || errType(got) != errType(want) {
			t.Fatalf("ReadMessage returned %q (%s), want a reset like the conn's Read: %q (%s)", got, errType(got), want, errType(want))
		}
		if g, w := sansAddrs(got, c.NetConn()), sansAddrs(want, raw); g != w {
			t.Errorf("ReadMessage returned %q, the conn's Read %q", g, w)
		}
	})
}

// sansAddrs returns the text of err with c's addresses replaced by
// placeholders, so that the errors of two conns can be compared.
func sansAddrs(err error, c net.Conn) string {
	if err == nil {
		return ""
	}
	return strings.NewReplacer(c.LocalAddr().String(), "LOCAL", c.RemoteAddr().String(), "REMOTE").Replace(err.Error())
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
	// Not parallel: it reads the process-wide heap.
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
	before := liveHeap()
	perConn := (before - start) / (2 * pairs)
	t.Logf("an idle Conn reading its socket directly holds %d bytes of heap beyond its wrapped conn", perConn)
	// About 900-1,000 bytes on 64-bit platforms and 500 on 32-bit; a
	// 512-byte read pad would add as much again.
	limit := int64(1280)
	if strconv.IntSize == 32 {
		limit = 768
	}
	if perConn > limit {
		t.Errorf("an idle Conn reading its socket directly holds %d bytes, want at most %d (no read pad)", perConn, limit)
	}
	done := make(chan error, pairs)
	for _, b := range servers {
		go func() { done <- b.Receive(new(any)) }()
	}
	// Wait until every reader is parked in the poller.
	for deadline := time.Now().Add(30 * time.Second); parkedSocketReads() < pairs; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d readers blocked on the network after 30s", parkedSocketReads(), pairs)
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

// parkedSocketReads returns how many goroutines are blocked in the network
// poller in a Conn's direct read of its socket.
func parkedSocketReads() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		parked := 0
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, "jsonconn.(*sockSource).read(") {
				parked++
			}
		}
		return parked
	}
}

// TestConnSocketReadDoesNotAllocate reads each message with the buffer
// drained, so that every one is read from the socket directly: once with
// the message there before the read, and once with the read blocked in the
// poller until the message arrives. Under the race detector, which makes
// sync.Pool drop buffers at random, it reads without counting.
func TestConnSocketReadDoesNotAllocate(t *testing.T) {
	small := frames(`{"id":1,"name":"small message","tags":["a","b"]}`)
	large := frames(`[` + strings.Repeat("1,", 2000) + `1]`)
	for _, tr := range []transport{{"tcp", tcpPair}, {"unix", unixPair}} {
		for _, size := range []struct {
			name  string
			frame []byte
		}{{"small", small}, {"4KiB", large}} {
			a, b := tr.pair(t)
			c := jsonconn.New(b, nil)
			t.Cleanup(func() { a.Close(); c.Close() })
			if !c.ReadsSocket() {
				t.Fatalf("%s: the Conn does not read the socket directly", tr.name)
			}
			buf := make([]byte, 0, 8<<10)
			read := func() {
				var err error
				if buf, err = c.AppendMessage(buf[:0]); err != nil {
					t.Fatal(err)
				}
			}
			arrived := testing.AllocsPerRun(500, func() {
				if _, err := a.Write(size.frame); err != nil {
					t.Fatal(err)
				}
				read()
			})

			// A writer that waits for its cue: AllocsPerRun runs on one
			// P, so the reader gets to the poller before the writer runs.
			cue, werr := make(chan struct{}), make(chan error, 1)
			go func() {
				for range cue {
					if _, err := a.Write(size.frame); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()
			awaited := testing.AllocsPerRun(500, func() {
				cue <- struct{}{}
				read()
			})
			close(cue)
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if raceEnabled {
				// Reads still run, for the race detector; counts would
				// include the pool's random drops.
				continue
			}
			if arrived != 0 || awaited != 0 {
				t.Errorf("%s, %s messages: AppendMessage allocated %.0f times per message read at once and %.0f per message waited for, want 0",
					tr.name, size.name, arrived, awaited)
			}
		}
	}
}

// TestConnOverMessageSocketRefusesEveryCall: a socket that keeps message
// boundaries cannot carry frames, so every read and write of a Conn, Reader
// or Writer over one fails with errors.ErrUnsupported and sends nothing,
// while Close works as for any Conn.
func TestConnOverMessageSocketRefusesEveryCall(t *testing.T) {
	t.Parallel()
	pairs := map[string]func(t *testing.T) (c, peer net.Conn){
		"udp": func(t *testing.T) (net.Conn, net.Conn) {
			peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			c, err := net.DialUDP("udp", nil, peer.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			return c, peer
		},
		"unixgram": func(t *testing.T) (net.Conn, net.Conn) {
			return socketpair(t, syscall.SOCK_DGRAM)
		},
	}
	switch runtime.GOOS {
	case "aix", "android", "darwin", "ios":
	default:
		pairs["unixpacket"] = func(t *testing.T) (net.Conn, net.Conn) {
			return socketpair(t, syscall.SOCK_SEQPACKET)
		}
	}
	for name, pair := range pairs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			raw, peer := pair(t)
			defer raw.Close()
			defer peer.Close()
			raw.SetDeadline(time.Now().Add(hangTimeout)) // a read that waited would hang
			c := jsonconn.New(raw, nil)
			calls := map[string]func() error{
				"Write":         func() error { _, err := c.Write([]byte(`1`)); return err },
				"Send":          func() error { return c.Send(1) },
				"WriteBatch":    func() error { _, err := c.WriteBatch([][]byte{[]byte(`1`), []byte(`2`)}); return err },
				"Flush":         func() error { return c.Flush() },
				"Read":          func() error { _, err := c.Read(make([]byte, 8)); return err },
				"ReadMessage":   func() error { _, err := c.ReadMessage(); return err },
				"AppendMessage": func() error { _, err := c.AppendMessage(nil); return err },
				"Receive":       func() error { var v any; return c.Receive(&v) },
				"Reader":        func() error { _, err := jsonconn.NewReader(raw, nil).ReadMessage(); return err },
				"Writer":        func() error { _, err := jsonconn.NewWriter(raw, nil).Write([]byte(`1`)); return err },
			}
			for call, f := range calls {
				if err := f(); !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "byte stream") {
					t.Errorf("%s = %v, want an error matching errors.ErrUnsupported that says why", call, err)
				}
			}
			// Nothing went out: the first datagram the peer gets is this
			// marker.
			if _, err := raw.Write([]byte("marker")); err != nil {
				t.Fatal(err)
			}
			peer.SetReadDeadline(time.Now().Add(hangTimeout))
			buf := make([]byte, 64)
			if n, err := peer.Read(buf); err != nil || string(buf[:n]) != "marker" {
				t.Fatalf("the peer received %q, %v; want only the marker", buf[:n], err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close = %v", err)
			}
			if _, err := c.Write([]byte(`1`)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
			}
		})
	}
}

// socketpair returns both ends of a connected pair of Unix sockets of type
// typ, closed when the test ends.
func socketpair(t *testing.T, typ int) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	return conns[0], conns[1]
}

// TestConnParkedMidFrameHoldsWhatArrived checks the memory policy for a
// stream socket on a Unix system, read directly: a Conn parked on the k
// bytes it has of a frame announcing 256 KiB holds a buffer of fewer than
// 2k bytes (24 at least, as the runtime allocates 20), as the live heap
// shows.
func TestConnParkedMidFrameHoldsWhatArrived(t *testing.T) {
	// Not parallel: it reads the process-wide heap.
	const pairs = 256
	// The first rounds warm the runtime up (goroutine descriptors, poller
	// state), which later rounds reuse; they are not measured.
	const warmups = 2
	for round, k := range []int{0, 0, 0, 1, 100, 1000, 20 << 10, 100 << 10} {
		raw := make([][2]net.Conn, pairs)
		for i := range raw {
			a, b := tcpPair(t)
			raw[i] = [2]net.Conn{a, b}
		}
		conns := make([]*jsonconn.Conn, pairs)
		for i, r := range raw {
			conns[i] = jsonconn.New(r[1], nil)
			if !conns[i].ReadsSocket() {
				t.Fatal("the Conn does not read its socket directly")
			}
		}
		before := liveHeap()
		frame := append(binary.BigEndian.AppendUint32(nil, jsonconn.DefaultMaxFrameSize), bytes.Repeat([]byte(" "), k)...)
		done := make(chan error, pairs)
		for i, c := range conns {
			if _, err := raw[i][0].Write(frame); err != nil {
				t.Fatal(err)
			}
			go func() { _, err := c.ReadMessage(); done <- err }()
		}
		waitUntil(t, fmt.Sprintf("%d readers parked", pairs), func() bool { return parkedSocketReads() >= pairs })
		perConn := (liveHeap() - before) / pairs
		// The buffer, its pooled box (24 bytes), the reading goroutine's
		// closure, and slack.
		limit := int64(max(24, 2*(4+k)) + 96)
		if round >= warmups {
			t.Logf("parked on %d bytes of a frame: %d bytes of heap per Conn (limit %d)", 4+k, perConn, limit)
		}
		if round >= warmups && perConn > limit {
			t.Errorf("parked on %d bytes of a frame, a Conn holds %d bytes more than idle, want at most %d", 4+k, perConn, limit)
		}
		for i, c := range conns {
			raw[i][0].Close()
			if err := await(t, done); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("after the peer closed: %v, want io.ErrUnexpectedEOF", err)
			}
			c.Close()
		}
	}
}

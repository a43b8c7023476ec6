package haproxy_test

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/haproxy"
	proxyproto "github.com/pires/go-proxyproto"
)

// listeners are the two ways a backend listens: on a bare socket, and
// through go-proxyproto (trusting 127.0.0.2, whose clients send a header).
var listeners = []struct {
	name   string
	listen func() (*jsonconn.Listener, error)
	from   net.IP
}{
	{"bare", func() (*jsonconn.Listener, error) { return jsonconn.Listen("tcp", "127.0.0.1:0", nil) }, net.IPv4(127, 0, 0, 1)},
	{"proxyproto", func() (*jsonconn.Listener, error) { return haproxy.Listen("127.0.0.1:0", net.IPv4(127, 0, 0, 2)) }, net.IPv4(127, 0, 0, 2)},
}

// connect dials ln from ip and, for the proxyproto listener, sends a PROXY
// v2 header first.
func connect(b *testing.B, ln net.Listener, ip net.IP, proxied bool) net.Conn {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	if proxied {
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 40000}, c.RemoteAddr())
		if _, err := h.WriteTo(c); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// liveHeap returns the bytes of live heap after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// parkedReads returns how many goroutines wait on the network in a read.
func parkedReads() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[IO wait") && strings.Contains(g, "Read") {
			n++
		}
	}
	return n
}

// BenchmarkParkedPeer measures the heap a served connection holds while its
// peer has sent only a frame header announcing the cap and waits: on a bare
// socket, where the Conn reads the socket directly and holds only what
// arrived, and through go-proxyproto's Conn, which is not a socket, so a
// read must be given a buffer to block in. It reports bytes of live heap per peer, beyond
// what an idle connection holds (B/peer).
func BenchmarkParkedPeer(b *testing.B) {
	const peers = 200
	header := binary.BigEndian.AppendUint32(nil, jsonconn.DefaultMaxFrameSize)
	for _, l := range listeners {
		b.Run(l.name, func(b *testing.B) {
			var total int64
			for range b.N {
				ln, err := l.listen()
				if err != nil {
					b.Fatal(err)
				}
				accepted := make(chan *jsonconn.Conn, peers)
				go func() {
					for {
						c, err := ln.AcceptConn()
						if err != nil {
							return
						}
						accepted <- c
					}
				}()
				base := parkedReads()
				clients := make([]net.Conn, peers)
				served := make([]*jsonconn.Conn, peers)
				for i := range clients {
					clients[i] = connect(b, ln, l.from, l.name == "proxyproto")
					served[i] = <-accepted
				}
				// Idle: every served Conn has accepted, none has read.
				before := liveHeap()
				done := make(chan error, peers)
				for i, c := range served {
					clients[i].Write(header)
					go func() { _, err := c.ReadMessage(); done <- err }()
				}
				for deadline := time.Now().Add(hang); parkedReads() < base+peers; {
					if time.Now().After(deadline) {
						b.Fatalf("only %d of %d reads parked", parkedReads()-base, peers)
					}
					time.Sleep(time.Millisecond)
				}
				total += liveHeap() - before
				for i := range clients {
					clients[i].Close()
					<-done
					served[i].Close()
				}
				ln.Close()
			}
			b.ReportMetric(float64(total)/float64(b.N*peers), "B/peer")
		})
	}
}

// BenchmarkWrite measures a served Conn's writes of 1 KiB messages on a bare
// socket, where it writes the socket directly (writev for a batch), and
// through go-proxyproto's Conn, which is not a socket to jsonconn: one
// message per Write, and batches of 64 with WriteBatch.
func BenchmarkWrite(b *testing.B) {
	msg := []byte(`"` + strings.Repeat("w", 1022) + `"`)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = msg
	}
	for _, bc := range []struct {
		name string
		n    int // messages per call
	}{{"one", 1}, {"batch64", 64}} {
		for _, l := range listeners {
			b.Run(bc.name+"/"+l.name, func(b *testing.B) { benchmarkWrite(b, l.listen, l.from, l.name == "proxyproto", batch[:bc.n]) })
		}
	}
}

// benchmarkWrite writes batch (one message: Write; more: WriteBatch) b.N
// times on a Conn served by the listener listen makes, to a client from
// ip that reads and discards.
func benchmarkWrite(b *testing.B, listen func() (*jsonconn.Listener, error), ip net.IP, proxied bool, batch [][]byte) {
	ln, err := listen()
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client := connect(b, ln, ip, proxied)
	defer client.Close()
	served, err := ln.AcceptConn()
	if err != nil {
		b.Fatal(err)
	}
	defer served.Close()
	// go-proxyproto reads the header on the first use; take it before the
	// clock starts.
	served.RemoteAddr()
	read := make(chan int64, 1)
	go func() { n, _ := io.Copy(io.Discard, client); read <- n }()
	size := len(batch[0])
	b.SetBytes(int64(len(batch) * size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if len(batch) == 1 {
			_, err = served.Write(batch[0])
		} else {
			_, err = served.WriteBatch(batch)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	served.Close()
	if n, want := <-read, int64(b.N*len(batch)*(size+4)); n != want {
		b.Fatalf("the client read %d bytes, want %d", n, want)
	}
}

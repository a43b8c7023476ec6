package jsonconn_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/jsonconn/jsonconn"
)

// The benchmarks move messages over loopback TCP from a writing goroutine to
// the benchmark goroutine, which reads b.N messages. Each compares jsonconn
// with hand-written code doing the same work, in the same run:
//
//	go test -run '^$' -bench . -benchmem -count 6 | benchstat -col /impl -
//
// Sub-benchmark names are size=…/impl=…, so benchstat puts the implementations
// side by side per size with the ratio to the first (the baseline).

// benchItem is one element of the larger messages.
type benchItem struct {
	ID    int64    `json:"id"`
	Name  string   `json:"name"`
	Email string   `json:"email"`
	Tags  []string `json:"tags"`
	Score float64  `json:"score"`
}

// benchMsg is the message type: small is about 120 bytes of JSON.
type benchMsg struct {
	Kind  string      `json:"kind"`
	Seq   int64       `json:"seq"`
	Item  benchItem   `json:"item"`
	Items []benchItem `json:"items,omitempty"`
}

type benchSize struct {
	name    string
	msg     benchMsg
	payload []byte // compact JSON of msg
}

func makeBenchSize(name string, items int) benchSize {
	item := func(i int) benchItem {
		return benchItem{ID: int64(1000 + i), Name: fmt.Sprintf("user %d", i), Email: fmt.Sprintf("user%d@example.com", i), Tags: []string{"alpha", "beta"}, Score: float64(i) * 1.25}
	}
	m := benchMsg{Kind: "update", Seq: 42, Item: item(0)}
	for i := 1; i <= items; i++ {
		m.Items = append(m.Items, item(i))
	}
	p, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return benchSize{name, m, p}
}

var benchSizes = []benchSize{
	makeBenchSize("small", 0),     // ~120 B
	makeBenchSize("4KiB", 33),     // ~4 KiB of many short fields
	makeTextSize("4KiBtext"),      // ~4 KiB, mostly one text field
	makeBenchSize("200KiB", 1750), // ~200 KiB
}

// makeTextSize returns a message of about 4 KiB whose bulk is prose in one
// string, with a few escapes, like a chat message or a log record: the other
// common shape of real JSON, where strings dominate.
func makeTextSize(name string) benchSize {
	var text []byte
	for i := 0; len(text) < 3900; i++ {
		text = fmt.Appendf(text, "Paragraph %d: the \"quick\" brown fox jumps over the lazy dog, then rests.\n", i)
	}
	m := benchMsg{Kind: "note", Seq: 42, Item: benchItem{ID: 7, Name: string(text), Email: "author@example.com", Tags: []string{"text"}}}
	p, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return benchSize{name, m, p}
}

// benchConns returns a connected loopback TCP pair.
func benchConns(b *testing.B) (w, r net.Conn) {
	b.Helper()
	w, r = tcpPair(b)
	b.Cleanup(func() { w.Close(); r.Close() })
	return w, r
}

// stream runs write(n) in a goroutine and read(n) in the benchmark, for
// n = b.N messages of size bytes.
func stream(b *testing.B, size int, write, read func(n int) error) {
	b.Helper()
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	b.ResetTimer()
	go func() {
		defer wg.Done()
		werr = write(b.N)
	}()
	if err := read(b.N); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	if werr != nil {
		b.Fatal(werr)
	}
}

// handWriter writes length-prefixed frames the way a hand-written program
// does: one buffer with header and payload, one Write per message.
func handWriter(c net.Conn, payload []byte) func(n int) error {
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	frame = append(frame, payload...)
	return func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := c.Write(frame); err != nil {
				return err
			}
		}
		return nil
	}
}

// handReader reads frames with a bufio.Reader (the same 16 KiB that a
// jsonconn Reader uses) and io.ReadFull into a reused buffer.
func handReader(c net.Conn, validate bool) func(n int) error {
	br := bufio.NewReaderSize(c, 16<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 256<<10)
	return func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := io.ReadFull(br, hdr[:]); err != nil {
				return err
			}
			size := binary.BigEndian.Uint32(hdr[:])
			if uint64(size) > jsonconn.DefaultMaxFrameSize {
				return fmt.Errorf("frame of %d bytes", size)
			}
			buf = buf[:size]
			if _, err := io.ReadFull(br, buf); err != nil {
				return err
			}
			if validate && !json.Valid(buf) {
				return fmt.Errorf("invalid JSON")
			}
		}
		return nil
	}
}

// BenchmarkBytes compares moving raw payloads: hand-written framing, with and
// without json.Valid, against jsonconn's AppendMessage and ReadMessage.
func BenchmarkBytes(b *testing.B) {
	for _, sz := range benchSizes {
		impls := []struct {
			name string
			run  func(b *testing.B)
		}{
			{"hand", func(b *testing.B) {
				w, r := benchConns(b)
				stream(b, len(sz.payload), handWriter(w, sz.payload), handReader(r, false))
			}},
			{"hand+Valid", func(b *testing.B) {
				w, r := benchConns(b)
				stream(b, len(sz.payload), handWriter(w, sz.payload), handReader(r, true))
			}},
			{"Append", func(b *testing.B) { benchAppend(b, sz.payload, false) }},
			{"Append+validate", func(b *testing.B) { benchAppend(b, sz.payload, true) }},
			{"ReadMessage", func(b *testing.B) {
				w, r := benchConns(b)
				jw := jsonconn.New(w, &jsonconn.Config{DisableValidation: true}) // as in benchAppend
				jr := jsonconn.New(r, nil)
				stream(b, len(sz.payload), jsonWrites(jw, sz.payload), func(n int) error {
					for i := 0; i < n; i++ {
						if _, err := jr.ReadMessage(); err != nil {
							return err
						}
					}
					return nil
				})
			}},
		}
		for _, impl := range impls {
			b.Run("size="+sz.name+"/impl="+impl.name, impl.run)
		}
	}
}

// jsonWrites writes payload n times with Conn.Write.
func jsonWrites(c *jsonconn.Conn, payload []byte) func(n int) error {
	return func(n int) error {
		for i := 0; i < n; i++ {
			if _, err := c.Write(payload); err != nil {
				return err
			}
		}
		return nil
	}
}

func benchAppend(b *testing.B, payload []byte, validate bool) {
	w, r := benchConns(b)
	// The sender does not validate, as the hand-written sender does not:
	// the comparison is of receiving, and on 2 cores a validating sender
	// would take CPU from the receiver.
	jw := jsonconn.New(w, &jsonconn.Config{DisableValidation: true})
	jr := jsonconn.New(r, &jsonconn.Config{DisableValidation: !validate})
	buf := make([]byte, 0, 256<<10)
	stream(b, len(payload), jsonWrites(jw, payload), func(n int) error {
		for i := 0; i < n; i++ {
			var err error
			if buf, err = jr.AppendMessage(buf[:0]); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkObjects compares Go values in and out: newline-delimited JSON
// with encoding/json's Encoder and Decoder against Send and Receive.
func BenchmarkObjects(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run("size="+sz.name+"/impl=NDJSON", func(b *testing.B) {
			w, r := benchConns(b)
			enc, dec := json.NewEncoder(w), json.NewDecoder(r)
			stream(b, len(sz.payload), func(n int) error {
				for i := 0; i < n; i++ {
					if err := enc.Encode(&sz.msg); err != nil {
						return err
					}
				}
				return nil
			}, func(n int) error {
				for i := 0; i < n; i++ {
					var m benchMsg
					if err := dec.Decode(&m); err != nil {
						return err
					}
				}
				return nil
			})
		})
		b.Run("size="+sz.name+"/impl=SendReceive", func(b *testing.B) {
			w, r := benchConns(b)
			jw, jr := jsonconn.New(w, nil), jsonconn.New(r, nil)
			stream(b, len(sz.payload), func(n int) error {
				for i := 0; i < n; i++ {
					if err := jw.Send(&sz.msg); err != nil {
						return err
					}
				}
				return nil
			}, func(n int) error {
				for i := 0; i < n; i++ {
					var m benchMsg
					if err := jr.Receive(&m); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// BenchmarkConcurrentSenders has 8 goroutines writing small messages on one
// Conn, against one goroutine doing the same total.
func BenchmarkConcurrentSenders(b *testing.B) {
	sz := benchSizes[0]
	for _, senders := range []int{1, 8} {
		b.Run(fmt.Sprintf("size=%s/impl=senders%d", sz.name, senders), func(b *testing.B) {
			w, r := benchConns(b)
			jw, jr := jsonconn.New(w, nil), jsonconn.New(r, &jsonconn.Config{DisableValidation: true})
			buf := make([]byte, 0, 4<<10)
			stream(b, len(sz.payload), func(n int) error {
				var wg sync.WaitGroup
				errs := make(chan error, senders)
				for s := 0; s < senders; s++ {
					share := n / senders
					if s == 0 {
						share += n % senders
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := jsonWrites(jw, sz.payload)(share); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				return <-errs
			}, func(n int) error {
				for i := 0; i < n; i++ {
					var err error
					if buf, err = jr.AppendMessage(buf[:0]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// BenchmarkPingPong measures a round trip of a small message: the benchmark
// sends, an echo goroutine answers, the benchmark reads the answer.
func BenchmarkPingPong(b *testing.B) {
	sz := benchSizes[0]
	b.Run("size=small/impl=hand", func(b *testing.B) {
		w, r := benchConns(b)
		go func() { // echo
			br := bufio.NewReaderSize(r, 16<<10)
			buf := make([]byte, 4<<10)
			for {
				if _, err := io.ReadFull(br, buf[:4]); err != nil {
					return
				}
				n := binary.BigEndian.Uint32(buf)
				if uint64(n) > uint64(len(buf)-4) {
					return // not a frame this benchmark sends
				}
				if _, err := io.ReadFull(br, buf[4:4+n]); err != nil {
					return
				}
				if _, err := r.Write(buf[:4+n]); err != nil {
					return
				}
			}
		}()
		send := handWriter(w, sz.payload)
		recv := handReader(w, false)
		b.SetBytes(int64(len(sz.payload)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := send(1); err != nil {
				b.Fatal(err)
			}
			if err := recv(1); err != nil {
				b.Fatal(err)
			}
		}
	})
	// jsonconn does the hand-written code's work with validation off, and
	// more with it on: each message is validated when sent and received.
	for _, validate := range []bool{false, true} {
		name := "jsonconn"
		if validate {
			name = "jsonconn+validate"
		}
		b.Run("size=small/impl="+name, func(b *testing.B) {
			w, r := benchConns(b)
			cfg := &jsonconn.Config{DisableValidation: !validate}
			jw, jr := jsonconn.New(w, cfg), jsonconn.New(r, cfg)
			go func() { // echo
				buf := make([]byte, 0, 4<<10)
				for {
					var err error
					if buf, err = jr.AppendMessage(buf[:0]); err != nil {
						return
					}
					if _, err := jr.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 0, 4<<10)
			b.SetBytes(int64(len(sz.payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := jw.Write(sz.payload); err != nil {
					b.Fatal(err)
				}
				var err error
				if buf, err = jw.AppendMessage(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkValidate compares the package's validator with json.Valid on the
// benchmark payloads.
func BenchmarkValidate(b *testing.B) {
	for _, sz := range benchSizes {
		for _, impl := range []struct {
			name  string
			valid func([]byte) bool
		}{{"json.Valid", json.Valid}, {"jsonconn", jsonconn.Valid}} {
			b.Run("size="+sz.name+"/impl="+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(sz.payload)))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if !impl.valid(sz.payload) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}

// BenchmarkBatch sends small messages one Write each against WriteBatch in
// batches of 16 (one writev each), per message.
func BenchmarkBatch(b *testing.B) {
	sz := benchSizes[0]
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("size=%s/impl=batch%d", sz.name, batch), func(b *testing.B) {
			w, r := benchConns(b)
			cfg := &jsonconn.Config{DisableValidation: true}
			jw, jr := jsonconn.New(w, cfg), jsonconn.New(r, cfg)
			msgs := make([][]byte, batch)
			for i := range msgs {
				msgs[i] = sz.payload
			}
			buf := make([]byte, 0, 4<<10)
			stream(b, len(sz.payload), func(n int) error {
				for n > 0 {
					k := min(n, batch)
					if _, err := jw.WriteBatch(msgs[:k]); err != nil {
						return err
					}
					n -= k
				}
				return nil
			}, func(n int) error {
				for i := 0; i < n; i++ {
					var err error
					if buf, err = jr.AppendMessage(buf[:0]); err != nil {
						return err
					}
				}
				return nil
			})
		})
	}
}

// BenchmarkWriteCall compares ways of sending one frame over loopback TCP to
// a peer that drains everything: hand-written code writing a frame built
// beforehand with write(2), writev of header and payload, and Conn.Write,
// which uses writev on sockets. It is the measurement behind keeping writev
// rather than copying small frames behind their header (docs/design.md).
func BenchmarkWriteCall(b *testing.B) {
	for _, sz := range benchSizes {
		send := func(b *testing.B, write func(w net.Conn, n int) error) {
			w, r := benchConns(b)
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, r); close(drained) }()
			b.SetBytes(int64(len(sz.payload)))
			b.ReportAllocs()
			b.ResetTimer()
			if err := write(w, b.N); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			w.Close()
			<-drained
		}
		b.Run("size="+sz.name+"/impl=hand", func(b *testing.B) {
			send(b, func(w net.Conn, n int) error { return handWriter(w, sz.payload)(n) })
		})
		b.Run("size="+sz.name+"/impl=writev", func(b *testing.B) {
			send(b, func(w net.Conn, n int) error {
				hdr := binary.BigEndian.AppendUint32(nil, uint32(len(sz.payload)))
				// Declared once: WriteTo consumes bufs, which escapes.
				var iov [2][]byte
				var bufs net.Buffers
				for i := 0; i < n; i++ {
					iov = [2][]byte{hdr, sz.payload}
					bufs = iov[:]
					if _, err := bufs.WriteTo(w); err != nil {
						return err
					}
				}
				return nil
			})
		})
		b.Run("size="+sz.name+"/impl=jsonconn", func(b *testing.B) {
			send(b, func(w net.Conn, n int) error {
				return jsonWrites(jsonconn.New(w, &jsonconn.Config{DisableValidation: true}), sz.payload)(n)
			})
		})
	}
}

// discardConn is a net.Conn whose writes go nowhere, for measuring the cost
// of a write call without the system call.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkContext measures what a context costs a call, in memory so that
// no system call hides it: Send and Receive, the context calls with
// context.Background (which must be the plain calls), and the context calls
// with a ctx that can end (and does not).
func BenchmarkContext(b *testing.B) {
	sz := benchSizes[0]
	a, peer := net.Pipe()
	defer a.Close()
	defer peer.Close()
	bg := context.Background()
	cancellable, cancel := context.WithCancel(bg)
	defer cancel()
	calls := []struct {
		name string
		ctx  context.Context // nil for the plain calls
	}{{"plain", nil}, {"Background", bg}, {"cancellable", cancellable}}
	for _, call := range calls {
		b.Run("size=small/impl=Receive/ctx="+call.name, func(b *testing.B) {
			r := jsonconn.New(loopConn{Conn: a, src: &loopReader{data: frame(string(sz.payload))}}, nil)
			b.SetBytes(int64(len(sz.payload)))
			b.ReportAllocs()
			var m benchMsg
			for i := 0; i < b.N; i++ {
				var err error
				if call.ctx == nil {
					err = r.Receive(&m)
				} else {
					err = r.ReceiveContext(call.ctx, &m)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("size=small/impl=Send/ctx="+call.name, func(b *testing.B) {
			w := jsonconn.New(discardConn{a}, nil)
			b.SetBytes(int64(len(sz.payload)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var err error
				if call.ctx == nil {
					err = w.Send(&sz.msg)
				} else {
					err = w.SendContext(call.ctx, &sz.msg)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientPingPong measures a round trip of a small message through
// a Client against the same through a Conn's context calls, over TCP
// loopback to the same echo server, each with a cancellable ctx and with
// context.Background.
func BenchmarkClientPingPong(b *testing.B) {
	sz := benchSizes[0]
	srv := &jsonconn.Server{Handler: appendEcho}
	ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ctx := range []struct {
		name string
		ctx  context.Context
	}{{"Background", context.Background()}, {"cancellable", cancellable}} {
		type pinger interface {
			SendContext(context.Context, any) error
			ReceiveContext(context.Context, any) error
		}
		run := func(b *testing.B, p pinger) {
			b.SetBytes(int64(len(sz.payload)))
			b.ReportAllocs()
			var m benchMsg
			for i := 0; i < b.N; i++ {
				if err := p.SendContext(ctx.ctx, &sz.msg); err != nil {
					b.Fatal(err)
				}
				if err := p.ReceiveContext(ctx.ctx, &m); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run("size=small/impl=Conn/ctx="+ctx.name, func(b *testing.B) {
			c, err := jsonconn.Dial("tcp", ln.Addr().String(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			run(b, c)
		})
		b.Run("size=small/impl=Client/ctx="+ctx.name, func(b *testing.B) {
			cl := &jsonconn.Client{Address: ln.Addr().String()}
			defer cl.Close()
			if err := cl.SendContext(context.Background(), &sz.msg); err != nil { // dial first
				b.Fatal(err)
			}
			if err := cl.ReceiveContext(context.Background(), new(benchMsg)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			run(b, cl)
		})
	}
}

package jsonconn_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jsonconn/jsonconn"
)

// hangTimeout only catches hangs; nothing in these tests should come near it.
const hangTimeout = 20 * time.Second

// async runs f in a goroutine and returns a channel for its result.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

// await returns the result of an async call, failing the test on a hang.
func await(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(hangTimeout):
		t.Fatal("call did not return: hang")
		return nil
	}
}

// waitUntil polls cond until it holds, failing the test if it never does
// within 30 s: for conditions no channel can tell, such as the state of
// another goroutine or process.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

// checkTimeout fails unless err is a timeout in every form callers test.
func checkTimeout(t testing.TB, err error) {
	t.Helper()
	ne, ok := err.(net.Error)
	if !ok || !ne.Timeout() {
		t.Fatalf("got %T %v, want a net.Error with Timeout() true", err, err)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want an error matching os.ErrDeadlineExceeded", err)
	}
}

type record struct {
	ID      int64             `json:"id"`
	Name    string            `json:"name"`
	Tags    []string          `json:"tags"`
	Attrs   map[string]string `json:"attrs"`
	Nested  *record           `json:"nested,omitempty"`
	Score   float64           `json:"score"`
	Payload json.RawMessage   `json:"payload"`
}

var records = []record{
	{ID: 1, Name: "plain", Tags: []string{"a"}, Attrs: map[string]string{"k": "v"}, Payload: json.RawMessage(`null`)},
	{ID: -9007199254740993, Name: "big negative", Tags: []string{}, Attrs: map[string]string{}, Score: -1.5e300, Payload: json.RawMessage(`[]`)},
	{ID: 3, Name: "unicode é 🙂 \u2028 \u2029 <&>", Payload: json.RawMessage(`{}`), Nested: &record{ID: 4, Name: "inner", Payload: json.RawMessage(`"x"`)}},
	{ID: 5, Name: strings.Repeat("long ", 20000), Payload: json.RawMessage(`[1,[2,[3,[4]]]]`)},
}

func TestConnSendReceive(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		sent := async(func() error {
			for _, r := range records {
				if err := a.Send(r); err != nil {
					return err
				}
			}
			return nil
		})
		for i, want := range records {
			var got record
			if err := b.Receive(&got); err != nil {
				t.Fatalf("Receive %d: %v", i, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("record %d (-want +got):\n%s", i, diff)
			}
		}
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnReadNeverSpansMessages(t *testing.T) {
	t.Parallel()
	msgs := []string{`{"a":1}`, `"second"`, `[` + strings.Repeat(`0,`, 3000) + `0]`}
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		sent := async(func() error {
			for _, m := range msgs {
				if _, err := a.Write([]byte(m)); err != nil {
					return err
				}
			}
			return nil
		})
		p := make([]byte, 1000)
		for _, want := range msgs {
			var got []byte
			for len(got) < len(want) {
				n, err := b.Read(p)
				if err != nil {
					t.Fatalf("Read: %v", err)
				}
				got = append(got, p[:n]...)
			}
			if string(got) != want {
				t.Fatalf("Reads returned %.40q..., want exactly one message %.40q...", got, want)
			}
		}
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnWithJSONEncoderAndDecoder(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		sent := async(func() error {
			enc := json.NewEncoder(a)
			for _, r := range records {
				if err := enc.Encode(r); err != nil {
					return err
				}
			}
			return nil
		})
		dec := json.NewDecoder(b)
		for i, want := range records {
			var got record
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("Decode %d: %v", i, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("record %d (-want +got):\n%s", i, diff)
			}
		}
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
	})
}

type Arith struct{}

type Args struct{ A, B int }

func (Arith) Multiply(args Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

func TestConnWithJSONRPC(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		srv := rpc.NewServer()
		if err := srv.Register(Arith{}); err != nil {
			t.Fatal(err)
		}
		go srv.ServeCodec(jsonrpc.NewServerCodec(b))
		client := jsonrpc.NewClient(a)
		defer client.Close()
		for i := 0; i < 20; i++ {
			var got int
			if err := client.Call("Arith.Multiply", Args{i, 7}, &got); err != nil {
				t.Fatal(err)
			}
			if got != i*7 {
				t.Fatalf("got %d, want %d", got, i*7)
			}
		}
	})
}

func TestConnRefusedMessageKeepsConnUsable(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, &jsonconn.Config{MaxFrameSize: 64})
		if n, err := a.Write([]byte(`{"not json"`)); n != 0 || !errors.Is(err, jsonconn.ErrInvalidJSON) {
			t.Fatalf("Write(invalid) = %d, %v", n, err)
		}
		if n, err := a.Write([]byte(`"` + strings.Repeat("x", 64) + `"`)); n != 0 || !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Fatalf("Write(too large) = %d, %v", n, err)
		}
		if err := a.Send(func() {}); err == nil {
			t.Fatal("Send(func) succeeded")
		}
		if err := a.Send(strings.Repeat("y", 100)); !errors.Is(err, jsonconn.ErrFrameTooLarge) {
			t.Fatalf("Send(too large) = %v", err)
		}
		sent := async(func() error { return a.Send("fine") })
		// The first thing the peer sees is the good message.
		if m, err := b.ReadMessage(); err != nil || string(m) != `"fine"` {
			t.Fatalf("peer got %q, %v; want %q", m, err, `"fine"`)
		}
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
	})
}

// rawPair returns a raw conn and a Conn wrapping the other end.
func rawPair(t testing.TB, tr transport, cfg *jsonconn.Config) (net.Conn, *jsonconn.Conn) {
	t.Helper()
	raw, other := tr.pair(t)
	c := jsonconn.New(other, cfg)
	t.Cleanup(func() {
		raw.Close()
		c.Close()
	})
	return raw, c
}

func TestConnReadDeadlineMidFrameLosesNothing(t *testing.T) {
	t.Parallel()
	msg := `{"split":"` + strings.Repeat("s", 5000) + `"}`
	wire := frame(msg)
	for _, tr := range transports {
		for _, cut := range []int{2, 4, 100, len(wire) - 1} {
			t.Run(fmt.Sprintf("%s/cut%d", tr.name, cut), func(t *testing.T) {
				t.Parallel()
				raw, c := rawPair(t, tr, nil)
				first := async(func() error { _, err := raw.Write(wire[:cut]); return err })
				// Time out until the first part has surely arrived (over
				// net.Pipe the write completes only once it is read).
				written := false
				for i := 0; !written || i < 2; i++ {
					if i > 1000 {
						t.Fatal("the first part never arrived")
					}
					c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
					m, err := c.ReadMessage()
					if err == nil {
						t.Fatalf("ReadMessage returned %q from half a frame", m)
					}
					checkTimeout(t, err)
					select {
					case err := <-first:
						if err != nil {
							t.Fatal(err)
						}
						written = true
					default:
					}
				}
				rest := async(func() error { _, err := raw.Write(wire[cut:]); return err })
				c.SetReadDeadline(time.Now().Add(hangTimeout))
				m, err := c.ReadMessage()
				if err != nil || string(m) != msg {
					t.Fatalf("after the deadline moved: got %.30q, %v; want the whole message", m, err)
				}
				if err := await(t, rest); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestConnWriteDeadlineBeforeAnyByte(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		a.SetWriteDeadline(time.Now().Add(-time.Second))
		n, err := a.Write([]byte(`"lost"`))
		checkTimeout(t, err)
		if n != 0 || errors.Is(err, jsonconn.ErrPending) {
			t.Fatalf("Write past the deadline = %d, %v; want 0 and a timeout without ErrPending", n, err)
		}
		err = a.Send("lost too")
		checkTimeout(t, err)
		if errors.Is(err, jsonconn.ErrPending) {
			t.Fatalf("Send past the deadline = %v; want no ErrPending", err)
		}
		if tr.name == "tls" {
			return // crypto/tls's write side is broken for good after a timeout
		}
		a.SetWriteDeadline(time.Time{})
		sent := async(func() error { return a.Send("kept") })
		if m, err := b.ReadMessage(); err != nil || string(m) != `"kept"` {
			t.Fatalf("peer got %q, %v; want %q", m, err, `"kept"`)
		}
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConnWriteDeadlineMidFrame stops a write after part of its frame left,
// deterministically: over net.Pipe the peer reads 10 bytes and then sets the
// writer's deadline in the past.
func TestConnWriteDeadlineMidFrame(t *testing.T) {
	t.Parallel()
	rawPeer, rawConn := net.Pipe()
	c := jsonconn.New(rawConn, nil)
	t.Cleanup(func() { c.Close(); rawPeer.Close() })

	msg := []byte(`{"committed":"` + strings.Repeat("c", 100) + `"}`)
	var n int
	written := async(func() (err error) { n, err = c.Write(msg); return err })
	head := make([]byte, 10)
	if _, err := io.ReadFull(rawPeer, head); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	err := await(t, written)
	checkTimeout(t, err)
	if n != len(msg) || !errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write stopped mid-frame = %d, %v; want %d and ErrPending", n, err, len(msg))
	}
	if want := 4 + len(msg) - 10; c.Pending() != want {
		t.Fatalf("Pending = %d, want %d", c.Pending(), want)
	}
	// The caller may reuse its buffer at once: the rest was copied.
	for i := range msg {
		msg[i] = 'X'
	}
	// While the deadline is past, nothing more goes out.
	if n, err := c.Write([]byte(`"next"`)); n != 0 || errors.Is(err, jsonconn.ErrPending) {
		t.Fatalf("Write past the deadline = %d, %v; want 0 and a plain timeout", n, err)
	}
	c.SetWriteDeadline(time.Time{})
	sent := async(func() error { _, err := c.Write([]byte(`"next"`)); return err })
	r := jsonconn.NewReader(io.MultiReader(strings.NewReader(string(head)), rawPeer), nil)
	for _, want := range []string{`{"committed":"` + strings.Repeat("c", 100) + `"}`, `"next"`} {
		m, err := r.ReadMessage()
		if err != nil || string(m) != want {
			t.Fatalf("peer got %.30q, %v; want %.30q", m, err, want)
		}
	}
	if err := await(t, sent); err != nil {
		t.Fatal(err)
	}
	if c.Pending() != 0 {
		t.Fatalf("Pending = %d after the rest went out", c.Pending())
	}
}

// TestConnWriteTimeoutKeepsStreamWhole floods a peer that is not reading until
// a write deadline strikes, then checks that the peer receives exactly the
// committed messages, whole and in order.
func TestConnWriteTimeoutKeepsStreamWhole(t *testing.T) {
	t.Parallel()
	for _, tr := range transports {
		if tr.name == "tls" {
			continue // crypto/tls's write side is broken for good after a timeout
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			a, b := connPair(t, tr, nil)
			pad := strings.Repeat("p", 32<<10)
			a.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			committed := 0
			var err error
			for ; committed < 4000; committed++ { // 128 MiB: far beyond any socket buffer
				if err = a.Send(seqMsg{committed, pad}); err != nil {
					break
				}
			}
			checkTimeout(t, err)
			pending := errors.Is(err, jsonconn.ErrPending)
			if pending {
				committed++
			}
			t.Logf("%d messages committed before the deadline (last one pending: %t)", committed, pending)
			finishSeq(t, a, b, 0, committed, pad)
		})
	}
}

// blockedCalls starts a ReadMessage and writes on a Conn over a raw conn of
// tr, which block in the raw conn because the peer neither writes nor reads
// (the socket buffers are filled first). It returns once both have started;
// the writes go on until one fails. Over TLS write is nil: crypto/tls fails
// every write after the first timeout, which filling the buffers takes.
func blockedCalls(t *testing.T, tr transport) (c *jsonconn.Conn, read, write <-chan error) {
	t.Helper()
	raw, peer := tr.pair(t)
	sc := &signalConn{Conn: raw, reads: make(chan struct{}, 1), writes: make(chan struct{}, 1)}
	c = jsonconn.New(sc, nil)
	t.Cleanup(func() { c.Close(); peer.Close() })

	read = async(func() error { _, err := c.ReadMessage(); return err })
	<-sc.reads
	if tr.name == "tls" {
		return c, read, nil
	}

	big := []byte(`"` + strings.Repeat("w", 64<<10) + `"`)
	for i := 0; ; i++ { // fill the buffers until a write times out
		if i > 10000 {
			t.Fatal("writes never blocked on a peer that does not read")
		}
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write(big); err != nil {
			checkTimeout(t, err)
			break
		}
	}
	c.SetWriteDeadline(time.Time{})
	select {
	case <-sc.writes:
	default:
	}
	write = async(func() error {
		for {
			if _, err := c.Write(big); err != nil {
				return err
			}
		}
	})
	<-sc.writes
	return c, read, write
}

// signalConn reports on its channels each Read and Write call as it starts.
type signalConn struct {
	net.Conn
	reads, writes chan struct{}
}

func (s *signalConn) Read(p []byte) (int, error) {
	select {
	case s.reads <- struct{}{}:
	default:
	}
	return s.Conn.Read(p)
}

func (s *signalConn) Write(p []byte) (int, error) {
	select {
	case s.writes <- struct{}{}:
	default:
	}
	return s.Conn.Write(p)
}

func TestConnPastDeadlineAbortsPendingCalls(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		c, read, write := blockedCalls(t, tr)
		c.SetReadDeadline(time.Now().Add(-time.Second))
		checkTimeout(t, await(t, read))
		if write != nil {
			c.SetWriteDeadline(time.Now().Add(-time.Second))
			checkTimeout(t, await(t, write))
		}
	})
}

func TestConnConcurrentWritersDoNotInterleave(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 8, 100
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		type msg struct {
			W, N int
			Pad  string
		}
		wait := concurrently(writers, perWriter, func(w, n int) error {
			// Sizes from tiny to larger than a socket write.
			return a.Send(msg{w, n, strings.Repeat(string(rune('a'+w)), (n*n*37)%(150<<10))})
		})
		next := make([]int, writers)
		for i := 0; i < writers*perWriter; i++ {
			var m msg
			if err := b.Receive(&m); err != nil {
				t.Fatalf("Receive %d: %v", i, err)
			}
			if m.N != next[m.W] || strings.Trim(m.Pad, string(rune('a'+m.W))) != "" {
				t.Fatalf("writer %d: got message %d, want %d intact", m.W, m.N, next[m.W])
			}
			next[m.W]++
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnConcurrentReadersGetWholeMessages(t *testing.T) {
	t.Parallel()
	const readers, total = 4, 400
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		sent := async(func() error {
			for i := 0; i < total; i++ {
				if err := a.Send(map[string]any{"i": i, "pad": strings.Repeat("r", i*97)}); err != nil {
					return err
				}
			}
			return a.Close() // the readers see io.EOF
		})
		var mu sync.Mutex
		var got []int
		var wg sync.WaitGroup
		for r := 0; r < readers; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var m struct {
						I   int
						Pad string
					}
					err := b.Receive(&m)
					if err == io.EOF {
						return
					}
					if err != nil {
						t.Errorf("Receive: %v", err)
						return
					}
					if len(m.Pad) != m.I*97 {
						t.Errorf("message %d arrived with %d bytes of padding", m.I, len(m.Pad))
					}
					mu.Lock()
					got = append(got, m.I)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := await(t, sent); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		want := make([]int, total)
		for i := range want {
			want[i] = i
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("messages received (-want +got):\n%s", diff)
		}
	})
}

func TestConnCloseUnblocksAndReportsErrClosed(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		c, read, write := blockedCalls(t, tr)
		if err := c.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		for name, ch := range map[string]<-chan error{"Read": read, "Write": write} {
			if ch == nil {
				continue
			}
			if err := await(t, ch); !errors.Is(err, net.ErrClosed) {
				t.Errorf("pending %s after Close: got %v, want net.ErrClosed", name, err)
			}
		}
		checks := map[string]error{
			"Close":       c.Close(),
			"Read":        func() error { _, err := c.Read(make([]byte, 1)); return err }(),
			"ReadMessage": func() error { _, err := c.ReadMessage(); return err }(),
			"Receive":     c.Receive(new(any)),
			"Write":       func() error { _, err := c.Write([]byte(`1`)); return err }(),
			"Send":        c.Send(1),
			"Flush":       c.Flush(),
			"CloseWrite":  c.CloseWrite(),
			// A message the Conn would refuse when open: closed comes
			// first.
			"Write of invalid JSON":    func() error { _, err := c.Write([]byte(`{`)); return err }(),
			"Write over the cap":       func() error { _, err := c.Write(make([]byte, DefaultCap+1)); return err }(),
			"Send of an unmarshalable": c.Send(func() {}),
			"WriteBatch of invalid":    func() error { _, err := c.WriteBatch([][]byte{[]byte(`{`)}); return err }(),
			"AppendMessage":            func() error { _, err := c.AppendMessage(nil); return err }(),
		}
		for name, err := range checks {
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s after Close: got %v, want net.ErrClosed", name, err)
			}
		}
	})
}

func TestConnProtocolViolationClosesConn(t *testing.T) {
	t.Parallel()
	hugeHeader := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
	cases := []struct {
		name string
		wire []byte
		want error
	}{
		{"oversize", hugeHeader, jsonconn.ErrFrameTooLarge},
		{"cap+1", binary.BigEndian.AppendUint32(nil, DefaultCap+1), jsonconn.ErrFrameTooLarge},
		{"invalid JSON", frame(`{"a":nope}`), jsonconn.ErrInvalidJSON},
		{"empty payload", frame(``), jsonconn.ErrInvalidJSON},
	}
	for _, tr := range transports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				raw, c := rawPair(t, tr, nil)
				wrote := async(func() error {
					_, err := raw.Write(append(frame(`"before"`), tc.wire...))
					return err
				})
				if m, err := c.ReadMessage(); err != nil || string(m) != `"before"` {
					t.Fatalf("got %q, %v; want the good frame first", m, err)
				}
				_, err := c.ReadMessage()
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				await(t, wrote) // over net.Pipe it may fail: the conn was closed mid-write
				// The peer sees the connection closed.
				raw.SetReadDeadline(time.Now().Add(hangTimeout))
				if n, err := raw.Read(make([]byte, 1)); err == nil || isTimeout(err) {
					t.Fatalf("peer Read = %d, %v; want the closed connection", n, err)
				}
				if _, err2 := c.ReadMessage(); err2 != err {
					t.Errorf("read error not sticky: got %v, want %v", err2, err)
				}
				// Nothing is pending, but nothing could be sent either.
				if err := c.Flush(); !errors.Is(err, net.ErrClosed) {
					t.Errorf("Flush after the violation: got %v, want net.ErrClosed", err)
				}
				if _, err := c.Write([]byte(`1`)); !errors.Is(err, net.ErrClosed) {
					t.Errorf("Write after the violation: got %v, want net.ErrClosed", err)
				}
				if err := c.Close(); err != nil {
					t.Errorf("first Close after the violation = %v, want nil", err)
				}
			})
		}
	}
}

// seqMsg is a numbered message, for tests that check what arrives.
type seqMsg struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad"`
}

// endSeq numbers the message that ends a sequence.
const endSeq = -1

// finishSeq sends the end of a sequence on a, with no deadline, and checks
// that b then receives exactly messages from to to-1, each carrying pad, and
// the end.
func finishSeq(t testing.TB, a, b *jsonconn.Conn, from, to int, pad string) {
	t.Helper()
	a.SetWriteDeadline(time.Time{})
	b.SetReadDeadline(time.Now().Add(hangTimeout)) // a torn stream would hang
	sent := async(func() error { return a.Send(seqMsg{endSeq, ""}) })
	for want := from; ; want++ {
		var got seqMsg
		if err := b.Receive(&got); err != nil {
			t.Fatalf("Receive after message %d: %v", want-1, err)
		}
		if got.Seq == endSeq {
			if want != to {
				t.Fatalf("the sequence ended after message %d, want %d", want-1, to-1)
			}
			break
		}
		if got.Seq != want || got.Pad != pad {
			t.Fatalf("got message %d (pad of %d bytes), want %d intact", got.Seq, len(got.Pad), want)
		}
	}
	if err := await(t, sent); err != nil {
		t.Fatal(err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestConnEOFIsSticky(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		raw, c := rawPair(t, tr, nil)
		wrote := async(func() error {
			if _, err := raw.Write(frame(`"last"`)); err != nil {
				return err
			}
			return raw.Close()
		})
		if m, err := c.ReadMessage(); err != nil || string(m) != `"last"` {
			t.Fatalf("got %q, %v", m, err)
		}
		for i := 0; i < 2; i++ {
			if _, err := c.ReadMessage(); err != io.EOF {
				t.Fatalf("ReadMessage %d at the end: got %v, want io.EOF", i, err)
			}
		}
		if err := await(t, wrote); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConnCloseWrite(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		a, b := connPair(t, tr, nil)
		if tr.name == "pipe" {
			if err := a.CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("CloseWrite over net.Pipe: got %v, want errors.ErrUnsupported", err)
			}
			return
		}
		if err := a.Send("question"); err != nil {
			t.Fatal(err)
		}
		if err := a.CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		if m, err := b.ReadMessage(); err != nil || string(m) != `"question"` {
			t.Fatalf("got %q, %v", m, err)
		}
		if _, err := b.ReadMessage(); err != io.EOF {
			t.Fatalf("after the half-close: got %v, want io.EOF", err)
		}
		// The other direction still works.
		if err := b.Send("answer"); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := a.Receive(&got); err != nil || got != "answer" {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

func TestConnAccessors(t *testing.T) {
	t.Parallel()
	raw, other := tcpPair(t)
	defer raw.Close()
	c := jsonconn.New(other, nil)
	defer c.Close()
	if c.NetConn() != other {
		t.Error("NetConn does not return the wrapped conn")
	}
	if c.LocalAddr() != other.LocalAddr() || c.RemoteAddr() != other.RemoteAddr() {
		t.Error("addresses differ from the wrapped conn's")
	}
	var _ net.Conn = c
}

func TestConnTimedOutReadHoldsNoBuffer(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		_, b := connPair(t, tr, nil)
		b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := b.ReadMessage()
		checkTimeout(t, err)
		if held := b.Held(); held != 0 {
			t.Fatalf("a Conn whose read timed out with nothing received holds %d bytes, want 0", held)
		}
	})
}

// concurrently calls send(w, n) for n from 0 to perWriter-1 in each of
// writers goroutines, and returns a function that waits for them and
// returns the first error, with which a goroutine stops.
func concurrently(writers, perWriter int, send func(w, n int) error) (wait func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perWriter; n++ {
				if err := send(w, n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return func() error {
		wg.Wait()
		close(errs)
		return <-errs
	}
}

// loopConn is a net.Conn whose reads repeat the same bytes forever.
type loopConn struct {
	net.Conn
	src *loopReader
}

func (l loopConn) Read(p []byte) (int, error) { return l.src.Read(p) }

func TestConnAppendMessageDoesNotAllocate(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	src := &loopReader{data: frames(`{"id":1,"name":"small message"}`, `[`+strings.Repeat("1,", 2000)+`1]`)}
	c := jsonconn.New(loopConn{Conn: a, src: src}, nil)
	buf := make([]byte, 0, 8<<10)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		if buf, err = c.AppendMessage(buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Conn.AppendMessage allocated %.1f times per message, want 0", allocs)
	}
}

// TestConnWriteDoesNotAllocate writes over TCP, where a frame goes out in
// one writev, to a peer that drains everything.
func TestConnWriteDoesNotAllocate(t *testing.T) {
	w, r := tcpPair(t)
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, r); close(drained) }()
	c := jsonconn.New(w, nil)
	msg := []byte(`{"id":1,"name":"small message","tags":["a","b"]}`)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	})
	c.Close()
	<-drained
	if allocs != 0 {
		t.Errorf("Conn.Write allocated %.1f times per message, want 0", allocs)
	}
}

// TestConnWriteBatchTimeoutKeepsStreamWhole floods a peer that is not
// reading with batches (one writev each on sockets) until a write deadline
// strikes, then checks that exactly the committed messages arrive.
func TestConnWriteBatchTimeoutKeepsStreamWhole(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, tr transport) {
		if tr.name == "tls" {
			return // crypto/tls's write side is broken for good after a timeout
		}
		a, b := connPair(t, tr, nil)
		pad := strings.Repeat("q", 8<<10)
		a.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		committed := 0
		var err error
		for committed < 16000 { // 128 MiB: far beyond any socket buffer
			batch := make([][]byte, 8)
			for i := range batch {
				batch[i], _ = json.Marshal(seqMsg{committed + i, pad})
			}
			var n int
			n, err = a.WriteBatch(batch)
			committed += n
			if err != nil {
				break
			}
		}
		checkTimeout(t, err)
		t.Logf("%d messages committed in batches before the deadline (last one pending: %t)", committed, errors.Is(err, jsonconn.ErrPending))
		finishSeq(t, a, b, 0, committed, pad)
	})
}

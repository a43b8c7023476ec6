package jsonconn_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// The interop tests run the protocol against the peers in interop/: a
// Node.js one (node:net, no packages) and a Python one (asyncio, standard
// library), each started as a child process that connects to the test.
var peers = []struct {
	name, interpreter, script string
}{
	{"node", "node", "interop/node/peer.js"},
	{"python", "python3", "interop/python/peer.py"},
}

// A peerProc is a running peer and the Conn it dialed into.
type peerProc struct {
	*jsonconn.Conn
	exited  chan struct{} // closed when the child has exited
	waitErr error         // the child's exit status, once exited is closed
}

// startPeer starts a peer and returns the Conn it dialed into. The child
// is stopped when the test ends, whatever happens: given a few seconds to
// exit after its connection closes, then killed.
func startPeer(t *testing.T, interpreter, script string) *peerProc {
	t.Helper()
	path, err := exec.LookPath(interpreter)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed, but CI machines have it: %v", interpreter, err)
		}
		t.Skipf("%s is not installed, so this peer cannot be tested here: %v", interpreter, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	stderr := new(syncBuffer)
	cmd := exec.Command(path, script, host, port)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peerProc{exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	type accepted struct {
		raw net.Conn
		err error
	}
	acceptc := make(chan accepted, 1)
	t.Cleanup(func() {
		if p.Conn != nil {
			p.Close()
		}
		select {
		case a := <-acceptc: // accepted after the test gave up on it
			if a.raw != nil {
				a.raw.Close()
			}
		default:
		}
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("%s stderr:\n%s", interpreter, stderr.String())
		}
	})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(hangTimeout))
	go func() {
		raw, err := ln.Accept()
		acceptc <- accepted{raw, err}
	}()
	select {
	case a := <-acceptc:
		if a.err != nil {
			t.Fatalf("the %s peer did not connect: %v", interpreter, a.err)
		}
		p.Conn = jsonconn.New(a.raw, nil)
	case <-p.exited:
		t.Fatalf("the %s peer exited before connecting (%v); stderr:\n%s", interpreter, p.waitErr, stderr.String())
	}
	p.SetDeadline(time.Now().Add(hangTimeout))
	return p
}

// closedByPeer checks that err is the peer closing the connection (a clean
// end or a reset), not anything the Go side detected, and that the peer then
// exited cleanly.
func closedByPeer(t *testing.T, p *peerProc, err error) {
	t.Helper()
	if err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("got %v; want the peer to close the connection (io.EOF or a reset)", err)
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Fatalf("the peer exited with %v after closing", p.waitErr)
		}
	case <-time.After(hangTimeout):
		t.Fatal("the peer closed the connection but did not exit")
	}
}

// interopValues returns n mixed values, deterministic, and one whose
// encoding is exactly the frame cap.
func interopValues(n int) []any {
	r := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "plain", "é ü ß", "emoji 🙂🚀", "line\u2028separator\u2029", `quotes "and" \back\slashes`, "tab\tnew\nline", "<html> & </html>", "中文字符", "\u0000\u001f control"}
	var gen func(depth int) any
	gen = func(depth int) any {
		switch k := r.IntN(8); {
		case depth > 3 || k == 0:
			return texts[r.IntN(len(texts))]
		case k == 1:
			// Integers that survive IEEE doubles (JavaScript), negative too.
			return float64(r.Int64N(1<<53)) - float64(1<<52)
		case k == 2:
			return []float64{1.5, -0.25, 3.14159, 0, 1e-7, 123456.789}[r.IntN(6)]
		case k == 3:
			return []any{true, false, nil}[r.IntN(3)]
		case k == 4:
			return []any{}
		case k == 5:
			return map[string]any{}
		case k == 6:
			a := make([]any, r.IntN(5))
			for i := range a {
				a[i] = gen(depth + 1)
			}
			return a
		default:
			m := map[string]any{}
			for i := r.IntN(5); i > 0; i-- {
				m[texts[r.IntN(len(texts))]+fmt.Sprint(i)] = gen(depth + 1)
			}
			return m
		}
	}
	vs := make([]any, n)
	for i := range vs {
		vs[i] = map[string]any{"seq": float64(i), "value": gen(0)}
	}
	return append(vs, strings.Repeat("c", jsonconn.DefaultMaxFrameSize-2)) // exactly the cap
}

// canonical re-encodes a JSON payload with Go's encoder, so that two peers'
// encodings of the same value compare byte for byte.
func canonical(t *testing.T, p []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(p, &v); err != nil {
		t.Fatalf("payload %.60q: %v", p, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInterop(t *testing.T) {
	t.Parallel()
	for _, peer := range peers {
		t.Run(peer.name, func(t *testing.T) {
			t.Parallel()
			t.Run("round trip", func(t *testing.T) {
				c := startPeer(t, peer.interpreter, peer.script)
				values := interopValues(3000)
				sent := async(func() error {
					for _, v := range values {
						if err := c.Send(v); err != nil {
							return err
						}
					}
					return nil
				})
				for i, v := range values {
					want, err := json.Marshal(v)
					if err != nil {
						t.Fatal(err)
					}
					got, err := c.ReadMessage()
					if err != nil {
						t.Fatalf("message %d: %v", i, err)
					}
					if canonical(t, got) != canonical(t, want) {
						t.Fatalf("message %d came back as %.80q, want %.80q", i, got, want)
					}
				}
				if err := await(t, sent); err != nil {
					t.Fatal(err)
				}
			})
			// The peer terminates on a frame over the cap or not JSON.
			for name, wire := range map[string][]byte{
				"cap+1 from Go":   binary.BigEndian.AppendUint32(nil, jsonconn.DefaultMaxFrameSize+1),
				"invalid from Go": frame(`{"broken":`),
				"empty from Go":   frame(``),
			} {
				t.Run(name, func(t *testing.T) {
					c := startPeer(t, peer.interpreter, peer.script)
					if err := c.Send("before"); err != nil {
						t.Fatal(err)
					}
					if m, err := c.ReadMessage(); err != nil || string(m) != `"before"` {
						t.Fatalf("echo = %q, %v", m, err)
					}
					if _, err := c.NetConn().Write(wire); err != nil {
						t.Fatal(err)
					}
					_, err := c.ReadMessage()
					closedByPeer(t, c, err)
				})
			}
			// Go terminates on the peer's broken frames.
			for cmd, want := range map[string]error{"oversize": jsonconn.ErrFrameTooLarge, "invalid": jsonconn.ErrInvalidJSON} {
				t.Run(cmd+" from the peer", func(t *testing.T) {
					c := startPeer(t, peer.interpreter, peer.script)
					if err := c.Send(map[string]string{"cmd": cmd}); err != nil {
						t.Fatal(err)
					}
					if _, err := c.ReadMessage(); !errors.Is(err, want) {
						t.Fatalf("got %v, want %v", err, want)
					}
				})
			}
		})
	}
}

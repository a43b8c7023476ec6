package jsonconn_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
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

// startPeer starts a peer and returns the Conn it dialed into. The child
// is killed when the test ends, whatever happens.
func startPeer(t *testing.T, interpreter, script string) *jsonconn.Conn {
	t.Helper()
	path, err := exec.LookPath(interpreter)
	if err != nil {
		t.Skipf("%s is not installed, so this peer cannot be tested here: %v", interpreter, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var stderr bytes.Buffer
	cmd := exec.Command(path, script, host, port)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("%s stderr:\n%s", interpreter, stderr.String())
		}
	})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(hangTimeout))
	raw, err := ln.Accept()
	if err != nil {
		t.Fatalf("the %s peer did not connect: %v", interpreter, err)
	}
	c := jsonconn.New(raw, nil)
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hangTimeout))
	return c
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
					if err == nil || isTimeout(err) {
						t.Fatalf("after a bad frame the peer answered (%v); want it to close the connection", err)
					}
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

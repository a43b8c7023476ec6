package jsonrpc_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/handler"
	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/jsonrpc"
)

// nodePeers is the directory of the Node.js peers, with json-rpc-2.0
// installed by .ci/run (npm install in it).
var nodePeers = filepath.Join("..", "interop", "jsonrpc")

// node returns the node command, and fails the test if it or json-rpc-2.0
// is missing: this test runs where .ci/run installed them.
func node(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(nodePeers, "node_modules", "json-rpc-2.0")); err != nil {
		t.Fatalf("json-rpc-2.0 is not installed: run npm install in interop/jsonrpc, as .ci/run does (%v)", err)
	}
	return path
}

// A nodeProc is a Node script of nodePeers, running.
type nodeProc struct {
	mu     sync.Mutex
	stdout strings.Builder
	exited chan struct{} // closed once it has exited
	err    error         // its exit, once exited is closed
}

// output returns what it has printed so far.
func (p *nodeProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// startNode runs a Node script of nodePeers with args, and kills it when the
// test ends.
func startNode(t *testing.T, script string, args ...string) *nodeProc {
	t.Helper()
	cmd := exec.Command(node(t), append([]string{script}, args...)...)
	cmd.Dir = nodePeers
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &nodeProc{exited: make(chan struct{})}
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(lines.Text() + "\n")
			p.mu.Unlock()
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("node %s stderr:\n%s", script, stderr.String())
		}
	})
	return p
}

// largest is the largest payload the interop calls carry: the envelope adds
// bytes, so payloads stay a little under the cap.
const largest = jsonconn.DefaultMaxFrameSize - 200

// TestNodeInterop: jrpc2 over jsonconn and json-rpc-2.0 in Node.js over the
// same framing call each other, 1,000 calls each way, ten at a time, with
// payloads up to a little under the cap.
func TestNodeInterop(t *testing.T) {
	t.Parallel()
	t.Run("Go client, Node server", func(t *testing.T) {
		t.Parallel()
		p := startNode(t, "server.js")
		var addr string
		deadline := time.Now().Add(hangTimeout)
		for addr == "" {
			if time.Now().After(deadline) {
				t.Fatal("the Node server did not say where it listens")
			}
			select {
			case <-p.exited:
				t.Fatalf("the Node server exited before it listened: %v, stdout %q", p.err, p.output())
			case <-time.After(10 * time.Millisecond):
			}
			if m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(p.output()); m != nil {
				addr = m[1]
			}
		}
		c, err := jsonconn.Dial("tcp", addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		cli := jrpc2.NewClient(jsonrpc.NewChannel(c), nil)
		defer cli.Close()
		ctx := hangCtx(t)
		var wg sync.WaitGroup
		for g := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := g; k < 1000; k += 10 {
					if k%2 == 1 {
						var sum int
						if err := cli.CallResult(ctx, "add", []int{k, 1}, &sum); err != nil || sum != k+1 {
							t.Errorf("add %d = %d, %v", k, sum, err)
						}
						continue
					}
					size := (k * 997) % 4096
					if k%100 == 0 {
						size = largest
					}
					text := strings.Repeat("x", size)
					var got string
					if err := cli.CallResult(ctx, "echo", []string{text}, &got); err != nil || got != text {
						t.Errorf("echo %d of %d bytes = %d bytes, %v", k, size, len(got), err)
					}
				}
			}()
		}
		wg.Wait()
		if _, err := cli.Call(ctx, "fail", nil); err == nil {
			t.Error("a method that throws in Node returned no error")
		}

		// A reply over the cap is replaced by the error response the Go
		// adapters send, and a batch of replies over it arrives in
		// several frames; the Node server goes on.
		if _, err := cli.Call(ctx, "repeat", []int{jsonconn.DefaultMaxFrameSize}); !isFrameCap(err) {
			t.Errorf("a reply over the cap from Node = %v; want the error response %d %q", err, jsonrpc.CodeFrameCap, jsonrpc.MessageFrameCap)
		}
		const half = 150000 // two replies of half fit one by one, not together
		rsps, err := cli.Batch(ctx, []jrpc2.Spec{{Method: "repeat", Params: []int{half}}, {Method: "repeat", Params: []int{half}}})
		if err != nil || len(rsps) != 2 {
			t.Fatalf("a batch of replies over the cap from Node = %d responses, %v; want 2", len(rsps), err)
		}
		for i, r := range rsps {
			var s string
			if err := r.UnmarshalResult(&s); err != nil || len(s) != half {
				t.Errorf("batch response %d = %d bytes, %v; want %d", i, len(s), err, half)
			}
		}
		var sum int
		if err := cli.CallResult(ctx, "add", []int{20, 22}, &sum); err != nil || sum != 42 {
			t.Errorf("a call after the replies over the cap = %d, %v; want the Node server alive", sum, err)
		}
		select {
		case <-p.exited:
			t.Errorf("the Node server exited: %v", p.err)
		default:
		}
	})

	t.Run("Node client, Go server", func(t *testing.T) {
		t.Parallel()
		ln, err := jsonconn.Listen("tcp", "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		served := make(chan error, 1)
		go func() {
			c, err := ln.AcceptConn()
			if err != nil {
				served <- err
				return
			}
			srv := jrpc2.NewServer(handler.Map{
				"echo": handler.New(func(ctx context.Context, x []string) string { return x[0] }),
				"add":  handler.New(func(ctx context.Context, x []int) int { return x[0] + x[1] }),
			}, nil).Start(jsonrpc.NewChannel(c))
			served <- srv.Wait()
		}()
		p := startNode(t, "client.js", ln.Addr().String(), "1000")
		select {
		case <-p.exited:
			if p.err != nil || !strings.Contains(p.output(), "ok 1000 calls") {
				t.Fatalf("node client.js = %v, stdout %q", p.err, p.output())
			}
		case <-time.After(hangTimeout):
			t.Fatal("the Node client did not finish")
		}
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, jrpc2.ErrConnClosed) {
				t.Logf("the Go server ended with %v", err)
			}
		case <-time.After(hangTimeout):
			t.Fatal("the Go server did not see the Node client close")
		}
	})
}

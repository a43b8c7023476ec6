package jsonconn_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// Hostile peers run in a child process, the test binary re-executed with
// peersEnv set to "MODE N ADDR": they open N raw TCP connections to ADDR,
// behave as MODE says, print "ready" once every connection has done its
// first part, and hold the connections (going on dripping, for the modes
// that drip) until their standard input closes. Running them in another
// process keeps their memory out of the server's heap, which the tests
// measure.
const peersEnv = "JSONCONN_TEST_HOSTILE_PEERS"

// hostileCap is the frame cap of the servers the hostile peers attack, and
// the size their headers announce.
const hostileCap = jsonconn.DefaultMaxFrameSize

// hostileHeader is a frame header announcing n payload bytes.
func hostileHeader(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

// runHostilePeers is the child's main.
func runHostilePeers(spec string) {
	var mode, addr string
	var n int
	if _, err := fmt.Sscan(spec, &mode, &n, &addr); err != nil {
		fmt.Fprintln(os.Stderr, "bad", peersEnv, err)
		os.Exit(2)
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 30*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dial:", err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	// first is what each connection sends at once; drip, if set, is sent
	// afterwards step bytes at a time, to every connection each round.
	var first, drip []byte
	step := 16
	repeat := false // send first again and again, until the server hangs up
	switch mode {
	case "idle":
	case "header":
		first = hostileHeader(hostileCap)
	case "byte":
		first = append(hostileHeader(hostileCap), '"')
	case "half":
		first = append(hostileHeader(hostileCap), '"')
		first = append(first, strings.Repeat("h", hostileCap/2-1)...)
	case "drip":
		frame := append(hostileHeader(64), `"`+strings.Repeat("d", 62)+`"`...)
		first, drip = frame[:1], frame[1:]
		step = 1
	case "slow":
		first = hostileHeader(hostileCap)
		drip = []byte(`"` + strings.Repeat("s", hostileCap-2) + `"`)
	case "oversize":
		first = hostileHeader(hostileCap + 1)
	case "invalid":
		first = append(hostileHeader(5), `{"a":`...)
	case "noread":
		// Requests without end, whose echoes it never reads: however much
		// the socket buffers of both ends take, the server's writes block.
		msg := append(hostileHeader(64<<10), '"')
		msg = append(msg, strings.Repeat("n", 64<<10-2)...)
		msg = append(msg, '"')
		first = msg
		repeat = true
		for _, c := range conns {
			c.(*net.TCPConn).SetReadBuffer(16 << 10)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		os.Exit(2)
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// A server that cut the conn off makes this fail.
				if _, err := c.Write(first); err != nil || !repeat {
					return
				}
			}
		}()
	}
	if !repeat { // whose writes go on until the server hangs up
		wg.Wait()
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	// The connections are closed only here, when stdin ends: they must stay
	// reachable until then, or the collector's finalizers would close them.
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < len(drip); i += step {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		for _, c := range conns {
			c.Write(drip[i:min(i+step, len(drip))])
		}
	}
	<-stop
}

// hostilePeers is a running child process of hostile peers.
type hostilePeers struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan error
	stopOnce sync.Once
}

// startHostilePeers runs n peers of mode against addr and waits until they
// are ready. They are stopped in t.Cleanup, even if the test fails.
func startHostilePeers(t *testing.T, mode string, n int, addr string) *hostilePeers {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peersEnv+"="+mode+" "+strconv.Itoa(n)+" "+addr)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &hostilePeers{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line == "ready\n"
		io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(p.stop)
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the %s peers did not get ready", mode)
		}
	case <-time.After(2 * hangTimeout):
		t.Fatalf("the %s peers did not get ready in %v", mode, 2*hangTimeout)
	}
	return p
}

// stop closes the peers' connections and waits for the process to end,
// killing it if it does not.
func (p *hostilePeers) stop() {
	p.stopOnce.Do(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(hangTimeout):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// heapInuse returns the heap in use after two garbage collections: the
// first clears sync.Pool's caches into their victim caches, the second
// clears those.
func heapInuse() int64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// serveSmallBuffers serves srv on a loopback listener whose connections
// have small kernel send buffers, so that a peer that does not read blocks
// the server's writes after little data. It returns the address and a
// function that shuts the server down, waiting for every handler.
func serveSmallBuffers(t *testing.T, srv *jsonconn.Server) (addr string, done func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := async(func() error { return srv.Serve(smallSendBuffers{ln}) })
	var once sync.Once
	done = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown = %v", err)
				srv.Close()
			}
			if err := await(t, served); !errors.Is(err, jsonconn.ErrServerClosed) {
				t.Errorf("Serve = %v, want ErrServerClosed", err)
			}
		})
	}
	t.Cleanup(done)
	return ln.Addr().String(), done
}

// smallSendBuffers gives each TCP conn it accepts a 16 KiB send buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// TestServerHostilePeers attacks a Server over real sockets with each kind
// of hostile peer in turn, while an honest client keeps asking: each attack
// must end with the right cause in Stats, and the honest client must keep
// getting answers. Its latency is reported, not asserted: this machine is
// shared. TestServerHeapPerHostilePeer measures the memory.
func TestServerHostilePeers(t *testing.T) {
	const n = 50
	for _, tc := range []struct {
		mode  string
		cause func(jsonconn.ServerStats) int64
	}{
		{"header", func(s jsonconn.ServerStats) int64 { return s.FrameTimeouts }},
		{"byte", func(s jsonconn.ServerStats) int64 { return s.FrameTimeouts }},
		{"slow", func(s jsonconn.ServerStats) int64 { return s.FrameTimeouts }},
		{"drip", func(s jsonconn.ServerStats) int64 { return s.FrameTimeouts }},
		{"oversize", func(s jsonconn.ServerStats) int64 { return s.FramesTooLarge }},
		{"invalid", func(s jsonconn.ServerStats) int64 { return s.InvalidJSON }},
		// A peer that never reads: each echo is cut by WriteTimeout, and
		// the handler gives up.
		{"noread", func(s jsonconn.ServerStats) int64 { return s.WriteTimeouts }},
		// A flood past MaxConns: idle connections wait in the accept
		// queue for a slot, and IdleTimeout recycles the slots.
		{"idle", func(s jsonconn.ServerStats) int64 { return s.IdleTimeouts }},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			var log syncBuffer
			srv := &jsonconn.Server{
				Config:       &jsonconn.Config{MaxFrameSize: hostileCap},
				FrameTimeout: time.Second,
				WriteTimeout: time.Second,
				Logger:       quietLogger(&log),
				Handler:      appendEcho,
			}
			switch tc.mode {
			case "idle":
				srv.MaxConns = n / 5 // the honest client holds one slot
				srv.IdleTimeout = time.Second
			case "noread":
				// On a loaded machine a peer's writes may stall for longer
				// than FrameTimeout, which would then end some first.
				srv.FrameTimeout = 0
			}
			addr, done := serveSmallBuffers(t, srv)
			honest := startHonestClient(t, addr)
			p := startHostilePeers(t, tc.mode, n, addr)
			for deadline := time.Now().Add(hangTimeout); tc.cause(srv.Stats()) < n; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections never ended by %s: %+v", n, tc.mode, srv.Stats())
				}
			}
			st := srv.Stats()
			if tc.mode == "idle" && st.WaitCount == 0 {
				t.Errorf("a flood past MaxConns made no connection wait: %+v", st)
			}
			p.stop()
			lat := honest.stop(t)
			done()
			t.Logf("%s: the honest client's round trips during the attack: %s; %+v", tc.mode, lat, st)
			// The connections a handler ended are logged at level Debug,
			// which the test's logger leaves out; the others at Warn.
			if tc.mode != "noread" && !strings.Contains(log.String(), "connection ended") {
				t.Errorf("%s: the server logged no ended connection:\n%s", tc.mode, log.String())
			}
		})
	}
}

// honestClient asks an echo server one small question at a time and
// records how long each answer takes.
type honestClient struct {
	stopping chan struct{}
	done     chan error
	rtts     []time.Duration
}

func startHonestClient(t *testing.T, addr string) *honestClient {
	t.Helper()
	c := dial(t, "tcp", addr)
	h := &honestClient{stopping: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-h.stopping:
				h.done <- nil
				return
			case <-time.After(10 * time.Millisecond):
			}
			start := time.Now()
			c.SetDeadline(start.Add(hangTimeout)) // per question: an attack may outlast one
			if err := c.Send(i); err != nil {
				h.done <- err
				return
			}
			var got int
			if err := c.Receive(&got); err != nil || got != i {
				h.done <- fmt.Errorf("question %d: answer %d, %v", i, got, err)
				return
			}
			h.rtts = append(h.rtts, time.Since(start))
		}
	}()
	return h
}

// stop ends the client, fails the test if it ever went unanswered, and
// describes its round-trip times.
func (h *honestClient) stop(t *testing.T) string {
	t.Helper()
	close(h.stopping)
	if err := await(t, h.done); err != nil {
		t.Fatalf("the honest client: %v", err)
	}
	if len(h.rtts) == 0 {
		t.Fatal("the honest client got no answer")
	}
	slices.Sort(h.rtts)
	q := func(p float64) time.Duration { return h.rtts[int(p*float64(len(h.rtts)-1))] }
	return fmt.Sprintf("%d answered, p50 %v, p99 %v, max %v", len(h.rtts), q(0.5), q(0.99), h.rtts[len(h.rtts)-1])
}

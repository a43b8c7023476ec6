package haproxy_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
	"github.com/jsonconn/jsonconn/haproxy"
)

// The harness: a real HAProxy on loopback in TCP mode, in front of two
// backends in processes of their own (./backend), as docs/operations.md
// ("Many servers behind a load balancer") describes.

// configTemplate is the HAProxy configuration docs/operations.md explains
// line by line; TestConfigIsTheDocumented keeps the two the same.
const configTemplate = `global
    stats socket {{dir}}/admin.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout tunnel 30s
    retries 3
    option redispatch

frontend fe
    bind 127.0.0.1:{{port}}
    default_backend be

backend be
    balance roundrobin
    option tcp-check
    tcp-check connect default
    tcp-check send-binary {{ping}}
    tcp-check expect binary {{pong}}
    timeout check 500ms
    default-server send-proxy-v2 source 127.0.0.2 check inter 500ms fall 2 rise 2 on-marked-down shutdown-sessions
    server a {{a}}
    server b {{b}}
`

// Heartbeat settings of the harness's clients.
const (
	heartbeatInterval = 500 * time.Millisecond
	heartbeatTimeout  = 500 * time.Millisecond
)

// A cluster is HAProxy and its two backends.
type cluster struct {
	t        *testing.T
	dir      string
	bin      string // the backend program
	front    string // HAProxy's frontend address
	backends map[string]*backend
}

// A backend is a running backend process.
type backend struct {
	name, addr string
	cmd        *exec.Cmd
	done       chan struct{}
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startCluster builds the backend, starts two of it and HAProxy in front,
// and waits until HAProxy's checks find both up. Everything is stopped
// when the test ends.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	hap, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatalf("haproxy is not installed (.ci/run installs it with apt-get install -y haproxy): %v", err)
	}
	k := &cluster{t: t, dir: t.TempDir(), backends: map[string]*backend{}}
	k.bin = filepath.Join(k.dir, "backend")
	if out, err := exec.Command("go", "build", "-o", k.bin, "./backend").CombinedOutput(); err != nil {
		t.Fatalf("go build ./backend: %v\n%s", err, out)
	}
	for _, name := range []string{"a", "b"} {
		k.start(name, freeAddr(t))
	}
	k.front = freeAddr(t)
	_, port, _ := net.SplitHostPort(k.front)
	cfg := strings.NewReplacer("{{dir}}", k.dir, "{{port}}", port, "{{ping}}", haproxy.PingFrame,
		"{{pong}}", haproxy.PongFrame, "{{a}}", k.backends["a"].addr, "{{b}}", k.backends["b"].addr).Replace(configTemplate)
	cfgFile := filepath.Join(k.dir, "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hap, "-db", "-f", cfgFile)
	var stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy:\n%s", stderr.String())
		}
	})
	k.await(func() bool { return k.state("a") == "UP" && k.state("b") == "UP" }, "both backends up")
	return k
}

// start starts backend name on addr.
func (k *cluster) start(name, addr string) {
	t := k.t
	t.Helper()
	cmd := exec.Command(k.bin, "-name", name, "-listen", addr, "-trust", "127.0.0.2")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: addr, cmd: cmd, done: make(chan struct{})}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
		cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT) // if frozen
		cmd.Process.Kill()
		<-b.done
	})
	select {
	case <-listening:
	case <-b.done:
		t.Fatalf("backend %s exited before it listened", name)
	case <-time.After(hang):
		t.Fatalf("backend %s did not listen", name)
	}
	k.backends[name] = b
}

// stop shuts backend name down with SIGTERM (Server.Shutdown) and waits.
func (k *cluster) stop(name string) {
	b := k.backends[name]
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(hang):
		k.t.Fatalf("backend %s did not shut down", name)
	}
}

// admin sends a command to HAProxy's stats socket and returns the answer.
func (k *cluster) admin(command string) string {
	c, err := net.Dial("unix", filepath.Join(k.dir, "admin.sock"))
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hang))
	fmt.Fprintf(c, "%s\n", command)
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// state returns server name's status as HAProxy's stats show it: UP,
// DOWN, DRAIN, or a transition such as "UP 1/2".
func (k *cluster) state(name string) string {
	out := k.admin("show stat")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "be" && f[1] == name {
			return f[17]
		}
	}
	return ""
}

// await polls cond every 20 ms until it holds, and returns how long that
// took.
func (k *cluster) await(cond func() bool, what string) time.Duration {
	k.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > hang {
			k.t.Fatalf("%s: not within %v (a: %s, b: %s)", what, hang, k.state("a"), k.state("b"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// A caller is a Client making numbered calls, one at a time, each retried
// until answered, as an application does for idempotent calls. Each
// attempt has a number of its own, so that the replies tell apart an
// attempt answered twice (which would be a duplicate the transport made)
// from a late answer to an attempt that had already been returned to the
// caller as failed (which at-least-once delivery allows: the retried call
// is idempotent).
type caller struct {
	cl         *jsonconn.Client
	answered   atomic.Int64 // calls answered
	failed     atomic.Int64 // attempts returned to the caller as failed (then retried)
	twice      atomic.Int64 // replies to an attempt already answered
	late       atomic.Int64 // replies to an attempt already returned as failed
	lastBy     atomic.Value // string: the backend of the last answer
	mu         sync.Mutex
	lastAnswer time.Time
	longestGap time.Duration
	client     string // the address a backend saw, from the first answer
}

// run makes calls until ctx ends.
func (c *caller) run(ctx context.Context) {
	c.mu.Lock()
	c.lastAnswer = time.Now()
	c.mu.Unlock()
	var id int64
	seen := map[[2]int64]bool{} // the attempts answered
	for ctx.Err() == nil {
		id++
		for try := 1; ctx.Err() == nil; try++ {
			if c.attempt(ctx, id, try, seen) {
				break
			}
			c.failed.Add(1)
		}
	}
}

// attempt sends attempt try of call id and waits up to 2 s for its answer,
// counting answers to earlier attempts that arrive meanwhile. It reports
// whether it was answered.
func (c *caller) attempt(ctx context.Context, id int64, try int, seen map[[2]int64]bool) bool {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.cl.SendContext(actx, haproxy.Request{ID: id, Try: try}); err != nil {
		return false
	}
	for {
		var rep haproxy.Reply
		if err := c.cl.ReceiveContext(actx, &rep); err != nil {
			return false
		}
		if rep.Pong {
			continue
		}
		key := [2]int64{rep.ID, int64(rep.Try)}
		if seen[key] {
			c.twice.Add(1)
			continue
		}
		seen[key] = true
		if rep.ID != id || rep.Try != try {
			c.late.Add(1) // an attempt returned as failed was answered after all
			continue
		}
		now := time.Now()
		c.answered.Add(1)
		c.lastBy.Store(rep.Backend)
		c.mu.Lock()
		c.longestGap = max(c.longestGap, now.Sub(c.lastAnswer))
		c.lastAnswer = now
		if c.client == "" {
			c.client = rep.Client
		}
		c.mu.Unlock()
		return true
	}
}

// startCallers starts n callers through HAProxy at front, with the
// heartbeat on, until the test ends.
func startCallers(t *testing.T, front string, n int) []*caller {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	callers := make([]*caller, n)
	for i := range callers {
		c := &caller{cl: &jsonconn.Client{
			Address:           front,
			MinBackoff:        20 * time.Millisecond,
			MaxBackoff:        200 * time.Millisecond,
			HeartbeatInterval: heartbeatInterval,
			HeartbeatTimeout:  heartbeatTimeout,
			Heartbeat: func(ctx context.Context, c *jsonconn.Conn) error {
				return c.SendContext(ctx, haproxy.Request{Ping: true})
			},
		}}
		callers[i] = c
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, c := range callers {
			c.cl.Close()
		}
	})
	return callers
}

// totals sums the callers' counts.
func totals(callers []*caller) (answered, failed, twice, late int64, gap time.Duration) {
	for _, c := range callers {
		answered += c.answered.Load()
		failed += c.failed.Load()
		twice += c.twice.Load()
		late += c.late.Load()
		c.mu.Lock()
		gap = max(gap, c.longestGap, time.Since(c.lastAnswer))
		c.mu.Unlock()
	}
	return
}

// progress waits until every caller has had another answer.
func progress(t *testing.T, callers []*caller) {
	t.Helper()
	before := make([]int64, len(callers))
	for i, c := range callers {
		before[i] = c.answered.Load()
	}
	deadline := time.Now().Add(hang)
	for i, c := range callers {
		for c.answered.Load() <= before[i] {
			if time.Now().After(deadline) {
				t.Fatalf("caller %d made no progress within %v", i, hang)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestHAProxy runs the harness: the client's real address through the
// PROXY protocol, a rolling restart of both backends under 50 callers, and
// a frozen backend.
func TestHAProxy(t *testing.T) {
	k := startCluster(t)
	callers := startCallers(t, k.front, 50)
	progress(t, callers)

	t.Run("real client address", func(t *testing.T) {
		for i, c := range callers {
			c.mu.Lock()
			got := c.client
			c.mu.Unlock()
			if host, _, _ := net.SplitHostPort(got); host != "127.0.0.1" {
				t.Fatalf("caller %d: the backend saw %q; want the client's own 127.0.0.1, not HAProxy's 127.0.0.2", i, got)
			}
		}
	})

	t.Run("rolling restart", func(t *testing.T) {
		a0, f0, _, l0, _ := totals(callers)
		start := time.Now()
		for _, name := range []string{"a", "b"} {
			k.admin("set server be/" + name + " state drain")
			k.await(func() bool { return k.state(name) == "DRAIN" }, name+" draining")
			k.stop(name)
			k.start(name, k.backends[name].addr)
			k.admin("set server be/" + name + " state ready")
			k.await(func() bool { return k.state(name) == "UP" }, name+" up again")
			progress(t, callers)
		}
		answered, failed, twice, late, gap := totals(callers)
		t.Logf("rolling restart of both backends in %v: %d calls answered, %d attempts returned as failed and retried (%d of them answered later, after all), %d answered twice, longest gap a caller saw %v",
			time.Since(start).Round(time.Millisecond), answered-a0, failed-f0, late-l0, twice, gap.Round(time.Millisecond))
		if twice != 0 {
			t.Errorf("%d calls answered twice", twice)
		}
	})

	t.Run("frozen backend", func(t *testing.T) {
		heartbeats := func() (n int64) {
			for _, c := range callers {
				n += c.cl.Stats().HeartbeatTimeouts
			}
			return n
		}
		onA := 0
		for _, c := range callers {
			if by, _ := c.lastBy.Load().(string); by == "a" {
				onA++
			}
		}
		h0 := heartbeats()
		frozen := time.Now()
		k.backends["a"].cmd.Process.Signal(syscall.SIGSTOP)
		var detected, markedDown time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for heartbeats() == h0 && time.Since(frozen) < hang {
				time.Sleep(5 * time.Millisecond)
			}
			detected = time.Since(frozen)
		}()
		markedDown = k.await(func() bool { return strings.HasPrefix(k.state("a"), "DOWN") }, "a marked down")
		wg.Wait()
		progress(t, callers)
		for i, c := range callers {
			if by, _ := c.lastBy.Load().(string); by != "b" {
				t.Errorf("caller %d's last answer came from %q after a froze; want b", i, by)
			}
		}
		k.backends["a"].cmd.Process.Signal(syscall.SIGCONT)
		recovered := k.await(func() bool { return k.state("a") == "UP" }, "a up again")
		t.Logf("frozen backend (%d of 50 callers on it): the heartbeat (interval %v + timeout %v) found it in %v; HAProxy marked it down in %v; after SIGCONT it was up again in %v",
			onA, heartbeatInterval, heartbeatTimeout, detected.Round(time.Millisecond), markedDown.Round(time.Millisecond), recovered.Round(time.Millisecond))
		if onA > 0 && detected > heartbeatInterval+heartbeatTimeout+2*time.Second {
			t.Errorf("the heartbeat took %v to find the frozen backend; want about %v", detected, heartbeatInterval+heartbeatTimeout)
		}
		if _, failed, twice, _, _ := totals(callers); twice != 0 {
			t.Errorf("%d calls answered twice (%d attempts failed)", twice, failed)
		}
	})
}

// A syncBuffer is a strings.Builder safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestConfigIsTheDocumented keeps the configuration the harness runs the
// one docs/operations.md explains, with the example addresses the doc uses.
func TestConfigIsTheDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(doc), "```haproxy\n")
	block, _, closed := strings.Cut(block, "```")
	if !found || !closed {
		t.Fatal("docs/operations.md has no haproxy block")
	}
	want := strings.NewReplacer("{{dir}}", "/run/haproxy", "{{port}}", "7000", "{{ping}}", haproxy.PingFrame,
		"{{pong}}", haproxy.PongFrame, "{{a}}", "10.0.0.11:7001", "{{b}}", "10.0.0.12:7001").Replace(configTemplate)
	if block != want {
		t.Errorf("docs/operations.md's configuration:\n%s\nthe harness's:\n%s", block, want)
	}
}

// TestPingFrames: the check's frames are the framed ping and pong the
// backend's handler takes and gives.
func TestPingFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hex string
		v   any
	}{{haproxy.PingFrame, haproxy.Request{Ping: true}}, {haproxy.PongFrame, haproxy.Reply{Pong: true}}} {
		var b strings.Builder
		w := jsonconn.NewWriter(&b, nil)
		if err := w.Send(tc.v); err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", b.String()); got != tc.hex {
			t.Errorf("the frame of %+v is %s, want %s", tc.v, got, tc.hex)
		}
	}
}

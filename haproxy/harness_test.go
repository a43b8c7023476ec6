//go:build linux

package haproxy_test

import (
	"bufio"
	"context"
	"errors"
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
	log        *syncBuffer // its stderr
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
		k.start(t, name, freeAddr(t))
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // even if this process dies
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
	k.await(t, func() bool { return k.state("a") == "UP" && k.state("b") == "UP" }, "both backends up")
	return k
}

// start starts backend name on addr; t is the test that fails if it cannot.
// The process is killed when the whole test ends.
func (k *cluster) start(t *testing.T, name, addr string) {
	t.Helper()
	cmd := exec.Command(k.bin, "-name", name, "-listen", addr, "-trust", "127.0.0.2")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := new(syncBuffer)
	b := &backend{name: name, addr: addr, cmd: cmd, done: make(chan struct{}), log: log}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
			}
		}
		cmd.Wait()
		close(b.done)
	}()
	k.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT) // if frozen
		cmd.Process.Kill()
		<-b.done
	})
	select {
	case <-listening:
	case <-b.done:
		t.Fatalf("backend %s exited before it listened:\n%s", name, log.String())
	case <-time.After(hang):
		t.Fatalf("backend %s did not listen", name)
	}
	k.backends[name] = b
}

// stop shuts backend name down with SIGTERM (Server.Shutdown) and waits.
func (k *cluster) stop(t *testing.T, name string) {
	t.Helper()
	b := k.backends[name]
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(hang):
		t.Fatalf("backend %s did not shut down", name)
	}
}

// handling returns the backend that has logged a slow call, or "".
func (k *cluster) handling() string {
	for name, b := range k.backends {
		if strings.Contains(b.log.String(), "handling a slow call") {
			return name
		}
	}
	return ""
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
func (k *cluster) await(t *testing.T, cond func() bool, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > hang {
			t.Fatalf("%s: not within %v (a: %s, b: %s)", what, hang, k.state("a"), k.state("b"))
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
	cl       *jsonconn.Client
	answered atomic.Int64 // calls answered
	failed   atomic.Int64 // attempts returned to the caller with an error (then retried)
	silent   atomic.Int64 // attempts that got neither an answer nor an error within 2 s
	twice    atomic.Int64 // replies to an attempt already answered
	late     atomic.Int64 // replies to an attempt already returned as failed
	lastBy   atomic.Value // string: the backend of the last answer

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
			if c.attempt(ctx, haproxy.Request{ID: id, Try: try}, seen) {
				break
			}
		}
	}
}

// attempt sends req and waits up to 2 s for its answer, counting answers
// to earlier attempts that arrive meanwhile. It reports whether req was
// answered, and counts it as failed or silent if not.
func (c *caller) attempt(ctx context.Context, req haproxy.Request, seen map[[2]int64]bool) bool {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := c.cl.SendContext(actx, req)
	for err == nil {
		var rep haproxy.Reply
		if err = c.cl.ReceiveContext(actx, &rep); err != nil || rep.Pong {
			continue
		}
		key := [2]int64{rep.ID, int64(rep.Try)}
		if seen[key] {
			c.twice.Add(1)
			continue
		}
		seen[key] = true
		if rep.ID != req.ID || rep.Try != req.Try {
			c.late.Add(1) // an attempt returned as failed was answered after all
			continue
		}
		now := time.Now()
		c.lastBy.Store(rep.Backend)
		c.mu.Lock()
		c.longestGap = max(c.longestGap, now.Sub(c.lastAnswer))
		c.lastAnswer = now
		if c.client == "" {
			c.client = rep.Client
		}
		c.mu.Unlock()
		c.answered.Add(1)
		return true
	}
	switch {
	case ctx.Err() != nil:
	case errors.Is(err, context.DeadlineExceeded):
		c.silent.Add(1)
	default:
		c.failed.Add(1)
	}
	return false
}

// startCallers starts n callers through HAProxy at front until the test
// ends, with the heartbeat on if heartbeat is set.
func startCallers(t *testing.T, front string, n int, heartbeat bool) []*caller {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	callers := make([]*caller, n)
	for i := range callers {
		cl := &jsonconn.Client{Address: front, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
		if heartbeat {
			cl.HeartbeatInterval, cl.HeartbeatTimeout = heartbeatInterval, heartbeatTimeout
			cl.Heartbeat = func(ctx context.Context, c *jsonconn.Conn) error {
				return c.SendContext(ctx, haproxy.Request{Ping: true})
			}
		}
		c := &caller{cl: cl}
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

// counts are the callers' counts, summed.
type counts struct {
	answered, failed, silent, twice, late int64
	gap                                   time.Duration // the longest a caller went without an answer
}

// totals sums the callers' counts, and resets their longest gaps.
func totals(callers []*caller) (n counts) {
	for _, c := range callers {
		n.answered += c.answered.Load()
		n.failed += c.failed.Load()
		n.silent += c.silent.Load()
		n.twice += c.twice.Load()
		n.late += c.late.Load()
		c.mu.Lock()
		n.gap = max(n.gap, c.longestGap, time.Since(c.lastAnswer))
		c.longestGap = 0
		c.mu.Unlock()
	}
	return n
}

// since returns the counts from b to n, and n's gap.
func (n counts) since(b counts) counts {
	return counts{n.answered - b.answered, n.failed - b.failed, n.silent - b.silent, n.twice - b.twice, n.late - b.late, n.gap}
}

// progress waits until every caller has had another answer.
func progress(t *testing.T, callers []*caller, within time.Duration) {
	t.Helper()
	before := make([]int64, len(callers))
	for i, c := range callers {
		before[i] = c.answered.Load()
	}
	deadline := time.Now().Add(within)
	for i, c := range callers {
		for c.answered.Load() <= before[i] {
			if time.Now().After(deadline) {
				t.Fatalf("caller %d made no progress within %v", i, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestHAProxy runs the harness: the client's real address through the
// PROXY protocol, a call in progress across Server.Shutdown, a rolling
// restart of both backends under 50 callers, and a frozen backend.
func TestHAProxy(t *testing.T) {
	k := startCluster(t)
	callers := startCallers(t, k.front, 50, true)
	progress(t, callers, hang)

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

	t.Run("Shutdown answers the call it is handling", func(t *testing.T) {
		// A call that takes 500 ms, on a connection of its own, to
		// whichever backend takes it; that backend is sent SIGTERM while
		// it handles the call. Server.Shutdown lets the handler finish:
		// the answer arrives before the connection closes. A kill would
		// lose it.
		cl := &jsonconn.Client{Address: k.front}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		if err := cl.SendContext(ctx, haproxy.Request{ID: 1, SleepMS: 500}); err != nil {
			t.Fatal(err)
		}
		var name string
		k.await(t, func() bool { name = k.handling(); return name != "" }, "a backend handling the slow call")
		b := k.backends[name]
		b.cmd.Process.Signal(syscall.SIGTERM)
		var rep haproxy.Reply
		if err := cl.ReceiveContext(ctx, &rep); err != nil || rep.ID != 1 || rep.Backend != name {
			t.Fatalf("the call in progress at SIGTERM got %+v, %v; want its answer from %s", rep, err, name)
		}
		<-b.done
		k.start(t, name, b.addr)
		k.await(t, func() bool { return k.state(name) == "UP" }, name+" up again")
		progress(t, callers, hang)
	})

	t.Run("rolling restart", func(t *testing.T) {
		before := totals(callers)
		start := time.Now()
		for _, name := range []string{"a", "b"} {
			k.admin("set server be/" + name + " state drain")
			k.await(t, func() bool { return k.state(name) == "DRAIN" }, name+" draining")
			k.stop(t, name)
			k.start(t, name, k.backends[name].addr)
			k.admin("set server be/" + name + " state ready")
			k.await(t, func() bool { return k.state(name) == "UP" }, name+" up again")
			progress(t, callers, hang)
		}
		n := totals(callers).since(before)
		t.Logf("rolling restart of both backends in %v: %d calls answered; %d attempts returned as failed and retried, %d of them answered later after all; %d silently lost; %d answered twice; longest gap a caller saw %v",
			time.Since(start).Round(time.Millisecond), n.answered, n.failed, n.late, n.silent, n.twice, n.gap.Round(time.Millisecond))
		if n.twice != 0 || n.silent != 0 {
			t.Errorf("%d attempts answered twice, %d lost silently; want none", n.twice, n.silent)
		}
	})

	t.Run("frozen backend", func(t *testing.T) {
		// Ten more callers without a heartbeat: only HAProxy's
		// on-marked-down shutdown-sessions can free those on a.
		plain := startCallers(t, k.front, 10, false)
		progress(t, plain, hang)
		heartbeats := func() (n int64) {
			for _, c := range callers {
				n += c.cl.Stats().HeartbeatTimeouts
			}
			return n
		}
		onA, plainOnA := 0, 0
		for _, c := range callers {
			if by, _ := c.lastBy.Load().(string); by == "a" {
				onA++
			}
		}
		for _, c := range plain {
			if by, _ := c.lastBy.Load().(string); by == "a" {
				plainOnA++
			}
		}
		if onA == 0 || plainOnA == 0 {
			t.Fatalf("%d callers with a heartbeat and %d without are on a; want some of each", onA, plainOnA)
		}
		h0 := heartbeats()
		k.backends["a"].cmd.Process.Signal(syscall.SIGSTOP)
		detected := k.await(t, func() bool { return heartbeats() > h0 }, "a heartbeat timeout")
		markedDown := k.await(t, func() bool { return strings.HasPrefix(k.state("a"), "DOWN") }, "a marked down") + detected
		// Every caller goes on through b: those with a heartbeat left a
		// on their own, those without once HAProxy shut their sessions.
		progress(t, callers, hang)
		progress(t, plain, 10*time.Second)
		for i, c := range append(callers, plain...) {
			if by, _ := c.lastBy.Load().(string); by != "b" {
				t.Errorf("caller %d's last answer came from %q after a froze; want b", i, by)
			}
		}
		k.backends["a"].cmd.Process.Signal(syscall.SIGCONT)
		recovered := k.await(t, func() bool { return k.state("a") == "UP" }, "a up again")
		t.Logf("frozen backend (%d of 50 callers with a heartbeat on it, %d of 10 without): the first heartbeat (interval %v + timeout %v) found it in %v; HAProxy marked it down in %v, freeing the others; after SIGCONT it was up again in %v",
			onA, plainOnA, heartbeatInterval, heartbeatTimeout, detected.Round(time.Millisecond), markedDown.Round(time.Millisecond), recovered.Round(time.Millisecond))
		if detected > heartbeatInterval+heartbeatTimeout+time.Second {
			t.Errorf("the heartbeat took %v to find the frozen backend; want about %v", detected, heartbeatInterval+heartbeatTimeout)
		}
		if n := totals(append(callers, plain...)); n.twice != 0 {
			t.Errorf("%d attempts answered twice", n.twice)
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

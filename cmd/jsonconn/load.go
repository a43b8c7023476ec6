package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/jsonconn/jsonconn"
)

// A load is a throughput run: conns connections, each sending messages of
// size bytes as fast as the peer takes them, until count messages have gone
// (0: no limit) or duration has passed (0: no limit). With echo, each
// connection keeps at most window messages in flight, reads every message
// back, checks it is the one it sent and times its round trip; without, it
// sends as fast as the peer reads, shuts down its sending side at the end
// and waits for the peer to close, so that the run counts only messages the
// peer has read.
type load struct {
	network, address string
	cfg              *jsonconn.Config
	tls              *tls.Config
	size, conns      int
	count            int64
	duration         time.Duration
	echo             bool
	window           int
	dialTimeout      time.Duration

	sent, received atomic.Int64 // messages, across connections

	mu  sync.Mutex
	rtt histogram // round trips, merged from the connections' own
}

// minLoadSize is the smallest message a load can send: the JSON object it
// pads to size needs room for a sequence number.
const minLoadSize = len(`{"n":                   0,"pad":""}`)

// A loadMessage is the payload of message n of a connection:
// {"n":<n right-aligned in 20 bytes>,"pad":"xxx…"} padded to size bytes,
// so that each message differs and the receiver can check it came back
// unchanged without allocating.
type loadMessage []byte

func newLoadMessage(size int) loadMessage {
	m := make([]byte, 0, size)
	m = append(m, `{"n":`...)
	m = append(m, bytes.Repeat([]byte(" "), 20)...)
	m = append(m, `,"pad":"`...)
	m = append(m, bytes.Repeat([]byte("x"), size-len(m)-2)...)
	m = append(m, `"}`...)
	return m
}

// set writes n into the message.
func (m loadMessage) set(n int64) {
	field := m[5:25]
	for i := range field {
		field[i] = ' '
	}
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	copy(field[len(field)-len(d):], d)
}

// run runs the load, calling tick every interval with the messages done
// so far, and returns how long the sending took, from the end of dialling.
// Stopping ctx (a signal) closes the connections at once and ends the run
// early, without error: the counts say what was done.
func (l *load) run(ctx context.Context, interval time.Duration, tick func(done int64, elapsed time.Duration)) (time.Duration, error) {
	conns := make([]*jsonconn.Conn, 0, l.conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	d := jsonconn.Dialer{NetDialer: &net.Dialer{Timeout: l.dialTimeout}, Config: l.cfg, TLSConfig: l.tls}
	for range l.conns {
		c, err := d.DialConn(ctx, l.network, l.address)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil // stopped while dialling
			}
			return 0, err
		}
		conns = append(conns, c)
	}
	defer context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})()

	// The run ends at its duration, or when a connection fails; each
	// connection then stops sending and waits for its peer.
	end, cancel := ctx, context.CancelFunc(func() {})
	if l.duration > 0 {
		end, cancel = context.WithTimeout(ctx, l.duration)
	}
	defer cancel()
	start := time.Now()
	ticks := make(chan struct{})
	var ticker sync.WaitGroup
	ticker.Add(1)
	go func() {
		defer ticker.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				tick(l.done(), time.Since(start))
			case <-ticks:
				return
			}
		}
	}()
	g, gctx := errgroup.WithContext(end)
	for i, c := range conns {
		quota := int64(-1)
		if l.count > 0 {
			quota = l.count / int64(l.conns)
			if int64(i) < l.count%int64(l.conns) {
				quota++
			}
		}
		g.Go(func() error { return l.drive(gctx, c, i+1, quota) })
	}
	err := g.Wait()
	elapsed := time.Since(start)
	close(ticks)
	ticker.Wait()
	return elapsed, err
}

// done is the number of messages done: echoed, or without echo sent.
func (l *load) done() int64 {
	if l.echo {
		return l.received.Load()
	}
	return l.sent.Load()
}

// drain bounds how long a connection waits, once it has stopped sending, for
// the peer to return or read what it sent and close.
const drain = 10 * time.Second

// stopWrites bounds how long a write blocked on a peer that stopped reading
// goes on once the run has ended, so that -duration and a signal end the
// run within about a second.
const stopWrites = time.Second

// drive runs one connection: it sends quota messages (or, for a negative
// quota, until ctx is done), shuts down its sending side, and reads until
// the peer closes, checking that each message came back with echo. An echo
// server closes when it reads EOF, as any server does that serves until the
// end of the stream. id names the connection in errors. Whichever side
// fails closes c, which ends the other, and reports; a c closed by run (a
// signal) ends both without error.
func (l *load) drive(ctx context.Context, c *jsonconn.Conn, id int, quota int64) error {
	defer context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Now().Add(stopWrites)) })()
	var sent atomic.Int64
	// With echo, a slot per message in flight: the sender takes one before
	// each message, the receiver gives it back with the echo. sentAt[n %
	// window] is when message n left; the receiver reads it before it gives
	// the slot back, so the sender cannot overwrite it first.
	var slots chan struct{}
	var sentAt []time.Time
	if l.echo {
		slots = make(chan struct{}, l.window)
		sentAt = make([]time.Time, l.window)
	}
	// gctx also ends when the receiver fails, which frees a sender that
	// waits for a slot no echo will give back.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		m := newLoadMessage(l.size)
		for n := int64(0); n != quota; n++ {
			if slots != nil {
				select {
				case slots <- struct{}{}:
				case <-gctx.Done():
				}
			}
			if gctx.Err() != nil {
				break
			}
			m.set(n)
			if sentAt != nil {
				sentAt[n%int64(l.window)] = time.Now()
			}
			if _, err := c.Write(m); errors.Is(err, net.ErrClosed) {
				return nil
			} else if err != nil {
				if ctx.Err() != nil && isTimeout(err) {
					break // cut short by stopWrites at the end of the run
				}
				c.Close()
				return fmt.Errorf("conn %d: sending: %w", id, err)
			}
			sent.Add(1)
			l.sent.Add(1)
		}
		c.SetReadDeadline(time.Now().Add(drain))
		if err := c.CloseWrite(); errors.Is(err, net.ErrClosed) {
			return nil
		} else if err != nil {
			c.Close()
			return fmt.Errorf("conn %d: closing the sending side: %w", id, err)
		}
		return nil
	})
	g.Go(func() error {
		err := l.receive(c, id, &sent, slots, sentAt)
		if err != nil {
			c.Close()
		}
		return err
	})
	return g.Wait()
}

// isTimeout reports whether err is a deadline that struck.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// receive reads what the peer of connection id sends until it closes. With
// echo it checks that message n is the n'th sent, times its round trip from
// sentAt, and gives its slot back.
func (l *load) receive(c *jsonconn.Conn, id int, sent *atomic.Int64, slots chan struct{}, sentAt []time.Time) error {
	want := newLoadMessage(l.size)
	var rtt histogram
	defer func() {
		l.mu.Lock()
		l.rtt.merge(&rtt)
		l.mu.Unlock()
	}()
	n := int64(0)
	err := receive(c, func(msg []byte) error {
		if !l.echo {
			return nil // not an echo server: ignore what it says
		}
		want.set(n)
		if !bytes.Equal(msg, want) {
			return fmt.Errorf("message %d came back changed: %.80s", n, msg)
		}
		rtt.add(time.Since(sentAt[n%int64(l.window)]))
		<-slots
		n++
		l.received.Add(1)
		return nil
	})
	switch {
	case err == nil && l.echo && n != sent.Load():
		return fmt.Errorf("conn %d: the peer closed after returning %d of %d messages", id, n, sent.Load())
	case err == nil, errors.Is(err, net.ErrClosed):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("conn %d: the peer did not close within %v of the last message", id, drain)
	}
	return fmt.Errorf("conn %d: %w", id, err)
}

// A histogram counts durations in buckets of about 3% of their value, so
// that percentiles of millions of round trips cost a fixed 16 KiB. Bucket
// (e, s) holds the durations whose nanoseconds have their top bit at e and
// the next five bits equal to s.
type histogram struct {
	counts [64][32]int64
	n      int64
	max    time.Duration
}

func (h *histogram) add(d time.Duration) {
	ns := max(int64(d), 1)
	e := bits.Len64(uint64(ns)) - 1
	s := 0
	if e >= 5 {
		s = int(ns>>(e-5)) & 31
	} else {
		s = int(ns<<(5-e)) & 31
	}
	h.counts[e][s]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for e := range h.counts {
		for s := range h.counts[e] {
			h.counts[e][s] += o.counts[e][s]
		}
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the upper edge of the bucket that holds the q'th
// quantile, 0 <= q <= 1.
func (h *histogram) quantile(q float64) time.Duration {
	rank := int64(q*float64(h.n-1)) + 1
	for e := range h.counts {
		for s, c := range h.counts[e] {
			if rank -= c; rank <= 0 {
				var upper int64
				if e >= 5 {
					upper = int64(32+s+1) << (e - 5)
				} else {
					upper = int64(32+s+1) >> (5 - e)
				}
				return min(time.Duration(upper), h.max)
			}
		}
	}
	return h.max
}

// A meter prints a live progress line on stderr: rewritten in place with
// "\r" on a terminal, or one line a second otherwise.
type meter struct {
	w        io.Writer
	tty      bool
	size     int
	last     int64
	lastTime time.Duration
	printed  bool
}

func newMeter(w io.Writer, size int) (*meter, time.Duration) {
	m := &meter{w: w, size: size, tty: isTerminal(w)}
	if m.tty {
		return m, 200 * time.Millisecond
	}
	return m, time.Second
}

// tick prints the rate since the last tick.
func (m *meter) tick(done int64, elapsed time.Duration) {
	rate := float64(done-m.last) / (elapsed - m.lastTime).Seconds()
	m.last, m.lastTime = done, elapsed
	line := fmt.Sprintf("%6.1fs  %10d messages  %9.0f msg/s  %8.1f MB/s", elapsed.Seconds(), done, rate, rate*float64(m.size)/1e6)
	if m.tty {
		fmt.Fprintf(m.w, "\r%s", line)
		m.printed = true
	} else {
		fmt.Fprintln(m.w, line)
	}
}

// end finishes the progress line.
func (m *meter) end() {
	if m.printed {
		fmt.Fprintln(m.w)
	}
}

// report runs l with a progress meter on e.stderr, prints its summary on
// e.stdout, and returns the exit status: that of the signal that stopped it
// early, if one did.
func (l *load) report(ctx context.Context, e *env, cmd string, signalStatus func() int) int {
	m, interval := newMeter(e.stderr, l.size)
	elapsed, err := l.run(ctx, interval, m.tick)
	m.end()
	if s := signalStatus(); s >= 0 {
		// Stopped early: what was done so far is the result.
		fmt.Fprintf(e.stdout, "%s\n", l.summary(elapsed))
		return s
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "jsonconn %s: %v\n", cmd, err)
		return exitError
	}
	fmt.Fprintf(e.stdout, "%s\n", l.summary(elapsed))
	return exitOK
}

// summary describes a finished load.
func (l *load) summary(elapsed time.Duration) string {
	n, how := l.done(), "sent"
	if l.echo {
		how = "echoed"
	}
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	line := fmt.Sprintf("%d messages of %d bytes %s over %d connection(s) in %.2fs: %.0f msg/s, %.1f MB/s of payload",
		n, l.size, how, l.conns, secs, float64(n)/secs, float64(n)*float64(l.size)/secs/1e6)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.echo && l.rtt.n > 0 {
		r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
		line += fmt.Sprintf("\nround trips, %d in flight per connection: p50 %v, p90 %v, p99 %v, max %v",
			l.window, r(l.rtt.quantile(0.5)), r(l.rtt.quantile(0.9)), r(l.rtt.quantile(0.99)), r(l.rtt.max))
	}
	return line
}

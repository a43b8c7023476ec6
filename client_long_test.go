//go:build longtest

// The Client's long scenarios, run once by .ci/run in a step of their own
// (go test -tags longtest -run TestClientLong), not in every pass of
// go test ./...

package jsonconn_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jsonconn/jsonconn"
)

// TestClientLongRestarts restarts a server three times under a steady load
// of requests and replies, matched by id: every request is either answered
// or returned to its caller as failed, none is lost silently, and the server
// never receives one twice.
func TestClientLongRestarts(t *testing.T) {
	type message struct{ ID int64 }
	var mu sync.Mutex
	seen := map[int64]int{} // by the server, across restarts
	rs := startRestartable(t, jsonconn.HandlerFunc(func(ctx context.Context, c *jsonconn.Conn) {
		for {
			var m message
			if err := c.Receive(&m); err != nil {
				return
			}
			mu.Lock()
			seen[m.ID]++
			mu.Unlock()
			if err := c.Send(m); err != nil {
				return
			}
		}
	}))
	cl := newClient(t, rs.addr)
	ctx := hangCtx(t)

	// One reader hands each reply to the request waiting for it, and fails
	// every waiting request when the connection ends.
	var pmu sync.Mutex
	waiting := map[int64]chan error{}
	failAll := func(err error) {
		pmu.Lock()
		defer pmu.Unlock()
		for id, ch := range waiting {
			ch <- err
			delete(waiting, id)
		}
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			var m message
			err := cl.ReceiveContext(ctx, &m)
			switch {
			case errors.Is(err, jsonconn.ErrDisconnected):
				failAll(err)
				continue
			case err != nil:
				failAll(err)
				return
			}
			pmu.Lock()
			if ch, ok := waiting[m.ID]; ok {
				ch <- nil
				delete(waiting, m.ID)
			}
			pmu.Unlock()
		}
	}()

	var nextID, answered, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := nextID.Add(1)
				ch := make(chan error, 1)
				pmu.Lock()
				waiting[id] = ch
				pmu.Unlock()
				if err := cl.SendContext(ctx, message{id}); err != nil {
					pmu.Lock()
					delete(waiting, id)
					pmu.Unlock()
					if !errors.Is(err, jsonconn.ErrDisconnected) {
						t.Errorf("request %d: SendContext = %v, want nil or ErrDisconnected", id, err)
					}
					failed.Add(1)
					continue
				}
				select {
				case err := <-ch:
					if err == nil {
						answered.Add(1)
					} else {
						failed.Add(1)
					}
				case <-time.After(hangTimeout):
					t.Errorf("request %d was neither answered nor failed: lost silently", id)
					return
				}
			}
		}()
	}
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		rs.stop()
		time.Sleep(50 * time.Millisecond)
		rs.start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	a := answered.Load()
	if a == 0 {
		t.Fatal("no request was answered")
	}
	mu.Lock()
	for id, n := range seen {
		if n > 1 {
			t.Errorf("the server received request %d %d times", id, n)
		}
	}
	mu.Unlock()
	// The last restart's new connection must serve requests: the Client
	// recovered each time.
	if s := cl.Stats(); s.Connections < 4 {
		t.Errorf("stats %+v: want a connection after each of the 3 restarts", s)
	}
	t.Logf("%d requests: %d answered, %d failed and returned to their callers; stats %+v", nextID.Load(), a, failed.Load(), cl.Stats())
	cl.Close()
	<-readerDone
}

// TestClientLongJitter has 200 clients whose server vanishes for a second:
// their attempts to reconnect spread over time instead of arriving in
// waves. The measure is the largest share of all attempts made in the
// second after the server vanished that fall in any 10 ms window.
func TestClientLongJitter(t *testing.T) {
	const clients = 200
	rs := startRestartable(t, nil)
	var mu sync.Mutex
	var attempts []time.Time
	ctx := hangCtx(t)
	var readers sync.WaitGroup
	cls := make([]*jsonconn.Client, clients)
	for i := range cls {
		cl := &jsonconn.Client{Address: rs.addr, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
		cl.OnStateChange = func(s jsonconn.ClientState, err error) {
			if s == jsonconn.ClientDialing {
				mu.Lock()
				attempts = append(attempts, time.Now())
				mu.Unlock()
			}
		}
		cls[i] = cl
		if err := cl.SendContext(ctx, i); err != nil {
			t.Fatal(err)
		}
		readers.Add(1)
		go func() { // notices the end of each connection
			defer readers.Done()
			for {
				if err := cl.ReceiveContext(ctx, new(any)); err != nil && !errors.Is(err, jsonconn.ErrDisconnected) {
					return
				}
			}
		}()
	}
	mu.Lock()
	attempts = attempts[:0]
	mu.Unlock()
	vanished := time.Now()
	rs.stop()
	time.Sleep(time.Second)
	mu.Lock()
	var in []time.Time
	for _, a := range attempts {
		if a.Sub(vanished) < time.Second {
			in = append(in, a)
		}
	}
	mu.Unlock()
	rs.start()
	for _, cl := range cls {
		cl.Close()
	}
	readers.Wait()

	if len(in) < clients {
		t.Fatalf("%d attempts in the second after the server vanished, want at least one per client", len(in))
	}
	most := 0
	for i, a := range in {
		n := 0
		for _, b := range in[i:] {
			if b.Sub(a) < 10*time.Millisecond && !b.Before(a) {
				n++
			}
		}
		most = max(most, n)
	}
	share := float64(most) / float64(len(in))
	t.Logf("%d attempts; at most %d (%.1f%%) in any 10 ms window", len(in), most, 100*share)
	// The first retries are spread over [0, 100 ms), the later ones wider:
	// about 5% of the attempts fall in the busiest 10 ms here, against a
	// quarter without jitter (each client's first retry at once).
	if share > 0.15 {
		t.Fatalf("%.1f%% of the attempts fell in one 10 ms window: the clients reconnect in step", 100*share)
	}
}

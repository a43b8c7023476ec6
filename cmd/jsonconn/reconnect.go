package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jsonconn/jsonconn"
)

// reconnectOptions are dial's flags for dial -reconnect.
type reconnectOptions struct {
	dialer       jsonconn.Dialer
	pretty       bool
	policy       badPolicy
	max          int
	wait         time.Duration
	signalStatus func() int
}

// dialReconnect is dial -reconnect: a jsonconn.Client keeps the connection
// to ep up across server restarts. Each stdin line goes out on the current
// connection, waiting for one while the Client redials; a line whose
// connection ended before it left whole is sent again on the next (it never
// arrived, so it is never sent twice). Lines sent on a connection that then
// ended may not have arrived, and dial says which on stderr. Once stdin
// ends, dial goes on printing for -wait, or until interrupted.
func dialReconnect(ctx context.Context, e *env, ep endpoint, o reconnectOptions) int {
	// Lines go out as they were typed, as without -reconnect: the Client's
	// encoding passes a json.RawMessage through unchanged (Send would
	// compact it), and still validates it.
	cfg := *ep.cfg
	cfg.Marshal = func(v any) ([]byte, error) {
		if m, ok := v.(json.RawMessage); ok {
			return m, nil
		}
		return json.Marshal(v)
	}
	o.dialer.Config = &cfg

	// The stdin lines sent on the current connection, for the report when
	// it ends.
	var mu sync.Mutex
	var first, last int
	sentOn := func(n int) {
		mu.Lock()
		defer mu.Unlock()
		if first == 0 {
			first = n
		}
		last = n
	}
	prev, connections := jsonconn.ClientIdle, 0
	cl := &jsonconn.Client{
		Network: ep.network,
		Address: ep.address,
		Dialer:  &o.dialer,
		OnStateChange: func(s jsonconn.ClientState, err error) {
			defer func() { prev = s }()
			switch {
			case s == jsonconn.ClientConnected:
				if connections++; connections > 1 {
					fmt.Fprintf(e.stderr, "jsonconn dial: reconnected to %s\n", ep.address)
				}
			case s == jsonconn.ClientBackoff && prev == jsonconn.ClientConnected:
				mu.Lock()
				f, l := first, last
				first, last = 0, 0
				mu.Unlock()
				fmt.Fprintf(e.stderr, "jsonconn dial: connection to %s lost (%v); reconnecting\n", ep.address, err)
				switch {
				case f == 0:
				case f == l:
					fmt.Fprintf(e.stderr, "jsonconn dial: stdin:%d was sent on that connection and may not have arrived\n", f)
				default:
					fmt.Fprintf(e.stderr, "jsonconn dial: stdin:%d-%d were sent on that connection and may not have arrived\n", f, l)
				}
			case s == jsonconn.ClientBackoff && connections == 0 && prev == jsonconn.ClientDialing:
				fmt.Fprintf(e.stderr, "jsonconn dial: %v; retrying\n", err)
			}
		},
	}
	defer cl.Close()

	out := newPrinter(e.stdout, o.pretty)
	received := make(chan error, 1)
	go func() {
		for {
			var m json.RawMessage
			err := cl.ReceiveContext(ctx, &m)
			switch {
			case errors.Is(err, jsonconn.ErrDisconnected):
				continue // the state change said so
			case err != nil:
				received <- err
				return
			}
			if err := out.print("", m, ""); err != nil {
				received <- err
				return
			}
		}
	}()

	snd := &sender{e: e, cmd: "dial", policy: o.policy, max: o.max}
	sent := make(chan error, 1)
	go func() {
		sent <- snd.run(e.stdin, func(line []byte) error {
			for {
				err := cl.SendContext(ctx, json.RawMessage(line))
				if !errors.Is(err, jsonconn.ErrDisconnected) {
					if err == nil {
						sentOn(snd.line)
					}
					return err
				}
				// It did not leave whole: the next connection gets it.
				fmt.Fprintf(e.stderr, "jsonconn dial: stdin:%d: the connection ended before it was sent; sending it on the next\n", snd.line)
			}
		})
	}()

	var waited <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			cl.Close()
			return o.signalStatus()
		case err := <-sent:
			sent = nil
			switch {
			case errors.Is(err, context.Canceled) && ctx.Err() != nil:
				continue // a signal; ctx.Done reports it
			case err != nil && !errors.Is(err, errStopped):
				fmt.Fprintf(e.stderr, "jsonconn dial: %s: %v\n", ep.address, err)
				return exitError
			}
			if o.wait > 0 {
				waited = time.After(o.wait)
			}
		case err := <-received:
			if ctx.Err() != nil {
				continue
			}
			fmt.Fprintf(e.stderr, "jsonconn dial: %s: %v\n", ep.address, err)
			return exitError
		case <-waited:
			if snd.bad.Load() > 0 {
				return exitBadInput
			}
			return exitOK
		}
	}
}

package jsonconn

import "time"

// Held reports the bytes of buffer a Reader holds (0 when idle), for tests
// of the buffering policy.
func (r *Reader) Held() int {
	if r.bufp == nil {
		return 0
	}
	return len(*r.bufp)
}

// Held reports the bytes of buffer a Conn holds for reading and for a pending
// frame rest.
func (c *Conn) Held() int {
	c.rmu.Lock()
	n := c.r.Held()
	c.rmu.Unlock()
	c.wmu.Lock()
	if c.w.pendp != nil {
		n += len(*c.w.pendp)
	}
	c.wmu.Unlock()
	return n
}

// ReadBufferSize is the payload capacity of a Reader's default buffer.
const ReadBufferSize = readBufferSize

// HeldPending reports the bytes of buffer a Writer holds for a pending
// frame rest.
func (w *Writer) HeldPending() int {
	if w.pendp == nil {
		return 0
	}
	return len(*w.pendp)
}

// Valid is the package's JSON validator, for the differential tests against
// json.Valid.
var Valid = valid

// ForceVectored makes w take the writev path for batches, as on a socket,
// over any writer: net.Buffers then writes buffer by buffer, which exercises
// the same bookkeeping of how much of the batch left.
func (w *Writer) ForceVectored() { w.vectored = true }

// UnmarshalStd is Receive's decoder without a Config codec, for the
// differential tests against json.Unmarshal.
var UnmarshalStd = unmarshalStd

// Queued reports how many writers are queued behind the one sending.
func (c *Conn) Queued() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return len(c.queue)
}

// Sending reports whether a writer is sending.
func (c *Conn) Sending() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.sending
}

// OnBatch makes c call f with the number of messages of each batch it
// sends. It must be called before c is used.
func (c *Conn) OnBatch(f func(n int)) { c.testHookBatch = f }

// SetServerWriteTimeout attaches to c the state of a Server with the
// per-message write timeout d, as Serve does. It must be called before c is
// used.
func (c *Conn) SetServerWriteTimeout(d time.Duration) {
	(&Server{WriteTimeout: d}).newServedConn(c, func() {})
}

// ReadsSocket reports whether c reads its socket directly (see sockSource)
// rather than through the wrapped conn's Read.
func (c *Conn) ReadsSocket() bool { return c.r.sock != nil }

// HasReadPad reports whether c has the pad that reads from sources other
// than a socket land in while nothing is buffered.
func (c *Conn) HasReadPad() bool { return c.r.pad != nil }

// LogLimiterAllows runs a fresh log limiter over lines at the given times,
// forced where force says so (force may be shorter than at), and returns
// which were let through and how many dropped lines each reported.
func LogLimiterAllows(at []time.Time, force []bool) (ok []bool, dropped []int) {
	var l logLimiter
	for i, now := range at {
		o, d := l.allow(now, i < len(force) && force[i])
		ok, dropped = append(ok, o), append(dropped, d)
	}
	return ok, dropped
}

// LogBurst and LogRate are the limits of the Server's log of ended
// connections.
const (
	LogBurst = logBurst
	LogRate  = logRate
)

// LogEnd logs the end of c on srv's log as a Server does when a handler
// returns: as a handler panic if panicked, and otherwise as an idle timeout.
func LogEnd(srv *Server, c *Conn, panicked bool) {
	if panicked {
		srv.logEnd(c, endPanic, nil, "boom", []byte("stack"))
		return
	}
	srv.logEnd(c, endIdleTimeout, nil, nil, nil)
}

// HoldsTooMuch is the Reader's rule for shedding a buffer larger than what
// it holds calls for.
var HoldsTooMuch = holdsTooMuch

// Pending reports how many bytes of a committed frame are waiting to be
// sent.
func (w *Writer) Pending() int { return len(w.pending) }

// Pending reports how many bytes of a committed frame wait to be sent. It
// takes the write lock, so it waits for a write in progress.
func (c *Conn) Pending() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.w.pending)
}

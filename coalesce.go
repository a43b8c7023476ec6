package jsonconn

import "sync"

// Coalescing concurrent writers.
//
// A Write or Send that finds another one sending does not wait for the write
// lock: it queues its message and sleeps. The goroutine that holds the write
// side sends its own message; when it is done, it wakes the first queued
// writer, which sends its own message together with every message queued
// behind it, in one writev on a socket (Writer.writeFrames), and so on. Under
// contention each system call carries many messages, as WriteBatch does,
// while each caller still gets its own message's result; alone, a writer
// pays two uncontended lock operations for it. Messages of one goroutine stay
// in its order, since it waits for each; the messages of different goroutines
// were never ordered.
//
// Each message keeps Write's all-or-nothing rule. A batch cut by a timeout
// commits the messages whose frames left (the one cut in the middle gets
// ErrPending, its rest going out first next time) and reports the others as
// not sent, with the timeout. A non-timeout error fails the messages not
// sent. Close unblocks queued writers with the sender: its write fails, and
// each writer it then wakes finds the Conn closed.

// A writeReq is a message queued for the sender.
type writeReq struct {
	p []byte

	// Set by the sender before it signals done: either the result, or
	// lead, which makes the waiter the next sender.
	n    int
	err  error
	lead bool
	done chan struct{} // buffered: the sender never blocks on it
}

var writeReqs = sync.Pool{New: func() any { return &writeReq{done: make(chan struct{}, 1)} }}

// writeMessage sends p, which has passed the checks, as one message, in a
// batch with the messages of any writers queued meanwhile.
func (c *Conn) writeMessage(p []byte) (int, error) {
	c.qmu.Lock()
	if !c.sending {
		c.sending = true
		c.qmu.Unlock()
		return c.sendQueued(p)
	}
	r := writeReqs.Get().(*writeReq)
	r.p = p
	c.queue = append(c.queue, r)
	c.qmu.Unlock()

	<-r.done
	n, err, lead := r.n, r.err, r.lead
	*r = writeReq{done: r.done}
	writeReqs.Put(r)
	if lead {
		return c.sendQueued(p)
	}
	return n, err
}

// maxRounds bounds the batches a sender sends before it hands the write
// side to a queued writer: its own call returns only when it is done, so
// the bound is the extra latency a sender pays for the others' throughput.
const maxRounds = 8

// sendQueued is called by the sender, the one goroutine that sends at a
// time. It sends p and the messages queued so far; while writers queued
// meanwhile, it sends theirs too, up to maxRounds batches, and then hands
// the write side to the first of them. It returns p's result.
func (c *Conn) sendQueued(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.qmu.Lock()
	batch := c.queue
	c.queue = c.spare[:0]
	c.qmu.Unlock()
	n, err := c.sendBatch(p, batch)
	for rounds := 1; ; rounds++ {
		c.qmu.Lock()
		switch {
		case len(c.queue) == 0:
			c.sending = false
		case rounds == maxRounds:
			next := c.queue[0]
			c.queue = c.queue[:copy(c.queue, c.queue[1:])]
			next.lead = true
			next.done <- struct{}{}
		default:
			// Swap: the queue becomes the batch, the sent batch's
			// array the queue.
			batch, c.queue = c.queue, batch[:0]
			c.qmu.Unlock()
			c.sendBatch(nil, batch)
			continue
		}
		c.spare = batch[:0]
		c.qmu.Unlock()
		return n, err
	}
}

// sendBatch sends p, unless it is nil, and the queued messages of batch in
// one write, tells each queued writer its result and wakes it, and returns
// p's result. wmu must be held.
func (c *Conn) sendBatch(p []byte, batch []*writeReq) (n int, err error) {
	if len(batch) == 0 { // alone: the common, uncontended case
		if c.testHookBatch != nil {
			c.testHookBatch(1)
		}
		n, err = c.writeLocked(func() (int, error) { return c.w.writeFrame(p) })
		return n, c.writeError(err)
	}
	msgs := c.msgs[:0]
	if p != nil {
		msgs = append(msgs, p)
	}
	for _, r := range batch {
		msgs = append(msgs, r.p)
	}
	if c.testHookBatch != nil {
		c.testHookBatch(len(msgs))
	}
	k, berr := c.writeLocked(func() (int, error) { return c.w.writeFrames(msgs) })
	i := 0
	if p != nil {
		n, err = c.batchResult(msgs, 0, k, berr)
		i = 1
	}
	for _, r := range batch {
		r.n, r.err = c.batchResult(msgs, i, k, berr)
		i++
		r.done <- struct{}{}
	}
	clear(msgs) // keep no caller's memory
	c.msgs = msgs[:0]
	clear(batch)
	return n, err
}

// batchResult returns what Write returns for message i of a batch of which
// writeFrames committed k, with error err: len for a message that left
// whole, len and ErrPending for the one cut in the middle, 0 and the error
// for the others.
func (c *Conn) batchResult(msgs [][]byte, i, k int, err error) (int, error) {
	pe, cut := err.(*pendingError)
	switch {
	case i < k-1, i == k-1 && !cut:
		return len(msgs[i]), nil
	case i == k-1:
		return len(msgs[i]), c.writeError(err)
	case cut:
		return 0, c.writeError(pe.err)
	}
	return 0, c.writeError(err)
}

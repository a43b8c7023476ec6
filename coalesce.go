package jsonconn

import (
	"errors"
	"sync"
)

// Coalescing concurrent writers.
//
// A Write or Send that finds another one sending does not wait for the write
// lock: it queues its message and sleeps. The goroutine sending (the sender)
// sends its own message together with every message queued when it takes
// the write lock, as one batch through Writer.writeFrames (one writev on TCP
// and Unix sockets; a write per frame elsewhere), tells each queued writer
// its result, and returns. If more writers queued meanwhile, it first hands
// the write side to the earliest of them, which becomes the sender for the
// next batch. So each call returns once its own batch is out, however busy
// the Conn; under contention a system call carries several messages, as
// WriteBatch does; and a writer alone pays only uncontended locking and
// allocates nothing. A goroutine's messages keep its order, since it waits
// for each; the messages of different goroutines were never ordered.
//
// Each message keeps Write's all-or-nothing rule. In a batch cut by a
// timeout, the messages whose frames left are committed, the one cut in the
// middle gets ErrPending (its rest goes out first next time), and the others
// are not sent and get the timeout. After a non-timeout error, the messages
// not sent get the error. Close unblocks queued writers through the sender,
// whose write fails with the Conn's. If the wrapped conn's Write panics, the
// queued writers of that batch get errWritePanicked and the next batch goes
// on; the panic continues in the sender.
//
// A Server's WriteTimeout is a deadline per message, so a served Conn does
// not batch: each sender sends its own message alone and hands over.

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

// errWritePanicked is the result of the queued messages of a batch whose
// write panicked: whether they left is unknown.
var errWritePanicked = errors.New("jsonconn: the wrapped conn's Write panicked; the message may not have been sent")

// writeMessage sends p, which has passed the checks, as one message, in a
// batch with the messages of the writers queued meanwhile.
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

// sendQueued is run by the sender, the one goroutine sending at a time: it
// sends p and the messages queued so far, wakes their writers, hands the
// write side to the earliest writer queued meanwhile, if any, and returns
// p's result.
func (c *Conn) sendQueued(p []byte) (n int, err error) {
	c.wmu.Lock()
	var batch []*writeReq
	if c.writeTimeout == 0 {
		// The queue becomes the batch, and the spare array, if any, the
		// queue: the three never share an array.
		c.qmu.Lock()
		batch = c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.qmu.Unlock()
	}
	sent := false
	defer func() {
		if !sent { // the wrapped conn's Write panicked
			clear(c.msgs[:cap(c.msgs)])
			c.wmu.Unlock()
			for _, r := range batch {
				r.n, r.err = 0, errWritePanicked
			}
			c.handOff(batch)
		}
	}()
	n, err = c.sendBatch(p, batch)
	sent = true
	c.wmu.Unlock()
	c.handOff(batch)
	return n, err
}

// handOff wakes the writers of batch, whose results are set, and makes the
// earliest writer queued since the next sender, if there is one.
func (c *Conn) handOff(batch []*writeReq) {
	for _, r := range batch {
		r.done <- struct{}{}
	}
	clear(batch) // keep no request
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if cap(batch) > 0 {
		c.spare = batch[:0]
	}
	if len(c.queue) == 0 {
		c.sending = false
		return
	}
	next, last := c.queue[0], len(c.queue)-1
	copy(c.queue, c.queue[1:])
	c.queue[last] = nil // keep no request
	c.queue = c.queue[:last]
	next.lead = true
	next.done <- struct{}{}
}

// sendBatch sends p and the queued messages of batch in one write, sets
// each queued writer's result, and returns p's. wmu must be held.
func (c *Conn) sendBatch(p []byte, batch []*writeReq) (n int, err error) {
	if c.testHookBatch != nil {
		c.testHookBatch(1 + len(batch))
	}
	if len(batch) == 0 { // alone: the common, uncontended case
		n, err = c.writeLocked(func() (int, error) { return c.w.writeFrame(p) })
		return n, c.writeError(err)
	}
	msgs := append(c.msgs[:0], p)
	for _, r := range batch {
		msgs = append(msgs, r.p)
	}
	k, berr := c.writeLocked(func() (int, error) { return c.w.writeFrames(msgs) })
	n, err = c.batchResult(msgs, 0, k, berr)
	for i, r := range batch {
		r.n, r.err = c.batchResult(msgs, i+1, k, berr)
	}
	clear(msgs) // keep no caller's memory
	c.msgs = msgs[:0]
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

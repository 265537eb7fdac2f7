package pipeline

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
)

// workers runs handle on a consumer's messages in n goroutines: a
// JetStream Consume handler runs one message at a time, and both stages
// need more.
//
// Messages taken from the consumer wait in a queue for a free worker.
// Every message the pool holds, queued or in hand, is kept alive: at each
// heartbeat, one that JetStream has heard nothing of for half a heartbeat
// is said to be in progress, so that a slow stage (a job waiting for Intercom's rate limit,
// a first attempt at a slow Intercom) never has a message handed out a
// second time, while the consumer's AckWait, three heartbeats, stays short
// enough for a dead replica's messages to go on elsewhere within seconds.
// A message handled at once is never heartbeated.
type workers struct {
	cc jetstream.ConsumeContext

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []heldMsg
	inHand []heldMsg // by worker; msg nil while the worker waits
	closed bool

	wg     sync.WaitGroup
	stopHB chan struct{}
	once   sync.Once
}

// heldMsg is a message the pool holds, and when JetStream last heard of it:
// its delivery, or its last heartbeat.
type heldMsg struct {
	msg  jetstream.Msg
	said time.Time
}

// startWorkers consumes from cons, batch messages per pull request, and
// keeps each message alive every heartbeat; cons's AckWait must be at
// least three of them. The queue takes what comes, so the consumer's
// MaxAckPending bounds how many messages the pool holds.
func startWorkers(cons jetstream.Consumer, n, batch int, heartbeat time.Duration, handle func(jetstream.Msg)) (*workers, error) {
	w := &workers{stopHB: make(chan struct{}), inHand: make([]heldMsg, n)}
	w.cond = sync.NewCond(&w.mu)
	for i := range n {
		w.wg.Go(func() {
			for {
				msg, ok := w.next(i)
				if !ok {
					return
				}
				handle(msg)
				w.handled(i)
			}
		})
	}
	w.wg.Go(func() { w.heartbeat(heartbeat) })
	cc, err := cons.Consume(w.enqueue, broker.PullOptions(batch)...)
	if err != nil {
		w.close()
		return nil, err
	}
	w.cc = cc
	return w, nil
}

func (w *workers) enqueue(msg jetstream.Msg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		msg.Nak()
		return
	}
	w.queue = append(w.queue, heldMsg{msg: msg, said: time.Now()})
	w.cond.Signal()
}

// next waits for a queued message and puts it in worker i's hand; false
// once the pool is closed.
func (w *workers) next(i int) (jetstream.Msg, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) == 0 && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return nil, false
	}
	m := w.queue[0]
	w.queue[0] = heldMsg{}
	w.queue = w.queue[1:]
	w.inHand[i] = m
	return m.msg, true
}

// handled empties worker i's hand.
func (w *workers) handled(i int) {
	w.mu.Lock()
	w.inHand[i] = heldMsg{}
	w.mu.Unlock()
}

// heartbeat says "in progress", every heartbeat, for each message
// JetStream has heard nothing of for half of one: so none is silent for
// more than one and a half, half the AckWait of three, and one handled
// within half a heartbeat of its delivery gets none.
func (w *workers) heartbeat(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-w.stopHB:
			return
		case <-t.C:
		}
		now := time.Now()
		due = due[:0]
		w.mu.Lock()
		for _, list := range [][]heldMsg{w.queue, w.inHand} {
			for i := range list {
				if list[i].msg != nil && now.Sub(list[i].said) >= every/2 {
					list[i].said = now
					due = append(due, list[i].msg)
				}
			}
		}
		w.mu.Unlock()
		for _, m := range due {
			m.InProgress()
		}
		clear(due)
	}
}

// close ends the workers once their messages in hand are done, and puts
// the queued ones back at once, for another replica or the next start.
func (w *workers) close() {
	w.mu.Lock()
	w.closed = true
	queued := w.queue
	w.queue = nil
	w.cond.Broadcast()
	w.mu.Unlock()
	for _, m := range queued {
		m.msg.Nak()
	}
	close(w.stopHB)
	w.wg.Wait()
}

// stop stops taking messages and waits for those in hand; what was not
// acked is redelivered later.
func (w *workers) stop() {
	w.once.Do(func() {
		w.cc.Drain()
		<-w.cc.Closed()
		w.close()
	})
}

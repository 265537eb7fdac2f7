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
// While they wait, JetStream is told every heartbeat that they are in
// progress, so that a slow stage (a job waiting for Intercom's rate limit)
// never has a queued message handed out a second time; the handler keeps
// its own message alive the same way once it has it.
type workers struct {
	cc jetstream.ConsumeContext

	mu     sync.Mutex
	cond   *sync.Cond
	queue  []jetstream.Msg
	closed bool

	wg     sync.WaitGroup
	stopHB chan struct{}
	once   sync.Once
}

// startWorkers consumes from cons, pulling up to batch messages ahead.
func startWorkers(cons jetstream.Consumer, n, batch int, heartbeat time.Duration, handle func(jetstream.Msg)) (*workers, error) {
	w := &workers{stopHB: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	for range n {
		w.wg.Go(func() {
			for {
				msg, ok := w.next()
				if !ok {
					return
				}
				handle(msg)
			}
		})
	}
	w.wg.Go(func() { w.heartbeat(heartbeat) })
	cc, err := cons.Consume(w.enqueue, jetstream.PullMaxMessages(batch), jetstream.PullExpiry(broker.PullExpiry))
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
	w.queue = append(w.queue, msg)
	w.cond.Signal()
}

// next waits for a queued message; false once the pool is closed.
func (w *workers) next() (jetstream.Msg, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.queue) == 0 && !w.closed {
		w.cond.Wait()
	}
	if w.closed {
		return nil, false
	}
	msg := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	return msg, true
}

func (w *workers) heartbeat(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stopHB:
			return
		case <-t.C:
		}
		w.mu.Lock()
		queued := append([]jetstream.Msg(nil), w.queue...)
		w.mu.Unlock()
		for _, m := range queued {
			m.InProgress()
		}
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
		m.Nak()
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

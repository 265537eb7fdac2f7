package pipeline

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// workers runs handle on a consumer's messages in n goroutines: a
// JetStream Consume handler runs one message at a time, and both stages
// need more.
type workers struct {
	cc   jetstream.ConsumeContext
	work chan jetstream.Msg
	wg   sync.WaitGroup
	once sync.Once
}

// startWorkers consumes from cons, pulling up to batch messages ahead.
func startWorkers(cons jetstream.Consumer, n, batch int, handle func(jetstream.Msg)) (*workers, error) {
	w := &workers{work: make(chan jetstream.Msg)}
	for range n {
		w.wg.Go(func() {
			for msg := range w.work {
				handle(msg)
			}
		})
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { w.work <- msg }, jetstream.PullMaxMessages(batch))
	if err != nil {
		close(w.work)
		w.wg.Wait()
		return nil, err
	}
	w.cc = cc
	return w, nil
}

// stop stops taking messages and waits for those in hand; what was not
// acked is redelivered later.
func (w *workers) stop() {
	w.once.Do(func() {
		w.cc.Drain()
		<-w.cc.Closed()
		close(w.work)
		w.wg.Wait()
	})
}

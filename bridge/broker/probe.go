package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Probe asks JetStream about a stream at an interval, so that readiness
// follows the ability to store and consume, not only the connection: a
// cluster that lost its quorum, or a stream without a leader, keeps the
// connection up but answers nothing.
type Probe struct {
	js      jetstream.JetStream
	stream  string
	timeout time.Duration

	mu      sync.Mutex
	problem error // nil: the last probe was answered

	stop chan struct{}
	done chan struct{}
}

// StartProbe probes stream every interval, each probe waiting at most
// timeout for an answer. The first probe runs at once.
func StartProbe(js jetstream.JetStream, stream string, every, timeout time.Duration) *Probe {
	p := &Probe{js: js, stream: stream, timeout: timeout, stop: make(chan struct{}), done: make(chan struct{})}
	p.probe()
	go p.run(every)
	return p
}

func (p *Probe) run(every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.probe()
		}
	}
}

func (p *Probe) probe() {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	// One stream info request: it reaches the stream's leader.
	s, err := p.js.Stream(ctx, p.stream)
	if err == nil && s.CachedInfo().Cluster != nil && s.CachedInfo().Cluster.Leader == "" {
		// A replica answers for a stream that has gone without a leader
		// for a while, so an answer alone does not mean it can store.
		err = errors.New("no leader (replicas without a quorum)")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v", p.timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.problem = fmt.Errorf("stream %s: %w", p.stream, err)
	} else {
		p.problem = nil
	}
}

// Problem is why the last probe failed; nil when it was answered.
func (p *Probe) Problem() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.problem
}

// Stop ends the probing.
func (p *Probe) Stop() {
	close(p.stop)
	<-p.done
}

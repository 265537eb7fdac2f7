package pipeline

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// workersFixture is a stream of its own with a durable consumer whose
// AckWait is three heartbeats, as both stages' are, and a count of the
// "in progress" acks its messages get, read off the wire.
type workersFixture struct {
	js        jetstream.JetStream
	cons      jetstream.Consumer
	heartbeat time.Duration

	mu       sync.Mutex
	progress int            // "+WPI" acks seen
	handled  map[string]int // handle calls by message data
}

func newWorkersFixture(t *testing.T, heartbeat time.Duration) *workersFixture {
	t.Helper()
	ctx := context.Background()
	js := natstest.JetStream(t)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "W", Subjects: []string{"w.>"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &workersFixture{js: js, heartbeat: heartbeat, handled: map[string]int{}}
	f.cons, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "w", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 3 * f.heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	// Another connection's view of the acks: what JetStream is told.
	spy, err := nats.Connect(js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(spy.Close)
	if _, err := spy.Subscribe("$JS.ACK.W.w.>", func(m *nats.Msg) {
		if string(m.Data) == "+WPI" {
			f.mu.Lock()
			f.progress++
			f.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// start runs n workers whose handler takes hold for each message, then
// acks it.
func (f *workersFixture) start(t *testing.T, n int, hold time.Duration) {
	t.Helper()
	w, err := startWorkers(f.cons, n, 8, f.heartbeat, func(m jetstream.Msg) {
		f.mu.Lock()
		f.handled[string(m.Data())]++
		f.mu.Unlock()
		time.Sleep(hold)
		if err := m.DoubleAck(context.Background()); err != nil {
			t.Errorf("ack %s: %v", m.Data(), err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.stop)
}

func (f *workersFixture) publish(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if _, err := f.js.Publish(context.Background(), "w.msg", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// counts returns the handle calls, in all and by message data, and the
// "in progress" acks seen.
func (f *workersFixture) counts() (handledAll, progress int, handled map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.handled {
		handledAll += c
	}
	return handledAll, f.progress, maps.Clone(f.handled)
}

// Messages held longer than the consumer's AckWait, in a worker's hand
// or queued behind it, are kept alive: each is handled once, and
// JetStream redelivers none. One worker holds each of 3 messages for 5
// heartbeats, so the last waits 10 in the queue.
func TestWorkersKeepHeldMessagesAlive(t *testing.T) {
	t.Parallel()
	f := newWorkersFixture(t, 200*time.Millisecond)
	const n = 3
	f.start(t, 1, 5*f.heartbeat)
	f.publish(t, n)
	poll.For(t, 30*time.Second, "every message acked", func() bool {
		return natstest.Idle(context.Background(), f.js, [2]string{"W", "w"})
	})
	all, progress, handled := f.counts()
	for i := range n {
		if c := handled[fmt.Sprintf("m%d", i)]; c != 1 {
			t.Errorf("m%d handled %d times", i, c)
		}
	}
	if all != n {
		t.Errorf("%d handle calls for %d messages", all, n)
	}
	info, err := f.cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered while held", info.NumRedelivered)
	}
	if progress == 0 {
		t.Error("no message was said to be in progress")
	}
}

// A message handled within half a heartbeat of its delivery costs no "in
// progress", even when it was queued at a heartbeat: bursts of 10
// messages every 100 ms for 3 s, each handled in 5 ms by one worker, so
// that the queue holds some half the time, none of them for long. (The
// heartbeat, 1 s, is long enough that no message waits that long on a
// loaded machine.)
func TestWorkersHeartbeatOnlyWhatWaits(t *testing.T) {
	t.Parallel()
	f := newWorkersFixture(t, time.Second)
	const bursts, each = 30, 10
	f.start(t, 1, 5*time.Millisecond)
	for range bursts {
		f.publish(t, each)
		time.Sleep(100 * time.Millisecond)
	}
	poll.For(t, 30*time.Second, "every message acked", func() bool {
		return natstest.Idle(context.Background(), f.js, [2]string{"W", "w"})
	})
	if all, progress, _ := f.counts(); all != bursts*each || progress != 0 {
		t.Errorf("%d handle calls for %d messages, %d said in progress; want %d and 0", all, bursts*each, progress, bursts*each)
	}
}

// The workers' pull requests, both stages', expire within
// broker.PullExpiry and ask for heartbeats every broker.PullHeartbeat, so
// that one the server no longer holds is replaced within two heartbeats.
func TestWorkersPullRequests(t *testing.T) {
	t.Parallel()
	f := newWorkersFixture(t, time.Second)
	req := natstest.FirstPullRequest(t, f.js.Conn(), "W", "w", func() { f.start(t, 1, 0) })
	if req.Expires <= 0 || req.Expires > broker.PullExpiry || req.Heartbeat <= 0 || req.Heartbeat > broker.PullHeartbeat {
		t.Errorf("pull request %+v: expires in %s with heartbeats every %s; want at most %s and %s",
			req, req.Expires, req.Heartbeat, broker.PullExpiry, broker.PullHeartbeat)
	}
}

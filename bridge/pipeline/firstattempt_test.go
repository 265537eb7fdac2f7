package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/rules"
)

// firstAttemptRules send one email per order; its subject is the delivery
// key, so that the fake message sender counts messages per key.
const firstAttemptRules = `rules:
  - name: paid
    when: event.type == "order.paid"
    message:
      type: email
      from: "1"
      to: {type: user, id: '{{ .event.contact }}'}
      subject: 'paid/{{ .event.order }}'
      body: <p>Order {{ .event.order }}</p>
    dedupe: '{{ .event.order }}'
`

// newBothStages runs stage 1 over a sender fixture's stage 2, as a bridge
// does: stage 1 makes each job's first attempt.
func newBothStages(t *testing.T, client *fakeSender, setup senderSetup) *senderFixture {
	t.Helper()
	f := newSenderFixture(t, client, setup)
	set, err := rules.Parse([]rules.File{{Name: "test.yaml", Data: []byte(firstAttemptRules)}}, rules.Options{DefaultAdminID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	mt, err := StartMatcher(context.Background(), f.js, MatcherOptions{Topology: testTopology, Decoder: &event.Decoder{Stream: testTopology.Events.Name},
		Rules: func() *rules.Set { return set }, Log: zerolog.New(f.logs), Metrics: f.m, Sender: f.s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Stop)
	return f
}

// jobsStored is how many jobs the outbox ever stored.
func (f *senderFixture) jobsStored(t *testing.T) uint64 {
	t.Helper()
	s, err := f.js.Stream(context.Background(), testTopology.Outbox.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// eventsSettled reports whether stage 1 acked every stored event.
func (f *senderFixture) eventsSettled(t *testing.T) bool {
	t.Helper()
	c, err := f.js.Consumer(context.Background(), testTopology.Events.Name, testTopology.MatchConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func (f *senderFixture) entry(t *testing.T, key string) *ledgerEntry {
	t.Helper()
	e, _, err := f.s.ledger.get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// answerOnce fails the first request for each key with err, then accepts.
func answerOnce(err error) func(intercom.Message) error {
	var mu sync.Mutex
	failed := map[string]bool{}
	return func(m intercom.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if failed[m.Subject] {
			return nil
		}
		failed[m.Subject] = true
		return err
	}
}

// Stage 1 makes a job's first attempt itself; whatever would make stage 2
// put the job back hands it to the outbox, where stage 2 finishes it, and
// the message is sent once either way.
func TestFirstAttempt(t *testing.T) {
	t.Parallel()
	const key = "paid/o-1"
	tests := []struct {
		name   string
		client func() *fakeSender
		tune   func(*SenderOptions)
		// what the outbox stored, and the outcomes counted
		stored   uint64
		outcomes map[string]int
		sent     bool // else dead-lettered
	}{
		{name: "accepted: sent from stage 1, never stored",
			client:   func() *fakeSender { return &fakeSender{} },
			outcomes: map[string]int{OutcomeSent: 1, OutcomeRetry: 0}, sent: true},
		{name: "a 503: queued, retried by stage 2 as attempt 2",
			client: func() *fakeSender {
				return &fakeSender{answer: answerOnce(&intercom.Error{StatusCode: http.StatusServiceUnavailable})}
			},
			stored: 1, outcomes: map[string]int{OutcomeRetry: 1, OutcomeSent: 1}, sent: true},
		{name: "a 429: the key given back, sent later and never taken as uncertain",
			client: func() *fakeSender {
				return &fakeSender{answer: answerOnce(&intercom.Error{StatusCode: http.StatusTooManyRequests,
					RetryAt: time.Now().Add(200 * time.Millisecond)})}
			},
			// dead_letter: a key left pending would be dead-lettered once
			// its lease ran out.
			tune:   func(o *SenderOptions) { o.Policy.OnUncertain = "dead_letter" },
			stored: 1, outcomes: map[string]int{OutcomeRateLimited: 1, OutcomeSent: 1, OutcomeDeadLetter: 0}, sent: true},
		{name: "the pacer would make it wait: queued at once, sent by stage 2",
			client: func() *fakeSender {
				return &fakeSender{wait: func(ctx context.Context) error {
					if !intercom.MayWait(ctx) {
						return fmt.Errorf("POST /messages: %w", intercom.ErrWouldWait)
					}
					return nil
				}}
			},
			stored: 1, outcomes: map[string]int{OutcomeSent: 1, OutcomeRetry: 0, OutcomeRateLimited: 0}, sent: true},
		{name: "refused (400): dead-lettered from stage 1",
			client: func() *fakeSender {
				return &fakeSender{answer: func(intercom.Message) error { return &intercom.Error{StatusCode: http.StatusBadRequest} }}
			},
			outcomes: map[string]int{OutcomeDeadLetter: 1, OutcomeSent: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := tt.client()
			f := newBothStages(t, client, senderSetup{tune: tt.tune})
			storeEvent(t, f.js, "e1", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
			poll.For(t, 30*time.Second, "the job settled", func() bool {
				return f.outcomes("paid", OutcomeSent)+f.outcomes("paid", OutcomeDeadLetter) == 1 &&
					f.eventsSettled(t) && f.outboxEmpty()
			})
			if n := client.count(key); tt.sent && n != 1 || !tt.sent && n != 0 {
				t.Errorf("sent %d times", n)
			}
			if n := f.jobsStored(t); n != tt.stored {
				t.Errorf("the outbox stored %d jobs, want %d", n, tt.stored)
			}
			for outcome, want := range tt.outcomes {
				if got := f.outcomes("paid", outcome); got != want {
					t.Errorf("outcome %s counted %d times, want %d", outcome, got, want)
				}
			}
			e := f.entry(t, key)
			if tt.sent {
				if e == nil || e.State != stateSent || e.MessageID != "msg-"+key {
					t.Errorf("ledger entry %+v, want sent as msg-%s", e, key)
				}
				return
			}
			if e != nil {
				t.Errorf("ledger entry %+v of a message certainly not sent, want none", e)
			}
			dls := f.deadLetterEntries(t)
			if len(dls) != 1 || dls[0].Reason != ReasonPermanent || dls[0].Key != key || dls[0].EventID != "e1" || dls[0].Job == nil {
				t.Errorf("dead letters %+v, want one of %s, permanent, with its job", dls, key)
			}
		})
	}
}

// Two events with the same dedupe key at once: one message. The second
// finds the first's pending entry (or its sent one) and never sends.
func TestFirstAttemptSameKeyTwice(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	client := &fakeSender{answer: func(intercom.Message) error { <-release; return nil }}
	f := newBothStages(t, client, senderSetup{})
	storeEvent(t, f.js, "e1", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
	storeEvent(t, f.js, "e2", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
	poll.For(t, 10*time.Second, "the first request in flight", func() bool {
		_, calls := client.snapshot()
		return calls == 1
	})
	// The other event finds the key held by the request in flight: its
	// job is handed to the outbox, to be tried again later.
	poll.For(t, 10*time.Second, "the other job handed to the outbox", func() bool { return f.jobsStored(t) == 1 })
	close(release)
	poll.For(t, 30*time.Second, "both events settled", func() bool {
		return f.outcomes("paid", OutcomeSent) == 1 && f.outcomes("paid", OutcomeDuplicate) == 1 && f.eventsSettled(t) && f.outboxEmpty()
	})
	if _, calls := client.snapshot(); calls != 1 {
		t.Errorf("%d requests for one delivery key", calls)
	}
}

// A first attempt that takes longer than stage 1's AckWait, which is
// stage 2's, keeps its event: a request held for 3 AckWaits is one
// request, and JetStream hands the event out once. (The AckWait is longer
// than testTimeouts', so that a loaded machine's pauses do not count.)
func TestFirstAttemptLongerThanAckWait(t *testing.T) {
	t.Parallel()
	timeouts := testTimeouts
	timeouts.AckWait, timeouts.Heartbeat = 1500*time.Millisecond, 500*time.Millisecond
	client := &fakeSender{answer: func(intercom.Message) error { time.Sleep(3 * timeouts.AckWait); return nil }}
	f := newBothStages(t, client, senderSetup{timeouts: timeouts})
	storeEvent(t, f.js, "e1", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
	poll.For(t, 30*time.Second, "the job sent and its event acked", func() bool {
		return f.outcomes("paid", OutcomeSent) == 1 && f.eventsSettled(t)
	})
	if _, calls := client.snapshot(); calls != 1 {
		t.Errorf("%d requests for one event", calls)
	}
	c, err := f.js.Consumer(context.Background(), testTopology.Events.Name, testTopology.MatchConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.AckWait != timeouts.AckWait {
		t.Errorf("stage 1's AckWait is %v, stage 2's %v", info.Config.AckWait, timeouts.AckWait)
	}
	if info.NumRedelivered != 0 || info.Delivered.Consumer != 1 {
		t.Errorf("the event was delivered %d times (%d redelivered)", info.Delivered.Consumer, info.NumRedelivered)
	}
	if n := f.jobsStored(t); n != 0 {
		t.Errorf("%d jobs went to the outbox", n)
	}
}

// Stage 1 makes at most delivery.workers first attempts at once, and
// goes on matching while they are slow: with one worker and its one
// request held, the next event's job is queued in the outbox, and stage 2
// sends it meanwhile.
func TestFirstAttemptQueuesWhileSlotsAreTaken(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	client := &fakeSender{answer: func(m intercom.Message) error {
		if m.Subject == "paid/o-1" {
			<-release
		}
		return nil
	}}
	f := newBothStages(t, client, senderSetup{tune: func(o *SenderOptions) { o.Workers = 1 }})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	storeEvent(t, f.js, "e1", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
	poll.For(t, 10*time.Second, "the first request in flight", func() bool {
		_, calls := client.snapshot()
		return calls == 1
	})
	storeEvent(t, f.js, "e2", `{"type":"order.paid","order":"o-2","contact":"c2"}`)
	poll.For(t, 30*time.Second, "the second job queued and sent by stage 2", func() bool {
		return client.count("paid/o-2") == 1
	})
	if n := f.jobsStored(t); n != 1 {
		t.Errorf("the outbox stored %d jobs, want the second event's", n)
	}
	close(release)
	poll.For(t, 30*time.Second, "both sent", func() bool {
		return f.outcomes("paid", OutcomeSent) == 2 && f.eventsSettled(t) && f.outboxEmpty()
	})
	if client.count("paid/o-1") != 1 || client.count("paid/o-2") != 1 {
		t.Errorf("sent %d and %d times", client.count("paid/o-1"), client.count("paid/o-2"))
	}
}

// inFlightSender counts the requests in flight of first attempts (which
// may not wait, see intercom.WithoutWaiting) and of stage 2, each held for
// hold.
type inFlightSender struct {
	*fakeSender
	hold time.Duration

	mu        sync.Mutex
	now, most [2]int // [0]: first attempts, [1]: stage 2
}

func (s *inFlightSender) CreateMessage(ctx context.Context, m intercom.Message) (*intercom.SentMessage, error) {
	kind := 0
	if intercom.MayWait(ctx) {
		kind = 1
	}
	s.mu.Lock()
	s.now[kind]++
	s.most[kind] = max(s.most[kind], s.now[kind])
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.now[kind]--
		s.mu.Unlock()
	}()
	time.Sleep(s.hold)
	return s.fakeSender.CreateMessage(ctx, m)
}

// delivery.workers bounds the requests in flight, however many events
// wait: 60 events at once, each request held for 20 ms, 3 workers. Stage 1
// has 8 workers more than that, so only the slots keep its first attempts
// to 3 at once.
func TestFirstAttemptsInFlightAtMostWorkers(t *testing.T) {
	t.Parallel()
	const workers, n = 3, 60
	client := &fakeSender{}
	in := &inFlightSender{fakeSender: client, hold: 20 * time.Millisecond}
	f := newBothStages(t, client, senderSetup{sender: in, tune: func(o *SenderOptions) { o.Workers = workers }})
	for i := range n {
		storeEvent(t, f.js, fmt.Sprintf("e%d", i), fmt.Sprintf(`{"type":"order.paid","order":"o-%d","contact":"c%d"}`, i, i))
	}
	poll.For(t, 60*time.Second, "every message sent", func() bool {
		return f.outcomes("paid", OutcomeSent) == n && f.eventsSettled(t) && f.outboxEmpty()
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	if first, second := in.most[0], in.most[1]; first > workers || second > workers {
		t.Errorf("at most %d first attempts' and %d of stage 2's requests in flight at once, want at most %d each", first, second, workers)
	}
	if in.most[0] < 2 {
		t.Errorf("at most %d first attempt in flight: stage 1's workers did not send at once", in.most[0])
	}
	for i := range n {
		if c := client.count(fmt.Sprintf("paid/o-%d", i)); c != 1 {
			t.Errorf("o-%d sent %d times", i, c)
		}
	}
}

// gatedKV holds the writes of a key's "sent" record until open is closed.
type gatedKV struct {
	KV
	key     string        // the delivery key whose record waits
	entered chan struct{} // closed once such a write has begun
	open    chan struct{}
	once    sync.Once
}

func (k *gatedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	var e ledgerEntry
	if json.Unmarshal(value, &e) == nil && e.Key == k.key && e.State == stateSent {
		k.once.Do(func() { close(k.entered) })
		select {
		case <-k.open:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return k.KV.Put(ctx, key, value)
}

// A first attempt's slot bounds the requests to Intercom in flight, not
// the ledger's writes: once Intercom has answered, the next event's first
// attempt may go while the record of the last is still being written.
// With one worker and that record held, the second event is sent by stage
// 1 itself, and the outbox stores nothing.
func TestFirstAttemptFreesItsSlotOnTheAnswer(t *testing.T) {
	t.Parallel()
	client := &fakeSender{}
	kv := &gatedKV{key: "paid/o-1", entered: make(chan struct{}), open: make(chan struct{})}
	f := newBothStages(t, client, senderSetup{
		tune:   func(o *SenderOptions) { o.Workers = 1 },
		wrapKV: func(k KV) KV { kv.KV = k; return kv },
	})
	opened := false
	openGate := func() {
		if !opened {
			opened = true
			close(kv.open)
		}
	}
	defer openGate()
	storeEvent(t, f.js, "e1", `{"type":"order.paid","order":"o-1","contact":"c1"}`)
	select {
	case <-kv.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first message's sent record was never written")
	}
	storeEvent(t, f.js, "e2", `{"type":"order.paid","order":"o-2","contact":"c2"}`)
	poll.For(t, 30*time.Second, "the second message sent", func() bool {
		return client.count("paid/o-2") == 1
	})
	if n := f.jobsStored(t); n != 0 {
		t.Errorf("the outbox stored %d jobs, want none: the second event's first attempt waited for the first's record", n)
	}
	if e := f.entry(t, "paid/o-1"); e == nil || e.State != statePending {
		t.Errorf("the first key's entry is %+v while its record is held, want pending", e)
	}
	openGate()
	poll.For(t, 30*time.Second, "both recorded as sent", func() bool {
		return f.outcomes("paid", OutcomeSent) == 2 && f.eventsSettled(t) && f.outboxEmpty()
	})
	if client.count("paid/o-1") != 1 || client.count("paid/o-2") != 1 {
		t.Errorf("sent %d and %d times", client.count("paid/o-1"), client.count("paid/o-2"))
	}
	for _, key := range []string{"paid/o-1", "paid/o-2"} {
		if e := f.entry(t, key); e == nil || e.State != stateSent {
			t.Errorf("%s: entry %+v, want sent", key, e)
		}
	}
}

package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
	"github.com/intercom-bridge/bridge/rules"
)

// fakeSender is the message sender of the Sender's tests. It waits as a
// pacer would (wait), runs the before-send hook where a request would be
// written, and answers with answer (nil: accepted). It counts the messages
// it accepted by subject, which the tests set to the job's key.
type fakeSender struct {
	wait   func(ctx context.Context) error
	answer func(m intercom.Message) error

	mu       sync.Mutex
	accepted map[string]int
	first    map[string]time.Time // when each subject was first accepted
	calls    int
}

func (f *fakeSender) CreateMessage(ctx context.Context, m intercom.Message) (*intercom.SentMessage, error) {
	if f.wait != nil {
		if err := f.wait(ctx); err != nil {
			return nil, err
		}
	}
	if err := intercom.BeforeSend(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.answer != nil {
		if err := f.answer(m); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accepted == nil {
		f.accepted, f.first = map[string]int{}, map[string]time.Time{}
	}
	if f.accepted[m.Subject] == 0 {
		f.first[m.Subject] = time.Now()
	}
	f.accepted[m.Subject]++
	return &intercom.SentMessage{ID: "msg-" + m.Subject}, nil
}

func (f *fakeSender) count(subject string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted[subject]
}

// firstAt is when subject was first accepted; zero if never.
func (f *fakeSender) firstAt(subject string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first[subject]
}

func (f *fakeSender) snapshot() (accepted map[string]int, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	accepted = map[string]int{}
	for k, v := range f.accepted {
		accepted[k] = v
	}
	return accepted, f.calls
}

// slowPacer admits one request per every, in turn, as a pacer at a low
// rate limit does.
type slowPacer struct {
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

func (p *slowPacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.every)
	p.mu.Unlock()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(at.Sub(now)):
		return nil
	}
}

// testTopology is a bridge's with the config file's defaults.
var testTopology = broker.NewTopology(broker.TopologyOptions{Prefix: "bridge", Replicas: 1,
	EventsMaxAge: time.Hour, Duplicates: 10 * time.Minute, DedupeWindow: time.Hour, ContactsTTL: 24 * time.Hour})

// testTimeouts are short, so that a test sees redeliveries and leases run
// out in seconds.
var testTimeouts = Timeouts{Send: 2 * time.Second, PacerWait: time.Minute, Step: 2 * time.Second,
	AckWait: 600 * time.Millisecond, Heartbeat: 200 * time.Millisecond, Lease: 3 * time.Second}

// senderFixture is a real NATS server with the outbox and dead-letter
// streams and a Sender over a fake message sender.
type senderFixture struct {
	js     jetstream.JetStream
	m      *Metrics
	logs   *syncbuf.Buffer
	client *fakeSender
	s      *Sender
}

type senderSetup struct {
	tune     func(*SenderOptions)
	timeouts Timeouts
	wrapKV   func(KV) KV               // wraps the ledger's bucket
	seed     func(jetstream.JetStream) // runs on the streams before the Sender opens its buckets
	before   func(*senderFixture)
	contacts ContactFinder // looks recipients up; nil: only ids with a role
	sender   MessageSender // replaces the fake message sender
}

func newSenderFixture(t *testing.T, client *fakeSender, setup senderSetup) *senderFixture {
	t.Helper()
	ctx := context.Background()
	js := natstest.JetStream(t)
	for _, sc := range testTopology.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	if setup.seed != nil {
		setup.seed(js)
	}
	f := &senderFixture{js: js, m: NewMetrics(prometheus.NewRegistry()), logs: &syncbuf.Buffer{}, client: client}
	timeouts := setup.timeouts
	if timeouts == (Timeouts{}) {
		timeouts = testTimeouts
	}
	var err error
	var ms MessageSender = client
	if setup.sender != nil {
		ms = setup.sender
	}
	opts := SenderOptions{Topology: testTopology, Workers: 16, Client: ms, Timeouts: timeouts, Replica: "test",
		Policy: Policy{MaxAttempts: 5, OnUncertain: "resend",
			Backoff: func(attempt int) time.Duration { return Backoff(50*time.Millisecond, 200*time.Millisecond, attempt) }},
		Log: zerolog.New(f.logs), Metrics: f.m,
		Contacts: ContactsOptions{Finder: setup.contacts, FindByExternalID: true, TTL: time.Hour, NegativeTTL: time.Minute}}
	if setup.tune != nil {
		setup.tune(&opts)
	}
	f.s, err = newSender(ctx, js, opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup.wrapKV != nil {
		f.s.ledger.kv = setup.wrapKV(f.s.ledger.kv)
	}
	if setup.before != nil {
		setup.before(f)
	}
	if err := f.s.start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.s.Stop)
	return f
}

// testJob is a job whose message subject is its key, so that the fake
// counts messages per key.
func testJob(rule, dedupe string) *Job {
	key := DeliveryKey(rule, dedupe)
	return &Job{Key: key, Rule: rule, EventID: "ev-" + dedupe, Source: "shop", DedupeKey: dedupe,
		Message: rules.Message{MessageType: "email", Subject: key, Body: "<p>Hi</p>", Template: "plain",
			From: rules.Admin{Type: "admin", ID: "1"}, To: []rules.Recipient{{Type: "user", ID: "c-" + dedupe}}}}
}

func (f *senderFixture) publish(t *testing.T, job *Job) {
	t.Helper()
	m, err := JobMsg(testTopology, job)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func (f *senderFixture) outcomes(rule, outcome string) int {
	return int(testutil.ToFloat64(f.m.Deliveries.WithLabelValues(rule, outcome)))
}

func (f *senderFixture) deadLetters(reason string) int {
	return int(testutil.ToFloat64(f.m.DeadLetters.WithLabelValues(reason)))
}

// deadLetterEntries reads every dead letter in the stream, oldest first.
func (f *senderFixture) deadLetterEntries(t *testing.T) []DeadLetter {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, testTopology.DLQ.Name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		var d DeadLetter
		if err := json.Unmarshal(m.Data, &d); err != nil {
			t.Fatalf("dead letter %d: %v", seq, err)
		}
		out = append(out, d)
	}
	return out
}

// outboxEmpty reports whether every job was acked.
func (f *senderFixture) outboxEmpty() bool {
	s, err := f.js.Stream(context.Background(), testTopology.Outbox.Name)
	if err != nil {
		return false
	}
	info, err := s.Info(context.Background())
	return err == nil && info.State.Msgs == 0
}

// A job that waits for the pacer far longer than AckWait, queued or in
// hand, is neither handed out again nor sent twice: 40 jobs, one request
// admitted every 100 ms, AckWait 600 ms.
func TestSenderPacerWaitLongerThanAckWait(t *testing.T) {
	t.Parallel()
	pacer := &slowPacer{every: 100 * time.Millisecond}
	client := &fakeSender{wait: pacer.wait}
	f := newSenderFixture(t, client, senderSetup{})
	const n = 40
	for i := range n {
		f.publish(t, testJob("slow", fmt.Sprint(i)))
	}
	poll.For(t, 30*time.Second, "every job sent and acked", func() bool {
		return f.outcomes("slow", OutcomeSent) == n && f.outboxEmpty()
	})
	accepted, calls := client.snapshot()
	for i := range n {
		if c := accepted[DeliveryKey("slow", fmt.Sprint(i))]; c != 1 {
			t.Errorf("job %d sent %d times", i, c)
		}
	}
	if calls != n {
		t.Errorf("%d requests for %d jobs", calls, n)
	}
	if r := f.outcomes("slow", OutcomeUncertainResend); r != 0 {
		t.Errorf("%d uncertain resends with no fault", r)
	}
}

// A key pending under another worker's live lease is never sent; once the
// lease ran out (the worker died) on_uncertain decides.
func TestSenderLease(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"resend", "dead_letter"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			client := &fakeSender{}
			job := testJob("leased", "1")
			f := newSenderFixture(t, client, senderSetup{
				tune: func(o *SenderOptions) { o.Policy.OnUncertain = policy },
				before: func(f *senderFixture) {
					// Another replica's request is on its way, under a 5 s lease.
					if _, err := f.s.ledger.markPending(context.Background(), job.Key, "other#1", 1, 5*time.Second, 0); err != nil {
						t.Fatal(err)
					}
				},
			})
			f.publish(t, job)
			poll.For(t, 30*time.Second, "the job put back as in flight", func() bool { return f.outcomes("leased", OutcomeInFlight) >= 1 })
			if c := client.count(job.Key); c != 0 {
				t.Fatalf("sent %d times under another worker's live lease", c)
			}
			switch policy {
			case "resend":
				poll.For(t, 30*time.Second, "the resend after the lease", func() bool { return f.outcomes("leased", OutcomeSent) == 1 })
				if c, r := client.count(job.Key), f.outcomes("leased", OutcomeUncertainResend); c != 1 || r != 1 {
					t.Errorf("after the lease: sent %d, uncertain resends %d; want 1 and 1", c, r)
				}
			case "dead_letter":
				poll.For(t, 30*time.Second, "the dead letter after the lease", func() bool { return f.deadLetters(ReasonUncertain) == 1 })
				if c := client.count(job.Key); c != 0 {
					t.Errorf("sent %d times with on_uncertain: dead_letter", c)
				}
			}
			poll.For(t, 30*time.Second, "the job acked", f.outboxEmpty)
		})
	}
}

// A request that outlasts its lease keeps it: the owner renews the lease
// once half of it has run, for as long as the request lasts, so no reader
// ever finds it run out and takes the key as uncertain; once the key is
// recorded sent, no renewal writes it back to pending.
func TestSenderRenewsTheLeaseOfALongRequest(t *testing.T) {
	t.Parallel()
	timeouts := testTimeouts
	timeouts.Lease = 2 * time.Second
	answered := make(chan struct{})
	client := &fakeSender{answer: func(intercom.Message) error {
		<-answered
		return nil
	}}
	f := newSenderFixture(t, client, senderSetup{timeouts: timeouts})
	var answer sync.Once
	t.Cleanup(func() { answer.Do(func() { close(answered) }) }) // before the fixture stops the sender
	job := testJob("long", "1")
	f.publish(t, job)
	poll.For(t, 10*time.Second, "the request on its way", func() bool { _, calls := client.snapshot(); return calls == 1 })
	revs := map[uint64]bool{}
	for end := time.Now().Add(3 * timeouts.Lease); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		e, rev, err := f.s.ledger.get(context.Background(), job.Key)
		if err != nil {
			t.Fatal(err)
		}
		if e == nil || e.State != statePending || e.Owner != "test#1" {
			t.Fatalf("while the request lasts the entry is %+v, want test#1's pending one", e)
		}
		if left := time.Until(e.leaseUntil()); left <= 0 {
			t.Fatalf("the lease ran out %v ago while the request was on its way", -left)
		}
		revs[rev] = true
	}
	answer.Do(func() { close(answered) })
	// 3 leases, renewed every half of one: the take and at least 4
	// renewals; 3 leave room for a slow machine.
	if len(revs) < 3 {
		t.Errorf("the entry had %d revisions over 3 leases, want the take and its renewals", len(revs))
	}
	poll.For(t, 10*time.Second, "the job sent and acked", func() bool {
		return f.outcomes("long", OutcomeSent) == 1 && f.outboxEmpty()
	})
	time.Sleep(timeouts.Lease) // when a renewal left running would write
	if e := f.entry(t, job.Key); e == nil || e.State != stateSent {
		t.Errorf("after the send the entry is %+v, want sent", e)
	}
	if c := client.count(job.Key); c != 1 {
		t.Errorf("sent %d times", c)
	}
}

// flakyKV fails the first n Puts (the "sent" record) as a full or
// unreachable store would.
type flakyKV struct {
	KV
	mu    sync.Mutex
	fails int
}

func (k *flakyKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	k.mu.Lock()
	fail := k.fails > 0
	if fail {
		k.fails--
	}
	k.mu.Unlock()
	if fail {
		return 0, errors.New("insufficient storage resources available")
	}
	return k.KV.Put(ctx, key, value)
}

// A send whose "sent" record cannot be written is not acked until the
// record lands, and is not sent again meanwhile.
func TestSenderRecordsBeforeAck(t *testing.T) {
	t.Parallel()
	client := &fakeSender{}
	kv := &flakyKV{fails: 5}
	f := newSenderFixture(t, client, senderSetup{wrapKV: func(k KV) KV { kv.KV = k; return kv }})
	job := testJob("record", "1")
	f.publish(t, job)
	poll.For(t, 30*time.Second, "the record retried", func() bool { return strings.Contains(f.logs.String(), "the record cannot be written yet") })
	if f.outboxEmpty() {
		t.Fatal("job acked before its record was written")
	}
	poll.For(t, 30*time.Second, "the job acked", f.outboxEmpty)
	e, _, err := f.s.ledger.get(context.Background(), job.Key)
	if err != nil || e == nil || e.State != stateSent || e.MessageID != "msg-"+job.Key {
		t.Fatalf("ledger entry %+v, %v; want sent with the message id", e, err)
	}
	if c := client.count(job.Key); c != 1 {
		t.Errorf("sent %d times", c)
	}
}

// A 200 without a message id (a proxy's HTML page) is not taken as sent:
// it is counted, the key is uncertain, and with on_uncertain: resend the
// message is sent again, once.
func TestSenderAmbiguousAnswer(t *testing.T) {
	t.Parallel()
	contact := intercom.Contact{ID: "c-1", Role: "user"}
	srv, client := contractFake(t, "2.14", []intercom.Contact{contact})
	srv.AnswerNextHTML200(1)
	f := newSenderFixture(t, &fakeSender{}, senderSetup{sender: client})
	job := testJob("proxied", "1")
	job.Message.To = []rules.Recipient{{Type: "user", ID: "c-1"}}
	job.Message.From.ID = "394051" // the admin the fake knows
	f.publish(t, job)
	if !poll.Until(30*time.Second, func() bool { return f.outcomes("proxied", OutcomeSent) == 1 }) {
		t.Fatalf("not sent; log:\n%s", f.logs.String())
	}
	if n := f.outcomes("proxied", OutcomeAmbiguousAnswer); n != 1 {
		t.Errorf("%d ambiguous answers counted, want 1", n)
	}
	if n := f.outcomes("proxied", OutcomeUncertainResend); n != 1 {
		t.Errorf("%d uncertain resends, want 1", n)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("the fake has %d messages, want 1", n)
	}
	if !strings.Contains(f.logs.String(), "content type text/html") {
		t.Error("no log line with the answer's content type")
	}
}

// forget removes only an entry of the worker's own, at its revision: with
// none (rev 0) it leaves whatever another worker wrote.
func TestLedgerForgetsOnlyItsOwn(t *testing.T) {
	t.Parallel()
	f := newSenderFixture(t, &fakeSender{}, senderSetup{})
	ctx := context.Background()
	rev, err := f.s.ledger.markPending(ctx, "forget/1", "other#1", 1, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.ledger.forget(ctx, "forget/1", 0); err != nil {
		t.Fatal(err)
	}
	if e, _, err := f.s.ledger.get(ctx, "forget/1"); err != nil || e == nil || e.State != statePending {
		t.Fatalf("after forget without a revision: %+v, %v; want the other worker's pending entry", e, err)
	}
	if err := f.s.ledger.forget(ctx, "forget/1", rev); err != nil {
		t.Fatal(err)
	}
	if e, _, err := f.s.ledger.get(ctx, "forget/1"); err != nil || e != nil {
		t.Fatalf("after forget at its revision: %+v, %v; want none", e, err)
	}
}

// countingKV counts the ledger's reads.
type countingKV struct {
	KV
	gets atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.gets.Add(1)
	return k.KV.Get(ctx, key)
}

// A job handed out for the first time skips reading its key's entry (see
// Sender.unlooked): a new key is sent without a read of the ledger. Each
// state a key can be in when such a job comes is tried too: the write of
// the pending entry finds it, and the job is decided on it as if it had
// been read first, its attempts counted after those recorded.
func TestSenderFirstDeliveryFindsAnEntry(t *testing.T) {
	t.Parallel()
	unavailable := &intercom.Error{StatusCode: http.StatusServiceUnavailable}
	for _, tc := range []struct {
		name    string
		entry   func(l *Ledger, key string) error // nil: none
		answer  func(intercom.Message) error
		outcome string // counted once
		calls   int    // requests made
		sends   int    // of which accepted
		gets    int64  // reads of the ledger
		nobody  bool   // the recipient is one Intercom does not know
		refuse  bool   // the client refuses the message before sending it
		// failLookup makes Intercom answer the look-up 422.
		failLookup bool
		after      string // the state the key is left in; "": no entry
	}{
		{name: "none", outcome: OutcomeSent, calls: 1, sends: 1, gets: 0, after: stateSent},
		{name: "sent", outcome: OutcomeDuplicate, calls: 0, gets: 1, after: stateSent,
			entry: func(l *Ledger, key string) error { return l.markSent(context.Background(), key, "msg-earlier", "") }},
		// These two read it twice: once to find it, once to decide on it.
		{name: "sent, a message the client refuses", outcome: OutcomeDuplicate, refuse: true, gets: 2, after: stateSent,
			entry: func(l *Ledger, key string) error { return l.markSent(context.Background(), key, "msg-earlier", "") }},
		// The look-up comes before the pending entry is written: its failure
		// must not touch an entry nobody read.
		{name: "sent, to a person no longer known", outcome: OutcomeDuplicate, nobody: true, gets: 2, after: stateSent,
			entry: func(l *Ledger, key string) error { return l.markSent(context.Background(), key, "msg-earlier", "") }},
		// Without an entry, a failed look-up and a refused message end as
		// they would with the entry read first: one look-up, one dead
		// letter, the key without an entry.
		{name: "none, to a person no one knows", outcome: OutcomeDeadLetter, nobody: true, gets: 1},
		{name: "none, a look-up refused", outcome: OutcomeDeadLetter, nobody: true, failLookup: true, gets: 1},
		{name: "none, a message the client refuses", outcome: OutcomeDeadLetter, refuse: true, gets: 1},
		{name: "failed, attempts left", outcome: OutcomeSent, calls: 1, sends: 1, gets: 1, after: stateSent,
			entry: func(l *Ledger, key string) error { return l.markFailed(context.Background(), key, 2, "503", 0) }},
		{name: "failed, last attempt", outcome: OutcomeDeadLetter, answer: func(intercom.Message) error { return unavailable }, calls: 1, gets: 1,
			// Attempts 4 of 5 recorded: this one is the 5th, and the last.
			entry: func(l *Ledger, key string) error { return l.markFailed(context.Background(), key, 4, "503", 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := &fakeSender{answer: tc.answer}
			if tc.refuse {
				client.wait = func(context.Context) error { return fmt.Errorf("%w: no body", intercom.ErrInvalidMessage) }
			}
			job := testJob("found", "1")
			if tc.nobody {
				job.Message.To = []rules.Recipient{{Type: "user", UserID: "u-404"}}
			}
			ic, finder := contractFake(t, "2.14", nil) // knows no one
			if tc.failLookup {
				ic.FailNext(1, http.StatusUnprocessableEntity)
			}
			kv := &countingKV{}
			f := newSenderFixture(t, client, senderSetup{
				contacts: finder,
				wrapKV:   func(k KV) KV { kv.KV = k; return kv },
				before: func(f *senderFixture) {
					if tc.entry != nil {
						if err := tc.entry(f.s.ledger, job.Key); err != nil {
							t.Fatal(err)
						}
					}
				}})
			f.publish(t, job)
			// Counted once the job is settled.
			poll.For(t, 30*time.Second, "the outcome", func() bool { return f.outcomes("found", tc.outcome) >= 1 })
			poll.For(t, 30*time.Second, "the job acked", f.outboxEmpty)
			if n := f.outcomes("found", tc.outcome); n != 1 {
				t.Errorf("outcome %s counted %d times, want 1", tc.outcome, n)
			}
			if accepted, calls := client.snapshot(); calls != tc.calls || accepted[job.Key] != tc.sends {
				t.Errorf("%d requests, %d accepted; want %d and %d", calls, accepted[job.Key], tc.calls, tc.sends)
			}
			if n := kv.gets.Load(); n != tc.gets {
				t.Errorf("%d reads of the ledger, want %d", n, tc.gets)
			}
			e, _, err := f.s.ledger.get(context.Background(), job.Key)
			if err != nil || (e == nil) != (tc.after == "") || (e != nil && e.State != tc.after) {
				t.Errorf("ledger entry %+v, %v; want state %q", e, err, tc.after)
			}
			if lookups := len(ic.Requests()); tc.nobody && tc.entry == nil && lookups != 1 {
				t.Errorf("%d look-ups, want 1", lookups)
			}
			if tc.outcome == OutcomeDeadLetter && !tc.nobody && !tc.refuse {
				dls := f.deadLetterEntries(t)
				if len(dls) != 1 || dls[0].Attempts != 5 || dls[0].Reason != ReasonExhausted {
					t.Fatalf("dead letters %+v, want one, exhausted after 5 attempts", dls)
				}
			}
		})
	}
}

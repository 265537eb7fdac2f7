package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
	"github.com/intercom-bridge/bridge/rules"
)

// matcherFixture is a real NATS server with the bridge's streams and stage
// 1 running the rules given.
type matcherFixture struct {
	js   jetstream.JetStream
	m    *Metrics
	logs *syncbuf.Buffer
}

const matcherRules = `rules:
  - name: paid
    when: event.type == "order.paid"
    message:
      type: email
      from: "1"
      to: {type: user, id: '{{ .event.contact }}'}
      subject: Thanks
      body: <p>Order {{ .event.order }}</p>
    dedupe: '{{ .event.order }}'
  - name: broken
    when: event.type == "order.broken"
    message:
      type: inapp
      from: "1"
      to: {type: user, id: '{{ .event.contact }}'}
      body: <p>{{ .event.missing }}</p>
`

func newMatcherFixture(t *testing.T) *matcherFixture {
	t.Helper()
	ctx := context.Background()
	js := natstest.JetStream(t)
	for _, sc := range testTopology.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	set, err := rules.Parse([]rules.File{{Name: "test.yaml", Data: []byte(matcherRules)}}, rules.Options{DefaultAdminID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	f := &matcherFixture{js: js, m: NewMetrics(prometheus.NewRegistry()), logs: &syncbuf.Buffer{}}
	mt, err := StartMatcher(ctx, js, MatcherOptions{Topology: testTopology, Decoder: &event.Decoder{Stream: testTopology.Events.Name},
		Rules: func() *rules.Set { return set }, Log: zerolog.New(f.logs), Metrics: f.m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Stop)
	return f
}

// event stores a webhook event of source shop.
func (f *matcherFixture) event(t *testing.T, id, payload string) { storeEvent(t, f.js, id, payload) }

// storeEvent stores a webhook event of source shop in the events stream.
func storeEvent(t *testing.T, js jetstream.JetStream, id, payload string) {
	t.Helper()
	env := &event.Envelope{ID: id, Source: "shop", Subject: testTopology.SourceSubject("shop"), Time: time.Now().UTC(),
		Data: json.RawMessage(payload)}
	m, err := env.Msg(testTopology.SourceSubject("shop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func (f *matcherFixture) outbox(t *testing.T) uint64 {
	t.Helper()
	return natstest.Msgs(t, f.js, testTopology.Outbox.Name)
}

// A second event with the same dedupe key inside the outbox's duplicate
// window is dropped visibly: logged with rule and key, and counted.
func TestMatcherOutboxDuplicateIsCounted(t *testing.T) {
	t.Parallel()
	f := newMatcherFixture(t)
	f.event(t, "e1", `{"type":"order.paid","order":"o-7","contact":"c1"}`)
	f.event(t, "e2", `{"type":"order.paid","order":"o-7","contact":"c1"}`)
	dups := func() int { return int(testutil.ToFloat64(f.m.Deliveries.WithLabelValues("paid", OutcomeDuplicate))) }
	poll.For(t, 30*time.Second, "the duplicate counted", func() bool { return dups() == 1 })
	if n := f.outbox(t); n != 1 {
		t.Errorf("outbox holds %d jobs, want 1", n)
	}
	logs := f.logs.String()
	var line string
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, "duplicate dropped") {
			line = l
		}
	}
	for _, want := range []string{`"level":"info"`, `"rule":"paid"`, `"delivery_key":"paid/o-7"`, `"dedupe_key":"o-7"`} {
		if !strings.Contains(line, want) {
			t.Errorf("duplicate log line %q lacks %s", line, want)
		}
	}
	// Stage 1 works on events in parallel: either may come second.
	if !strings.Contains(line, `"event_id":"e1"`) && !strings.Contains(line, `"event_id":"e2"`) {
		t.Errorf("duplicate log line %q names neither event", line)
	}
}

// sizeBound, which lets stage 1 skip writing a job to learn its size, is
// never below the size json.Marshal gives: whatever the strings hold
// (HTML, control characters, invalid UTF-8) and however many recipients.
func FuzzJobSizeBound(f *testing.F) {
	f.Add("<p>Hi & welcome</p>", "Thanks", "u-1", "a@example.com", "order-7", uint8(1))
	f.Add("\x00\x01\u2028\xff", "", "", "", "", uint8(0))
	f.Add(strings.Repeat("<", 100), "\"\\", "\t", "é", "k", uint8(30))
	f.Fuzz(func(t *testing.T, body, subject, userID, email, key string, people uint8) {
		job := &Job{Key: DeliveryKey("rule", key), Rule: "rule", EventID: key, Source: "shop", DedupeKey: key,
			Throttle: &Throttle{Key: key, Per: time.Hour}, Schedule: &JobSchedule{At: time.Now(), Key: key, EventSeq: 1 << 60},
			Message: rules.Message{MessageType: "email", Subject: subject, Body: body, Template: "personal",
				From: rules.Admin{Type: "admin", ID: userID}, CreatedAt: 1 << 62},
			Received: time.Now(), Replay: true, RetryAt: time.Now()}
		for i := range int(people) {
			r := rules.Recipient{Type: "user", ID: key, UserID: userID, Email: email}
			switch i % 3 {
			case 0:
				job.Message.To = append(job.Message.To, r)
			case 1:
				job.Message.Cc = append(job.Message.Cc, r)
			default:
				job.Message.Bcc = append(job.Message.Bcc, r)
			}
		}
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		if bound := job.sizeBound(); bound < int64(len(b)) {
			t.Fatalf("sizeBound %d, but the job is %d bytes: %s", bound, len(b), b)
		}
	})
}

// A job larger than the outbox takes, less the room for its dead letter,
// is refused with its size; one just under is not.
func TestJobTooLarge(t *testing.T) {
	const maxPayload = 64 << 10
	job := testJob("r", "1")
	job.Message.Body = ""
	empty, _ := json.Marshal(job)
	limit := maxPayload - deadLetterRoom(maxPayload)
	job.Message.Body = strings.Repeat("a", int(limit)-len(empty))
	if err := job.tooLarge(maxPayload); err != nil {
		t.Fatalf("a job of exactly %d bytes: %v", limit, err)
	}
	job.Message.Body += "a"
	err := job.tooLarge(maxPayload)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("is %d bytes as a job; the bridge stores at most %d", limit+1, limit)) {
		t.Fatalf("a job of %d bytes: %v", limit+1, err)
	}
	if r := deadLetterRoom(8 << 10); r != 2<<10 {
		t.Errorf("deadLetterRoom(8 KiB) = %d, want a quarter", r)
	}
}

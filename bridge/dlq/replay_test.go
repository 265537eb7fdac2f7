package dlq

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/rules"
)

// failingSender refuses every message with err, counting the requests.
type failingSender struct {
	err   error
	calls atomic.Int64
}

func (f *failingSender) CreateMessage(ctx context.Context, _ intercom.Message) (*intercom.SentMessage, error) {
	if err := intercom.BeforeSend(ctx); err != nil {
		return nil, err
	}
	f.calls.Add(1)
	return nil, f.err
}

// pipelineFixture runs both stages of the pipeline on a real NATS server,
// with a rule that always fails to render and a sender that always fails:
// what makes dead letters to replay.
type pipelineFixture struct {
	js jetstream.JetStream
	q  *DLQ
	m  *pipeline.Metrics
}

const brokenRule = `rules:
  - name: broken
    when: event.type == "order.broken"
    message:
      type: inapp
      from: "1"
      to: {type: user, id: '{{ .event.contact }}'}
      body: <p>{{ .event.missing }}</p>
`

func newPipelineFixture(t *testing.T, client pipeline.MessageSender) *pipelineFixture {
	t.Helper()
	return newPipelineFixtureWith(t, client, natstest.JetStream(t), brokenRule)
}

// newPipelineFixtureWith is newPipelineFixture on js, with the rules of
// ruleFile.
func newPipelineFixtureWith(t *testing.T, client pipeline.MessageSender, js jetstream.JetStream, ruleFile string) *pipelineFixture {
	t.Helper()
	ctx := context.Background()
	for _, sc := range testTopology.Streams() {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	set, err := rules.Parse([]rules.File{{Name: "test.yaml", Data: []byte(ruleFile)}}, rules.Options{DefaultAdminID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	f := &pipelineFixture{js: js, m: pipeline.NewMetrics(prometheus.NewRegistry())}
	mt, err := pipeline.StartMatcher(ctx, js, pipeline.MatcherOptions{Topology: testTopology, Decoder: testDecoder,
		Rules: func() *rules.Set { return set }, Log: zerolog.Nop(), Metrics: f.m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mt.Stop)
	s, err := pipeline.StartSender(ctx, js, pipeline.SenderOptions{Topology: testTopology, Workers: 4, Client: client,
		Policy:   pipeline.Policy{MaxAttempts: 2, OnUncertain: "resend", Backoff: func(int) time.Duration { return 50 * time.Millisecond }},
		Timeouts: pipeline.NewTimeouts(2 * time.Second), Replica: "test", Log: zerolog.Nop(), Metrics: f.m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if f.q, err = Open(ctx, js, testTopology, testDecoder); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *pipelineFixture) deadLetters(reason string) int {
	return int(testutil.ToFloat64(f.m.DeadLetters.WithLabelValues(reason)))
}

// replayTwice replays the one dead letter twice and checks that each
// replay, failing again, is a new dead letter, listed (its own sequence),
// and that check holds for it.
func (f *pipelineFixture) replayTwice(t *testing.T, reason string, check func(Entry) bool) {
	t.Helper()
	ctx := context.Background()
	poll.For(t, 30*time.Second, "the first dead letter", func() bool { return f.deadLetters(reason) == 1 })
	before, err := f.q.List(ctx, Filter{})
	if err != nil || len(before) != 1 {
		t.Fatalf("before the replay: %d entries, %v", len(before), err)
	}
	for replay := 1; replay <= 2; replay++ {
		if n, err := f.q.Replay(ctx, Filter{}, nil); err != nil || n != 1 {
			t.Fatalf("replay %d: %d, %v", replay, n, err)
		}
		poll.For(t, 30*time.Second, "the replay's dead letter", func() bool { return f.deadLetters(reason) == 1+replay })
		var got []Entry
		// The replayed message is acked once its dead letter is stored:
		// wait for the list to show the new entry only.
		poll.For(t, 30*time.Second, "the new entry listed", func() bool {
			got, err = f.q.List(ctx, Filter{})
			return err == nil && len(got) == 1 && got[0].Seq != before[0].Seq
		})
		if got[0].Reason != reason || !check(got[0]) {
			t.Fatalf("after replay %d: %+v", replay, got)
		}
		before = got
	}
}

// An event whose rule fails to render, replayed and failing again, is a
// new dead letter, listed.
func TestReplayOfEventFailingAgainIsListed(t *testing.T) {
	f := newPipelineFixture(t, &failingSender{})
	m, err := (&event.Envelope{ID: "e1", Source: "shop", Subject: testTopology.SourceSubject("shop"), Time: time.Now().UTC(),
		Data: json.RawMessage(`{"type":"order.broken","contact":"c1"}`)}).Msg(testTopology.SourceSubject("shop"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	f.replayTwice(t, pipeline.ReasonRender, func(e Entry) bool { return e.Rule == "broken" && e.Event != nil })
}

// A message replayed that fails again is a new dead letter, listed.
func TestReplayOfJobFailingAgainIsListed(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		err    error
	}{
		{"permanent", pipeline.ReasonPermanent, &intercom.Error{StatusCode: 422, Errors: []intercom.ErrorDetail{{Code: "parameter_invalid", Message: "no"}}}},
		{"attempts exhausted", pipeline.ReasonExhausted, &intercom.Error{StatusCode: 503}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := &failingSender{err: tt.err}
			f := newPipelineFixture(t, client)
			job := dlqJob("fails", "1")
			job.Message.To = []rules.Recipient{{Type: "user", ID: "c-1"}}
			m, err := pipeline.JobMsg(testTopology, job)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			f.replayTwice(t, tt.reason, func(e Entry) bool { return e.Job != nil && e.Job.Replay })
			if want := int64(3 * 2); tt.reason == pipeline.ReasonExhausted && client.calls.Load() != want {
				t.Errorf("%d requests; want %d (2 attempts each for the job and its 2 replays)", client.calls.Load(), want)
			}
		})
	}
}

package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/rules"
)

// smallMaxPayload is the NATS server's max_payload in the tests of what is
// too large for it.
const smallMaxPayload = 64 << 10

// tooLargeRules fail to render (broken) or render a message twice the
// size of the event's text (double).
const tooLargeRules = brokenRule + `  - name: double
    when: event.type == "order.double"
    message:
      type: inapp
      from: "1"
      to: {type: user, id: '{{ .event.contact }}'}
      body: <p>{{ .event.text }}{{ .event.text }}</p>
`

func newTooLargeFixture(t *testing.T, client pipeline.MessageSender) *pipelineFixture {
	t.Helper()
	js := natstest.JetStreamWith(t, func(o *server.Options) { o.MaxPayload = smallMaxPayload })
	return newPipelineFixtureWith(t, client, js, tooLargeRules)
}

// publishedBytes is what m takes of the server's max_payload.
func publishedBytes(m *nats.Msg) int {
	n := len(m.Data) + len("NATS/1.0\r\n\r\n")
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// storeLargeEvent stores an event of source shop, its text padded so that
// the stored message is room bytes short of the server's max_payload, and
// returns its sequence in the events stream.
func (f *pipelineFixture) storeLargeEvent(t *testing.T, typ string, room int) uint64 {
	t.Helper()
	at := time.Now().UTC().Truncate(time.Second) // the same length each time
	build := func(text string) *nats.Msg {
		data, _ := json.Marshal(map[string]string{"type": typ, "contact": "c1", "text": text})
		m, err := (&event.Envelope{ID: "e-" + typ, Source: "shop", Subject: testTopology.SourceSubject("shop"), Time: at,
			Data: data}).Msg(testTopology.SourceSubject("shop"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := build(strings.Repeat("x", smallMaxPayload-room-publishedBytes(build(""))))
	if n := publishedBytes(m); n != smallMaxPayload-room {
		t.Fatalf("the event takes %d bytes, want %d", n, smallMaxPayload-room)
	}
	ack, err := f.js.PublishMsg(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

// onlyEntry waits for the one dead letter of reason and returns it.
func (f *pipelineFixture) onlyEntry(t *testing.T, reason string) Entry {
	t.Helper()
	poll.For(t, 30*time.Second, "the dead letter", func() bool { return f.deadLetters(reason) == 1 })
	got, err := f.q.List(context.Background(), Filter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("%d dead letters, %v; want 1", len(got), err)
	}
	return got[0]
}

// Dead letters that would be larger than the NATS server takes are
// written without what makes them so, and name where it is: before, each
// was refused at every try, and its message came back for ever.
func TestDeadLetterTooLargeForTheServer(t *testing.T) {
	t.Run("an event whose rule fails, as large as the server takes", func(t *testing.T) {
		t.Parallel()
		f := newTooLargeFixture(t, &failingSender{})
		seq := f.storeLargeEvent(t, "order.broken", 16)
		e := f.onlyEntry(t, pipeline.ReasonRender)
		if e.Event != nil || e.Omitted == nil || e.Omitted.What != "event" || e.Omitted.Stream != testTopology.Events.Name ||
			e.Omitted.Seq != seq || e.Omitted.Bytes <= smallMaxPayload-16 {
			t.Fatalf("dead letter %+v, omitted %+v; want the event left out, at %s %d", e.DeadLetter, e.Omitted, testTopology.Events.Name, seq)
		}
		if e.Rule != "broken" || e.EventID != "e-order.broken" || !strings.Contains(e.Error, "missing") {
			t.Errorf("dead letter %+v lost its rule, event id or error", e.DeadLetter)
		}
		if s := e.Omitted.String(); !strings.Contains(s, "the event") || !strings.Contains(s, testTopology.Events.Name) {
			t.Errorf("Omitted.String() = %q", s)
		}
		// A replay reads the event from the events stream: it fails
		// again, and its new dead letter points to the event's new copy.
		f.replayTwice(t, pipeline.ReasonRender, func(e Entry) bool {
			return e.Omitted != nil && e.Omitted.What == "event" && e.Omitted.Seq > seq
		})
		// Once the events stream no longer has it, the entry says so.
		got, _ := f.q.List(context.Background(), Filter{})
		events, err := f.js.Stream(context.Background(), testTopology.Events.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := events.DeleteMsg(context.Background(), got[0].Omitted.Seq); err != nil {
			t.Fatal(err)
		}
		n, err := f.q.Replay(context.Background(), Filter{}, nil)
		var nr *NotReplayableError
		if n != 0 || !errors.As(err, &nr) || len(nr.Gone) != 1 || !strings.Contains(err.Error(), "no longer in the events stream") {
			t.Fatalf("replay of an entry whose event is gone: %d, %v", n, err)
		}
		if left, _ := f.q.List(context.Background(), Filter{}); len(left) != 1 {
			t.Errorf("%d entries after a replay that could not read the event; want it kept", len(left))
		}
	})

	t.Run("a message rendered larger than the outbox takes", func(t *testing.T) {
		t.Parallel()
		client := &failingSender{err: &intercom.Error{StatusCode: 422}}
		f := newTooLargeFixture(t, client)
		f.storeLargeEvent(t, "order.double", 32<<10)
		e := f.onlyEntry(t, pipeline.ReasonRender)
		if e.Rule != "double" || e.Event == nil || e.Omitted != nil || !strings.Contains(e.Error, "bytes as a job") {
			t.Fatalf("dead letter %+v; want rule double's render error with its event", e.DeadLetter)
		}
		if n := natstest.Msgs(t, f.js, testTopology.Outbox.Name); n != 0 || client.calls.Load() != 0 {
			t.Errorf("outbox %d jobs, %d requests; want none", n, client.calls.Load())
		}
		poll.For(t, 30*time.Second, "the event acked", func() bool {
			return natstest.Idle(context.Background(), f.js, [2]string{testTopology.Events.Name, testTopology.MatchConsumer})
		})
	})

	t.Run("a stored message that is not an event", func(t *testing.T) {
		t.Parallel()
		f := newTooLargeFixture(t, &failingSender{})
		// Its bytes would be base64 in the dead letter: a third larger.
		ack, err := f.js.Publish(context.Background(), testTopology.SourceSubject("shop"), []byte(strings.Repeat("\x01", 60<<10)))
		if err != nil {
			t.Fatal(err)
		}
		e := f.onlyEntry(t, pipeline.ReasonInvalidEvent)
		if e.Raw != nil || e.Omitted == nil || e.Omitted.What != "raw" || e.Omitted.Seq != ack.Sequence {
			t.Fatalf("dead letter %+v, omitted %+v; want the raw event left out", e.DeadLetter, e.Omitted)
		}
		n, err := f.q.Replay(context.Background(), Filter{}, nil)
		var nr *NotReplayableError
		if n != 0 || !errors.As(err, &nr) || len(nr.Seqs) != 1 {
			t.Fatalf("replay: %d, %v; want it not replayable", n, err)
		}
	})

	t.Run("a job near the limit with a long error from Intercom", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("é", 8<<10)
		f := newTooLargeFixture(t, &failingSender{err: &intercom.Error{StatusCode: 422,
			Errors: []intercom.ErrorDetail{{Code: "parameter_invalid", Message: long}}}})
		// As an older replica could have stored it: larger than stage 1
		// now renders, small enough for the outbox.
		job := dlqJob("fails", "1")
		job.Message.To = []rules.Recipient{{Type: "user", ID: "c-1"}}
		job.Message.Body = strings.Repeat("y", smallMaxPayload-2<<10)
		m, err := pipeline.JobMsg(testTopology, job)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		e := f.onlyEntry(t, pipeline.ReasonPermanent)
		if e.Job != nil || e.Omitted == nil || e.Omitted.What != "job" || e.Omitted.Stream != "" {
			t.Fatalf("dead letter %+v, omitted %+v; want the job left out, stored nowhere", e.DeadLetter, e.Omitted)
		}
		if e.Key != job.Key || e.Status != 422 || e.Code != "parameter_invalid" {
			t.Errorf("dead letter %+v lost its key or Intercom's answer", e.DeadLetter)
		}
		if len(e.Error) > 4<<10+len("…") || !strings.HasSuffix(e.Error, "é…") {
			t.Errorf("error of %d bytes ending %q; want it cut to 4 KB at a character", len(e.Error), e.Error[max(0, len(e.Error)-8):])
		}
		if n := natstest.Msgs(t, f.js, testTopology.Outbox.Name); n != 0 {
			t.Errorf("outbox holds %d jobs; want the job acked", n)
		}
	})
}

package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/rules"
)

// dlqFixture is a NATS server with the bridge's streams and a set of dead
// letters of every kind.
type dlqFixture struct {
	js   jetstream.JetStream
	top  broker.Topology
	q    *DLQ
	now  time.Time
	seqs map[string]uint64 // name of a dead letter below -> its ID
}

func dlqJob(rule, dedupe string) *pipeline.Job {
	return &pipeline.Job{
		Key: pipeline.DeliveryKey(rule, dedupe), Rule: rule, EventID: "ev-" + dedupe, Source: "shop", DedupeKey: dedupe,
		Message: rules.Message{
			MessageType: "email", Subject: "Thanks", Body: "<p>Hi & welcome</p>", Template: "plain",
			From: rules.Admin{Type: "admin", ID: "394051"}, To: []rules.Recipient{{Type: "user", UserID: "u-" + dedupe}},
		},
		Received: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// testTopology is a bridge's with the config file's defaults.
var testTopology = broker.NewTopology(broker.TopologyOptions{Prefix: "bridge", Replicas: 1,
	EventsMaxAge: time.Hour, Duplicates: 10 * time.Minute, DedupeWindow: time.Hour, ContactsTTL: time.Hour})

// testDecoder reads the events of testTopology, as a bridge with no
// capture sources does.
var testDecoder = &event.Decoder{Stream: testTopology.Events.Name, In: testTopology.SourceSubject("")}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	ctx := context.Background()
	js := natstest.JetStream(t)
	top := testTopology
	for _, sc := range []jetstream.StreamConfig{top.Events, top.Outbox} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	q, err := Open(ctx, js, top, testDecoder)
	if err != nil {
		t.Fatal(err)
	}
	f := &dlqFixture{js: js, top: top, q: q, now: time.Now().UTC(), seqs: map[string]uint64{}}

	env := &event.Envelope{ID: "ev-7", Source: "shop", Subject: "orders.7.paid", Time: f.now.Add(-time.Hour),
		Headers: map[string]string{"x-request-id": "r7"}, Data: json.RawMessage(`{"order_id":7}`)}
	letters := []struct {
		name string
		d    pipeline.DeadLetter
	}{
		{"paid-permanent", pipeline.DeadLetter{Reason: pipeline.ReasonPermanent, Error: "422 parameter_invalid: to.user_id", Rule: "order-paid",
			EventID: "ev-1", Source: "shop", Key: "order-paid/1", Status: 422, Code: "parameter_invalid", Job: dlqJob("order-paid", "1"), At: f.now.Add(-time.Hour)}},
		{"paid-exhausted", pipeline.DeadLetter{Reason: pipeline.ReasonExhausted, Error: "503 after 12 attempts", Rule: "order-paid",
			EventID: "ev-2", Source: "shop", Key: "order-paid/2", Attempts: 12, Job: dlqJob("order-paid", "2"), At: f.now.Add(-48 * time.Hour)}},
		{"trial-render", pipeline.DeadLetter{Reason: pipeline.ReasonRender, Error: `template: map has no entry for key "customer"`, Rule: "trial.ending",
			EventID: "ev-7", Source: "shop", Event: env, At: f.now.Add(-10 * time.Minute)}},
		{"invalid", pipeline.DeadLetter{Reason: pipeline.ReasonInvalidEvent, Error: "billing.x: the payload is not JSON", Source: "billing",
			Raw: &pipeline.RawEvent{Subject: "billing.x", Data: []byte("not json")}, At: f.now.Add(-5 * time.Minute)}},
		// Same subject token as trial.ending: the rule filter must not mix them.
		{"trial-underscore", pipeline.DeadLetter{Reason: pipeline.ReasonPermanent, Error: "403", Rule: "trial_ending",
			EventID: "ev-9", Source: "shop", Key: "trial_ending/9", Job: dlqJob("trial_ending", "9"), At: f.now.Add(-2 * time.Minute)}},
	}
	for _, l := range letters {
		if err := pipeline.WriteDeadLetter(ctx, js, top, &l.d, pipeline.Origin{Stream: "TEST_" + l.name}); err != nil {
			t.Fatal(err)
		}
		f.seqs[l.name] = f.lastSeq(t)
	}
	// Something that is not a dead letter at all.
	if _, err := js.Publish(ctx, top.DLQSubject+".junk", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	f.seqs["junk"] = f.lastSeq(t)
	return f
}

func (f *dlqFixture) lastSeq(t *testing.T) uint64 {
	t.Helper()
	info, err := f.q.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

func (f *dlqFixture) ids(names ...string) []uint64 {
	out := make([]uint64, 0, len(names))
	for _, n := range names {
		out = append(out, f.seqs[n])
	}
	return out
}

func entrySeqs(entries []Entry) []uint64 {
	out := make([]uint64, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Seq)
	}
	return out
}

func TestDLQList(t *testing.T) {
	f := newDLQFixture(t)
	all := []string{"paid-permanent", "paid-exhausted", "trial-render", "invalid", "trial-underscore", "junk"}
	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"all", Filter{}, all},
		{"rule", Filter{Rule: "order-paid"}, []string{"paid-permanent", "paid-exhausted"}},
		{"rule with a dot", Filter{Rule: "trial.ending"}, []string{"trial-render"}},
		{"rule sharing the subject token", Filter{Rule: "trial_ending"}, []string{"trial-underscore"}},
		{"unknown rule", Filter{Rule: "nope"}, nil},
		{"reason", Filter{Reason: pipeline.ReasonPermanent}, []string{"paid-permanent", "trial-underscore"}},
		{"unreadable", Filter{Reason: ReasonUnreadable}, []string{"junk"}},
		{"rule and reason", Filter{Rule: "order-paid", Reason: pipeline.ReasonExhausted}, []string{"paid-exhausted"}},
		{"since", Filter{Since: 24 * time.Hour}, []string{"paid-permanent", "trial-render", "invalid", "trial-underscore", "junk"}},
		{"since, short", Filter{Since: 7 * time.Minute}, []string{"invalid", "trial-underscore", "junk"}},
		{"ids", Filter{IDs: f.ids("trial-render", "paid-permanent", "trial-render")}, []string{"paid-permanent", "trial-render"}},
		{"ids and reason", Filter{IDs: f.ids("trial-render", "paid-permanent"), Reason: pipeline.ReasonRender}, []string{"trial-render"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.q.List(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if want := f.ids(tt.want...); !slices.Equal(entrySeqs(got), want) {
				t.Errorf("got IDs %v, want %v (%v)", entrySeqs(got), want, tt.want)
			}
		})
	}

	t.Run("missing id", func(t *testing.T) {
		_, err := f.q.List(context.Background(), Filter{IDs: []uint64{f.seqs["paid-permanent"], 999}})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "999") {
			t.Errorf("err = %v, want ErrNotFound naming 999", err)
		}
	})
}

func TestDLQGet(t *testing.T) {
	f := newDLQFixture(t)
	ctx := context.Background()
	tests := []struct {
		name  string
		check func(t *testing.T, e *Entry)
	}{
		{"paid-permanent", func(t *testing.T, e *Entry) {
			if e.Reason != pipeline.ReasonPermanent || e.Rule != "order-paid" || e.Status != 422 || e.Code != "parameter_invalid" ||
				e.Job == nil || e.Job.Message.Body != "<p>Hi & welcome</p>" || !e.At.Equal(f.now.Add(-time.Hour)) {
				t.Errorf("entry = %+v", e)
			}
		}},
		{"trial-render", func(t *testing.T, e *Entry) {
			if e.Event == nil || e.Event.ID != "ev-7" || string(e.Event.Data) != `{"order_id":7}` || e.Job != nil {
				t.Errorf("entry = %+v", e)
			}
		}},
		{"junk", func(t *testing.T, e *Entry) {
			if e.Reason != ReasonUnreadable || e.Raw == nil || string(e.Raw.Data) != "garbage" || e.Raw.Subject != "bridge.dlq.junk" || e.At.IsZero() {
				t.Errorf("entry = %+v", e)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := f.q.Get(ctx, f.seqs[tt.name])
			if err != nil {
				t.Fatal(err)
			}
			if e.Seq != f.seqs[tt.name] {
				t.Errorf("seq %d, want %d", e.Seq, f.seqs[tt.name])
			}
			tt.check(t, e)
		})
	}
	t.Run("missing", func(t *testing.T) {
		for _, seq := range []uint64{0, 999} {
			if _, err := f.q.Get(ctx, seq); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%d): err = %v, want ErrNotFound", seq, err)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		e, err := f.q.Get(ctx, f.seqs["paid-permanent"])
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"id":` + strconv.FormatUint(e.Seq, 10) + `,`, `"reason":"permanent"`, `"job":{`, `"rule":"order-paid"`} {
			if !strings.Contains(string(b), want) {
				t.Errorf("JSON lacks %s: %s", want, b)
			}
		}
	})
}

func TestSummarize(t *testing.T) {
	f := newDLQFixture(t)
	entries, err := f.q.List(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := Summarize(entries)
	want := []Summary{
		{Rule: "", Reason: pipeline.ReasonInvalidEvent, Count: 1, Oldest: f.now.Add(-5 * time.Minute), Newest: f.now.Add(-5 * time.Minute)},
		{Rule: "", Reason: ReasonUnreadable, Count: 1},
		{Rule: "order-paid", Reason: pipeline.ReasonExhausted, Count: 1, Oldest: f.now.Add(-48 * time.Hour), Newest: f.now.Add(-48 * time.Hour)},
		{Rule: "order-paid", Reason: pipeline.ReasonPermanent, Count: 1, Oldest: f.now.Add(-time.Hour), Newest: f.now.Add(-time.Hour)},
		{Rule: "trial.ending", Reason: pipeline.ReasonRender, Count: 1, Oldest: f.now.Add(-10 * time.Minute), Newest: f.now.Add(-10 * time.Minute)},
		{Rule: "trial_ending", Reason: pipeline.ReasonPermanent, Count: 1, Oldest: f.now.Add(-2 * time.Minute), Newest: f.now.Add(-2 * time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d groups, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Rule != w.Rule || g.Reason != w.Reason || g.Count != w.Count {
			t.Errorf("group %d = %+v, want %+v", i, g, w)
		}
		if !w.Oldest.IsZero() && (!g.Oldest.Equal(w.Oldest) || !g.Newest.Equal(w.Newest)) {
			t.Errorf("group %d times = %v..%v, want %v..%v", i, g.Oldest, g.Newest, w.Oldest, w.Newest)
		}
	}

	t.Run("counts and bounds", func(t *testing.T) {
		t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		mk := func(rule, reason string, at time.Duration) Entry {
			return Entry{DeadLetter: pipeline.DeadLetter{Rule: rule, Reason: reason, At: t0.Add(at)}}
		}
		got := Summarize([]Entry{mk("b", "x", 3), mk("a", "y", 1), mk("b", "x", 1), mk("b", "x", 2), mk("a", "x", 0)})
		want := []Summary{
			{Rule: "a", Reason: "x", Count: 1, Oldest: t0, Newest: t0},
			{Rule: "a", Reason: "y", Count: 1, Oldest: t0.Add(1), Newest: t0.Add(1)},
			{Rule: "b", Reason: "x", Count: 3, Oldest: t0.Add(1), Newest: t0.Add(3)},
		}
		if !slices.EqualFunc(got, want, func(a, b Summary) bool {
			return a.Rule == b.Rule && a.Reason == b.Reason && a.Count == b.Count && a.Oldest.Equal(b.Oldest) && a.Newest.Equal(b.Newest)
		}) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
		if got := Summarize(nil); len(got) != 0 {
			t.Errorf("Summarize(nil) = %+v", got)
		}
	})
}

// outboxJobs returns the jobs stored in the outbox with their Nats-Msg-Id.
func (f *dlqFixture) streamMsgs(t *testing.T, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestDLQReplay(t *testing.T) {
	ctx := context.Background()

	t.Run("everything", func(t *testing.T) {
		f := newDLQFixture(t)
		var progress [][2]int
		n, err := f.q.Replay(ctx, Filter{}, func(done, total int) { progress = append(progress, [2]int{done, total}) })
		var nr *NotReplayableError
		if !errors.As(err, &nr) || !slices.Equal(nr.Seqs, f.ids("invalid", "junk")) {
			t.Fatalf("err = %v, want a NotReplayableError for the invalid event and the junk", err)
		}
		if want := "2 entries have no job or event and cannot be replayed"; !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "inspect with dlq show and purge them") {
			t.Errorf("err = %q, want %q", err, want)
		}
		if n != 4 {
			t.Errorf("replayed %d, want 4", n)
		}
		if len(progress) != 6 || progress[5] != [2]int{6, 6} || progress[0] != [2]int{1, 6} {
			t.Errorf("progress = %v", progress)
		}

		// The jobs are in the outbox, marked as replays, each with its own id.
		outbox := f.streamMsgs(t, f.top.Outbox.Name)
		wantJobs := map[string]struct{ subject, entry string }{ // job key -> where, and from which entry
			"order-paid/1":   {"bridge.outbox.order-paid", "paid-permanent"},
			"order-paid/2":   {"bridge.outbox.order-paid", "paid-exhausted"},
			"trial_ending/9": {"bridge.outbox.trial_ending", "trial-underscore"},
		}
		var gotKeys []string
		for _, m := range outbox {
			var job pipeline.Job
			if err := json.Unmarshal(m.Data, &job); err != nil {
				t.Fatal(err)
			}
			if !job.Replay {
				t.Errorf("job %s is not marked as a replay", job.Key)
			}
			want := wantJobs[job.Key]
			if id := m.Header.Get(nats.MsgIdHdr); m.Subject != want.subject || id != "replay:"+strconv.FormatUint(f.seqs[want.entry], 10) {
				t.Errorf("job %s: subject %s, msg id %q; want %s, replay:%d", job.Key, m.Subject, id, want.subject, f.seqs[want.entry])
			}
			if job.Message.Body != "<p>Hi & welcome</p>" {
				t.Errorf("job %s body = %q", job.Key, job.Message.Body)
			}
			gotKeys = append(gotKeys, job.Key)
		}
		if want := []string{"order-paid/1", "order-paid/2", "trial_ending/9"}; !slices.Equal(gotKeys, want) {
			t.Errorf("outbox holds %v, want %v", gotKeys, want)
		}

		// The event of the render error is back in the events stream.
		events := f.streamMsgs(t, f.top.Events.Name)
		if len(events) != 1 {
			t.Fatalf("events stream holds %d messages, want 1", len(events))
		}
		m := events[0]
		if m.Subject != "bridge.in.shop" || m.Header.Get(event.EnvelopeHeader) != "1" ||
			m.Header.Get(nats.MsgIdHdr) != "replay:"+strconv.FormatUint(f.seqs["trial-render"], 10) {
			t.Errorf("event: subject %s, headers %v", m.Subject, m.Header)
		}
		var env event.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatal(err)
		}
		if env.ID != "ev-7" || env.Subject != "orders.7.paid" || string(env.Data) != `{"order_id":7}` {
			t.Errorf("envelope = %+v", env)
		}

		// Only what could not be replayed is left.
		left, err := f.q.List(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := entrySeqs(left), f.ids("invalid", "junk"); !slices.Equal(got, want) {
			t.Errorf("left in the DLQ: %v, want %v", got, want)
		}
		// A replayed ID is gone.
		if _, err := f.q.Replay(ctx, Filter{IDs: f.ids("paid-permanent")}, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("replaying a replayed ID: err = %v, want ErrNotFound", err)
		}
	})

	tests := []struct {
		name       string
		filter     func(f *dlqFixture) Filter
		replayed   int
		outbox     int
		events     int
		left       []string
		unreplayed int
	}{
		{"by rule", func(*dlqFixture) Filter { return Filter{Rule: "order-paid"} }, 2, 2, 0, []string{"trial-render", "invalid", "trial-underscore", "junk"}, 0},
		{"by reason", func(*dlqFixture) Filter { return Filter{Reason: pipeline.ReasonRender} }, 1, 0, 1, []string{"paid-permanent", "paid-exhausted", "invalid", "trial-underscore", "junk"}, 0},
		{"by age", func(*dlqFixture) Filter { return Filter{Since: 24 * time.Hour, Reason: pipeline.ReasonPermanent} }, 2, 2, 0, []string{"paid-exhausted", "trial-render", "invalid", "junk"}, 0},
		{"by id", func(f *dlqFixture) Filter { return Filter{IDs: f.ids("trial-underscore", "invalid")} }, 1, 1, 0,
			[]string{"paid-permanent", "paid-exhausted", "trial-render", "invalid", "junk"}, 1},
		{"nothing matches", func(*dlqFixture) Filter { return Filter{Rule: "nope"} }, 0, 0, 0, []string{"paid-permanent", "paid-exhausted", "trial-render", "invalid", "trial-underscore", "junk"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDLQFixture(t)
			n, err := f.q.Replay(ctx, tt.filter(f), nil)
			var nr *NotReplayableError
			switch {
			case tt.unreplayed == 0 && err != nil:
				t.Fatal(err)
			case tt.unreplayed > 0 && (!errors.As(err, &nr) || len(nr.Seqs) != tt.unreplayed):
				t.Fatalf("err = %v, want %d not replayable", err, tt.unreplayed)
			}
			if n != tt.replayed {
				t.Errorf("replayed %d, want %d", n, tt.replayed)
			}
			if got := len(f.streamMsgs(t, f.top.Outbox.Name)); got != tt.outbox {
				t.Errorf("outbox holds %d, want %d", got, tt.outbox)
			}
			if got := len(f.streamMsgs(t, f.top.Events.Name)); got != tt.events {
				t.Errorf("events stream holds %d, want %d", got, tt.events)
			}
			left, err := f.q.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := entrySeqs(left), f.ids(tt.left...); !slices.Equal(got, want) {
				t.Errorf("left in the DLQ: %v, want %v", got, want)
			}
		})
	}

	// A replay that stopped between the publish and the delete, run again:
	// the outbox stores the job once.
	t.Run("same entry twice", func(t *testing.T) {
		f := newDLQFixture(t)
		for _, name := range []string{"paid-permanent", "trial-render"} {
			e, err := f.q.Get(ctx, f.seqs[name])
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if ok, err := f.q.republish(ctx, e); !ok || err != nil {
					t.Fatalf("republish %s: %v, %v", name, ok, err)
				}
			}
		}
		if got := len(f.streamMsgs(t, f.top.Outbox.Name)); got != 1 {
			t.Errorf("outbox holds %d jobs, want 1", got)
		}
		if got := len(f.streamMsgs(t, f.top.Events.Name)); got != 1 {
			t.Errorf("events stream holds %d events, want 1", got)
		}
		// The replay itself still completes and deletes the entry.
		if n, err := f.q.Replay(ctx, Filter{IDs: f.ids("paid-permanent")}, nil); n != 1 || err != nil {
			t.Errorf("Replay = %d, %v", n, err)
		}
		if got := len(f.streamMsgs(t, f.top.Outbox.Name)); got != 1 {
			t.Errorf("outbox holds %d jobs, want 1", got)
		}
		if _, err := f.q.Get(ctx, f.seqs["paid-permanent"]); !errors.Is(err, ErrNotFound) {
			t.Errorf("replayed entry still there: %v", err)
		}
	})

	t.Run("no outbox stream", func(t *testing.T) {
		f := newDLQFixture(t)
		if err := f.js.DeleteStream(ctx, f.top.Outbox.Name); err != nil {
			t.Fatal(err)
		}
		n, err := f.q.Replay(ctx, Filter{Rule: "order-paid"}, nil)
		if err == nil || n != 0 {
			t.Fatalf("Replay = %d, %v; want an error", n, err)
		}
		if left, _ := f.q.List(ctx, Filter{Rule: "order-paid"}); len(left) != 2 {
			t.Errorf("entries deleted although not replayed: %d left", len(left))
		}
	})
}

func TestDLQPurge(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		filter func(f *dlqFixture) Filter
		purged int
		left   []string
	}{
		{"everything", func(*dlqFixture) Filter { return Filter{} }, 6, nil},
		{"by rule", func(*dlqFixture) Filter { return Filter{Rule: "order-paid"} }, 2,
			[]string{"trial-render", "invalid", "trial-underscore", "junk"}},
		{"by reason", func(*dlqFixture) Filter { return Filter{Reason: pipeline.ReasonPermanent} }, 2,
			[]string{"paid-exhausted", "trial-render", "invalid", "junk"}},
		{"by age", func(*dlqFixture) Filter { return Filter{Since: 30 * time.Minute} }, 4,
			[]string{"paid-permanent", "paid-exhausted"}},
		{"by id", func(f *dlqFixture) Filter { return Filter{IDs: f.ids("junk", "invalid")} }, 2,
			[]string{"paid-permanent", "paid-exhausted", "trial-render", "trial-underscore"}},
		{"nothing matches", func(*dlqFixture) Filter { return Filter{Reason: "nope"} }, 0,
			[]string{"paid-permanent", "paid-exhausted", "trial-render", "invalid", "trial-underscore", "junk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newDLQFixture(t)
			n, err := f.q.Purge(ctx, tt.filter(f))
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.purged {
				t.Errorf("purged %d, want %d", n, tt.purged)
			}
			left, err := f.q.List(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := entrySeqs(left), f.ids(tt.left...); !slices.Equal(got, want) {
				t.Errorf("left: %v, want %v", got, want)
			}
			// Purging again finds nothing more.
			if n, err := f.q.Purge(ctx, tt.filter(f)); err == nil && n != 0 {
				t.Errorf("second purge deleted %d", n)
			}
		})
	}

	t.Run("kept for new entries", func(t *testing.T) {
		f := newDLQFixture(t)
		if _, err := f.q.Purge(ctx, Filter{}); err != nil {
			t.Fatal(err)
		}
		if err := pipeline.WriteDeadLetter(ctx, f.js, f.top, &pipeline.DeadLetter{Reason: pipeline.ReasonPermanent, Rule: "late", Key: "late/1"}, pipeline.Origin{Stream: "TEST_late"}); err != nil {
			t.Fatal(err)
		}
		left, err := f.q.List(ctx, Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 || left[0].Rule != "late" || left[0].Seq != 7 {
			t.Errorf("after purge and a new write: %+v", left)
		}
	})
}

func TestOpen(t *testing.T) {
	js := natstest.JetStream(t)
	acme := broker.NewTopology(broker.TopologyOptions{Prefix: "acme", Replicas: 1})
	ctx := context.Background()
	// Twice: the second open finds the stream as it is.
	for range 2 {
		q, err := Open(ctx, js, acme, nil)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := q.List(ctx, Filter{})
		if err != nil || len(entries) != 0 {
			t.Fatalf("List on a new stream = %v, %v", entries, err)
		}
		if n, err := q.Purge(ctx, Filter{}); n != 0 || err != nil {
			t.Fatalf("Purge on a new stream = %d, %v", n, err)
		}
	}
	s, err := js.Stream(ctx, "ACME_DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if subj := s.CachedInfo().Config.Subjects; !slices.Equal(subj, []string{"acme.dlq.>"}) {
		t.Errorf("subjects = %v", subj)
	}
}

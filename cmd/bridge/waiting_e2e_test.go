package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// waitingRules: a nudge that waits until the event's "at", one per user,
// replaced by a later signup and cancelled by an activation.
const waitingRules = `rules:
  - name: nudge
    on: {sources: [app]}
    when: event.type == "signup"
    message:
      type: inapp
      from: "394051"
      to: {type: user, user_id: '{{ .event.user }}'}
      body: '<p>Nudge {{ .event.user }} v{{ .event.v }}</p>'
    dedupe: '{{ .event.user }}-{{ .event.v }}'
    schedule:
      at: '{{ .event.at }}'
      key: '{{ .event.user }}'
      cancel_on:
        - {when: 'event.type == "activated"', key: '{{ .event.user }}'}
`

// waitingEvent is one event of the waiting-message tests.
type waitingEvent struct {
	Type string `json:"type"`
	User string `json:"user"`
	V    int    `json:"v,omitempty"`
	At   string `json:"at,omitempty"`
}

// waitingRun is what a waiting-message test planned: for each user, the
// time its nudge is due and the version that must be sent; cancelled
// users get nothing.
type waitingRun struct {
	due       map[string]time.Time
	version   map[string]int
	cancelled map[string]bool
}

// publishWaiting publishes events to app.events over JetStream, each
// stored once (Nats-Msg-Id), retrying while a bridge or NATS restarts.
func (e *e2eEnv) publishWaiting(events []waitingEvent) {
	e.t.Helper()
	nc, err := nats.Connect(e.clientURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, ev := range events {
		body, _ := json.Marshal(ev)
		id := fmt.Sprintf("w-%s-%s-%d-%d", ev.Type, ev.User, ev.V, i)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := js.Publish(ctx, "app.events", body, jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// planWaiting makes n signups due from start on, spaced by step; of them,
// every tenth user is activated at once (cancelled), and every tenth
// after the fifth signs up again with a due time a second later
// (replaced).
func planWaiting(n int, start time.Time, step time.Duration) (waitingRun, []waitingEvent) {
	run := waitingRun{due: map[string]time.Time{}, version: map[string]int{}, cancelled: map[string]bool{}}
	var events, later []waitingEvent
	for i := range n {
		user := fmt.Sprintf("u-%d", i)
		at := start.Add(time.Duration(i) * step).UTC().Truncate(time.Millisecond)
		events = append(events, waitingEvent{Type: "signup", User: user, V: 1, At: at.Format(time.RFC3339Nano)})
		run.due[user], run.version[user] = at, 1
		switch i % 10 {
		case 0:
			later = append(later, waitingEvent{Type: "activated", User: user})
			run.cancelled[user] = true
		case 5:
			again := at.Add(time.Second)
			later = append(later, waitingEvent{Type: "signup", User: user, V: 2, At: again.Format(time.RFC3339Nano)})
			run.due[user], run.version[user] = again, 2
		}
	}
	return run, append(events, later...)
}

// checkWaiting waits until every nudge that should go out did and none
// waits any more, then checks each went once, at or after its time, in
// the version that replaced the others, and that no cancelled one went.
// It returns how late each was, by user.
func (e *e2eEnv) checkWaiting(run waitingRun, timeout time.Duration) map[string]time.Duration {
	e.t.Helper()
	want := len(run.due) - len(run.cancelled)
	sent := func() map[string][]time.Time {
		out := map[string][]time.Time{}
		for _, r := range e.ic.Requests() {
			if r.Method == "POST" && r.Path == "/messages" && r.StatusCode == 200 && r.Message != nil {
				u := firstRecipient(*r.Message).ID
				out[u] = append(out[u], r.Time)
			}
		}
		return out
	}
	e.waitFor(timeout, func() string { return fmt.Sprintf("%d of %d nudges", len(sent()), want) }, func() bool { return len(sent()) >= want })
	e.waitFor(timeout, func() string { return "nothing waiting, the pipeline settled" }, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := e.js.Stream(ctx, e.names.Outbox.Name)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(e.names.WaitFilter("")))
		return err == nil && len(info.State.Subjects) == 0 && e.settled()
	})
	got := sent()
	late := map[string]time.Duration{}
	for user, due := range run.due {
		times := got[user]
		switch {
		case run.cancelled[user]:
			if len(times) != 0 {
				e.t.Errorf("%s was cancelled, and sent %d times", user, len(times))
			}
			continue
		case len(times) != 1:
			e.t.Errorf("%s sent %d times, want once", user, len(times))
			continue
		case times[0].Before(due):
			e.t.Errorf("%s sent %v before its time", user, due.Sub(times[0]))
		}
		late[user] = times[0].Sub(due)
	}
	for _, m := range e.ic.Messages() {
		user := firstRecipient(m).ID
		if want := fmt.Sprintf("v%d</p>", run.version[user]); !strings.HasSuffix(m.Body, want) {
			e.t.Errorf("%s got %q, want the version that replaced the others (%s)", user, m.Body, want)
		}
	}
	return late
}

// percentile is the p-th of the durations (0.5: the median; 1: the most).
func percentile(d map[string]time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(maps.Values(d))
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// TestE2EWaitingTwoReplicas: two bridges share one NATS; messages wait
// until their time, a later signup replaces one, an activation cancels
// one, whichever replica handles which event, and each goes out once.
func TestE2EWaitingTwoReplicas(t *testing.T) {
	e := newE2E(t)
	if err := os.WriteFile(filepath.Join(e.dir, "rules.yaml"), []byte(waitingRules), 0o644); err != nil {
		t.Fatal(err)
	}
	b1, b2 := e.newBridge("bridge1", "warn", true), e.newBridge("bridge2", "warn", true)
	b1.start()
	b2.start()
	run, events := planWaiting(100, time.Now().Add(4*time.Second), 20*time.Millisecond)
	e.publishWaiting(events)
	late := e.checkWaiting(run, 90*time.Second)
	t.Logf("%d sent, %d cancelled; lateness p50 %v, p99 %v", len(late), len(run.cancelled), percentile(late, 0.5), percentile(late, 0.99))
	s1, _ := b1.sentMetric()
	s2, _ := b2.sentMetric()
	if s1 == 0 || s2 == 0 {
		t.Logf("the replicas sent %d and %d: one did it all this time", s1, s2)
	}
}

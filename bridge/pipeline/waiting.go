package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
)

// Messages that wait are JetStream message schedules in the outbox stream:
// one subject per (rule, key) under <prefix>.wait, holding the job, with
// Nats-Schedule "@at <time>" and Nats-Schedule-Target the rule's outbox
// subject. At that time JetStream stores the job in the outbox, where
// stage 2 sends it as any other: ledger, dedupe, throttle, pacing, retries
// and dead letters apply unchanged. A new schedule on the subject replaces
// the old one (JetStream keeps the last message of a schedule subject); a
// purge of the subject cancels it. Nothing waits in memory, so a restart
// or another replica changes nothing.
//
// A cancel can race a schedule that is firing: the job may be in the
// outbox already when the subject is purged. So a cancel also leaves a
// mark in the sent ledger, with the sequence of the event that cancelled,
// and stage 2 drops a job that waited whose scheduling event is not later
// than the mark. Sequences of the events stream order the two events
// whatever the replicas' clocks say.

// JobSchedule is how a job waited: until At, as the one message of its
// rule with Key; EventSeq is the events stream sequence of the event that
// scheduled it.
type JobSchedule struct {
	At       time.Time `json:"at"`
	Key      string    `json:"key"`
	EventSeq uint64    `json:"event_seq"`
}

// due is when a job was to go out: when its event arrived, or, for one
// that waited, when its wait ended; the delivery latency counts from it.
func (j *Job) due() time.Time {
	if j.Schedule != nil && j.Schedule.At.After(j.Received) {
		return j.Schedule.At
	}
	return j.Received
}

// Outcomes of bridge_scheduled_total: messages that wait, by what befell
// them.
const (
	ScheduledWaiting      = "scheduled"            // stored to wait
	ScheduledReplaced     = "replaced"             // replaced a message of the same rule and key that was waiting
	ScheduledCancelled    = "cancelled"            // cancelled while waiting
	ScheduledFired        = "fired"                // came out of its wait into stage 2
	ScheduledDroppedLater = "dropped_after_cancel" // fired, but cancelled before it was sent: dropped, never sent
)

// ScheduledOutcomes lists them, for Precreate.
var ScheduledOutcomes = []string{ScheduledWaiting, ScheduledReplaced, ScheduledCancelled, ScheduledFired, ScheduledDroppedLater}

// OutcomeCancelled is the deliveries outcome of a job dropped because its
// wait was cancelled.
const OutcomeCancelled = "cancelled"

// Waiting stores, lists and cancels the messages that wait. Stage 1, stage
// 2 and `bridge scheduled` share it.
type Waiting struct {
	js     jetstream.JetStream
	t      broker.Topology
	outbox jetstream.Stream
	marks  KV // the sent ledger's bucket: cancel marks live beside the delivery keys
}

// OpenWaiting opens the outbox stream and the sent ledger of topology t.
func OpenWaiting(ctx context.Context, js jetstream.JetStream, t broker.Topology) (*Waiting, error) {
	outbox, err := streamOf(ctx, js, t.Outbox.Name)
	if err != nil {
		return nil, err
	}
	marks, err := ensureBucket(ctx, js, t.Sent)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", t.Sent.Bucket, err)
	}
	return &Waiting{js: js, t: t, outbox: outbox, marks: marks}, nil
}

// Schedule stores job to wait until job.Schedule.At, replacing what its
// rule had waiting under the same key; replaced says whether there was
// one.
func (w *Waiting) Schedule(ctx context.Context, job *Job) (replaced bool, err error) {
	subject := w.t.WaitSubjectFor(job.Rule, job.Schedule.Key)
	if _, err := w.outbox.GetLastMsgForSubject(ctx, subject); err == nil {
		replaced = true
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, fmt.Errorf("waiting message %s: %w", subject, err)
	}
	body, err := json.Marshal(job)
	if err != nil {
		return false, err
	}
	m := nats.NewMsg(subject)
	m.Data = body
	m.Header.Set("Nats-Schedule", "@at "+job.Schedule.At.UTC().Format(time.RFC3339Nano))
	m.Header.Set("Nats-Schedule-Target", w.t.OutboxSubjectFor(job.Rule))
	if _, err := w.js.PublishMsg(ctx, m); err != nil {
		return false, fmt.Errorf("waiting message %s: %w", subject, err)
	}
	return replaced, nil
}

// cancelMark is the ledger entry a cancel leaves: jobs scheduled by
// events before Seq are dropped. An event that cancels and schedules
// again under the same key cancels first, and its own schedule stays.
type cancelMark struct {
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
}

func cancelKey(rule, key string) string { return "cancel." + shortHash(rule+"/"+key) }

// Cancel cancels the message of rule waiting under key, scheduled by
// events before seq (the cancelling event's; for a cancel by hand, one
// past the last stored, see LastEventSeq).
// The mark is written before the purge, so that a schedule firing in
// between is still dropped by stage 2. cancelled says whether a message
// was waiting.
func (w *Waiting) Cancel(ctx context.Context, rule, key string, seq uint64) (cancelled bool, err error) {
	if err := w.mark(ctx, cancelKey(rule, key), seq); err != nil {
		return false, fmt.Errorf("cancel %s %q: %w", rule, key, err)
	}
	subject := w.t.WaitSubjectFor(rule, key)
	if _, err := w.outbox.GetLastMsgForSubject(ctx, subject); err == nil {
		cancelled = true
	} else if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, fmt.Errorf("cancel %s %q: %w", rule, key, err)
	}
	if err := w.outbox.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return false, fmt.Errorf("cancel %s %q: %w", rule, key, err)
	}
	return cancelled, nil
}

// mark raises the cancel mark at key to seq; a mark already higher stays.
func (w *Waiting) mark(ctx context.Context, key string, seq uint64) error {
	for {
		e, err := w.marks.Get(ctx, key)
		var rev uint64
		if err == nil {
			var m cancelMark
			if json.Unmarshal(e.Value(), &m) == nil && m.Seq >= seq {
				return nil
			}
			rev = e.Revision()
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
		body, _ := json.Marshal(cancelMark{Seq: seq, At: time.Now().UTC()})
		if rev == 0 {
			_, err = w.marks.Create(ctx, key, body)
		} else {
			_, err = w.marks.Update(ctx, key, body, rev)
		}
		if err == nil || !isRevisionConflict(err) {
			return err
		}
		// Another replica moved the mark meanwhile: look again.
	}
}

// Cancelled reports whether a job that waited was cancelled after the
// event that scheduled it.
func (w *Waiting) Cancelled(ctx context.Context, job *Job) (bool, error) {
	e, err := w.marks.Get(ctx, cancelKey(job.Rule, job.Schedule.Key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var m cancelMark
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return false, fmt.Errorf("cancel mark of %s: %w", job.Rule, err)
	}
	return job.Schedule.EventSeq < m.Seq, nil
}

// WaitingMessage is one message that waits, as `bridge scheduled list`
// shows it.
type WaitingMessage struct {
	Rule string    `json:"rule"`
	Key  string    `json:"key"`
	At   time.Time `json:"at"`
	Job  *Job      `json:"job"`
	Seq  uint64    `json:"seq"` // in the outbox stream
}

// List returns the messages that wait, soonest first; rule and key, when
// not "", select.
func (w *Waiting) List(ctx context.Context, rule, key string) ([]WaitingMessage, error) {
	filter := w.t.WaitFilter(rule)
	if rule != "" && key != "" {
		filter = w.t.WaitSubjectFor(rule, key)
	}
	info, err := w.outbox.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", w.t.Outbox.Name, err)
	}
	var out []WaitingMessage
	for subject := range info.State.Subjects {
		m, err := w.outbox.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // fired or cancelled meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("waiting message %s: %w", subject, err)
		}
		var job Job
		if err := json.Unmarshal(m.Data, &job); err != nil || job.Schedule == nil {
			continue // not one of the bridge's
		}
		if (rule != "" && job.Rule != rule) || (key != "" && job.Schedule.Key != key) {
			continue
		}
		at := job.Schedule.At
		if p, ok := strings.CutPrefix(m.Header.Get("Nats-Schedule"), "@at "); ok {
			if t, err := time.Parse(time.RFC3339Nano, p); err == nil {
				at = t
			}
		}
		out = append(out, WaitingMessage{Rule: job.Rule, Key: job.Schedule.Key, At: at, Job: &job, Seq: m.Sequence})
	}
	slices.SortFunc(out, func(a, b WaitingMessage) int { return a.At.Compare(b.At) })
	return out, nil
}

// Pending counts the messages that wait, by rule token (the rule's name as
// a subject token).
func (w *Waiting) Pending(ctx context.Context) (map[string]int, error) {
	info, err := w.outbox.Info(ctx, jetstream.WithSubjectFilter(w.t.WaitFilter("")))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for subject, n := range info.State.Subjects {
		tokens := strings.Split(strings.TrimPrefix(subject, w.t.WaitSubject+"."), ".")
		if len(tokens) == 2 {
			out[tokens[0]] += int(n)
		}
	}
	return out, nil
}

// LastEventSeq is the events stream's last sequence: what a cancel by hand
// covers.
func (w *Waiting) LastEventSeq(ctx context.Context) (uint64, error) {
	s, err := w.js.Stream(ctx, w.t.Events.Name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", w.t.Events.Name, err)
	}
	return s.CachedInfo().State.LastSeq, nil
}

package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/intercom-bridge/bridge/internal/poll"
)

// waitingJob is a job of rule "nudge" that waits until at under key; its
// message's subject names which one it is.
func waitingJob(name, key string, at time.Time, eventSeq uint64) *Job {
	job := testJob("nudge", name)
	job.Schedule = &JobSchedule{At: at, Key: key, EventSeq: eventSeq}
	return job
}

func (f *senderFixture) scheduled(outcome string) int {
	return int(testutil.ToFloat64(f.m.Scheduled.WithLabelValues("nudge", outcome)))
}

// A message that waits goes to stage 2 at its time, not before, and is
// sent once; a second one under the same key replaces the first.
func TestWaitingFiresOnceAtItsTime(t *testing.T) {
	t.Parallel()
	client := &fakeSender{}
	f := newSenderFixture(t, client, senderSetup{})
	ctx := context.Background()
	at := time.Now().Add(2 * time.Second)
	first, second := waitingJob("first", "u-1", at, 1), waitingJob("second", "u-1", at, 2)
	other := waitingJob("other", "u-2", at, 3)
	for i, job := range []*Job{first, second, other} {
		replaced, err := f.s.waiting.Schedule(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		if want := i == 1; replaced != want {
			t.Errorf("%s: replaced %v, want %v", job.Key, replaced, want)
		}
	}
	waiting, err := f.s.waiting.List(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 2 || waiting[0].Rule != "nudge" || !waiting[0].At.Equal(at.UTC()) {
		t.Fatalf("waiting: %+v", waiting)
	}
	if byKey, _ := f.s.waiting.List(ctx, "nudge", "u-1"); len(byKey) != 1 || byKey[0].Job.Key != second.Key {
		t.Errorf("waiting under u-1: %+v", byKey)
	}
	poll.For(t, 30*time.Second, "both sent", func() bool { return client.count(second.Key) == 1 && client.count(other.Key) == 1 })
	for _, job := range []*Job{second, other} {
		if sent := client.firstAt(job.Key); sent.Before(at) {
			t.Errorf("%s sent %v before its time", job.Key, at.Sub(sent))
		}
	}
	poll.For(t, 30*time.Second, "the outbox empty", f.outboxEmpty)
	if n := client.count(first.Key); n != 0 {
		t.Errorf("the replaced message was sent %d times", n)
	}
	if n := f.scheduled(ScheduledFired); n != 2 {
		t.Errorf("fired %d, want 2", n)
	}
	if left, _ := f.s.waiting.List(ctx, "", ""); len(left) != 0 {
		t.Errorf("still waiting: %+v", left)
	}
}

// A cancel removes what waits; a cancel that comes after the schedule
// fired, while the job is in the outbox, still stops it: the cancel mark
// of a later event drops it, and a job the cancelling event scheduled
// itself stays.
func TestWaitingCancel(t *testing.T) {
	t.Parallel()
	client := &fakeSender{}
	f := newSenderFixture(t, client, senderSetup{})
	ctx := context.Background()

	waits := waitingJob("waits", "u-1", time.Now().Add(time.Hour), 10)
	if _, err := f.s.waiting.Schedule(ctx, waits); err != nil {
		t.Fatal(err)
	}
	pending := func() float64 { return testutil.ToFloat64(f.m.ScheduledPending.WithLabelValues("nudge")) }
	poll.For(t, 30*time.Second, "bridge_scheduled_pending to count it", func() bool { return pending() == 1 })
	cancelled, err := f.s.waiting.Cancel(ctx, "nudge", "u-1", 11)
	if err != nil || !cancelled {
		t.Fatalf("cancel: %v, %v", cancelled, err)
	}
	if again, err := f.s.waiting.Cancel(ctx, "nudge", "u-1", 11); err != nil || again {
		t.Errorf("a second cancel: %v, %v; want nothing to cancel", again, err)
	}
	if left, _ := f.s.waiting.List(ctx, "", ""); len(left) != 0 {
		t.Errorf("still waiting: %+v", left)
	}
	poll.For(t, 30*time.Second, "bridge_scheduled_pending back to 0", func() bool { return pending() == 0 })

	// Fired before the cancel (in the outbox already), scheduled by an
	// earlier event: dropped. Scheduled by the cancelling event itself, or
	// a later one: sent.
	raced := waitingJob("raced", "u-1", time.Now(), 10)
	same := waitingJob("same-event", "u-1", time.Now(), 11)
	later := waitingJob("later", "u-1", time.Now(), 12)
	for _, job := range []*Job{raced, same, later} {
		f.publish(t, job)
	}
	poll.For(t, 30*time.Second, "the outbox empty", f.outboxEmpty)
	if client.count(raced.Key) != 0 || client.count(same.Key) != 1 || client.count(later.Key) != 1 {
		t.Errorf("sent: raced %d, same event %d, later %d; want 0, 1, 1", client.count(raced.Key), client.count(same.Key), client.count(later.Key))
	}
	if n := f.scheduled(ScheduledDroppedLater); n != 1 {
		t.Errorf("dropped after cancel %d, want 1", n)
	}
	if n := f.outcomes("nudge", OutcomeCancelled); n != 1 {
		t.Errorf("outcome cancelled %d, want 1", n)
	}
	// A mark never goes back: an older cancel leaves the newer one.
	if _, err := f.s.waiting.Cancel(ctx, "nudge", "u-1", 5); err != nil {
		t.Fatal(err)
	}
	if c, err := f.s.waiting.Cancelled(ctx, waitingJob("x", "u-1", time.Now(), 10)); err != nil || !c {
		t.Errorf("after an older cancel, a job of event 10: cancelled %v, %v; want true", c, err)
	}
}

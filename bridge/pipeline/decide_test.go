package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

func testPolicy(onUncertain string) Policy {
	return Policy{MaxAttempts: 5, OnUncertain: onUncertain,
		Backoff: func(attempt int) time.Duration { return Backoff(time.Second, time.Minute, attempt) }}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	pending := func(age, lease time.Duration, errText string) *ledgerEntry {
		return &ledgerEntry{State: statePending, Key: "r/1", Owner: "other-1#2", Attempts: 2, Lease: lease,
			Error: errText, At: now.Add(-age)}
	}
	job := &Job{Key: "r/1", Rule: "r"}
	replay := &Job{Key: "r/1", Rule: "r", Replay: true}
	tests := []struct {
		name        string
		entry       *ledgerEntry
		inHand      bool
		job         *Job
		onUncertain string
		want        decision
	}{
		{name: "new key is sent as attempt 1", job: job,
			want: decision{step: stepSend, attempt: 1}},
		{name: "sent key is a duplicate", entry: &ledgerEntry{State: stateSent, MessageID: "m1"}, job: job,
			want: decision{step: stepDrop, outcome: OutcomeDuplicate}},
		{name: "sent key is a duplicate for a replay too", entry: &ledgerEntry{State: stateSent}, job: replay,
			want: decision{step: stepDrop, outcome: OutcomeDuplicate}},
		{name: "failed attempts are counted", entry: &ledgerEntry{State: stateFailed, Attempts: 3}, job: job,
			want: decision{step: stepSend, attempt: 4}},
		{name: "live lease: in flight elsewhere, never sent", entry: pending(2*time.Second, 15*time.Second, ""), job: job,
			want: decision{step: stepDefer, outcome: OutcomeInFlight, delay: maxDefer}},
		{name: "live lease about to run out: looked at again just after", entry: pending(14*time.Second, 15*time.Second, ""), job: job,
			want: decision{step: stepDefer, outcome: OutcomeInFlight, delay: time.Second + 100*time.Millisecond}},
		{name: "live lease and a replay: still in flight", entry: pending(time.Second, 15*time.Second, ""), job: replay, onUncertain: "dead_letter",
			want: decision{step: stepDefer, outcome: OutcomeInFlight, delay: maxDefer}},
		{name: "in hand in this process", job: job, inHand: true,
			want: decision{step: stepDefer, outcome: OutcomeInFlight, delay: time.Second}},
		{name: "expired lease: uncertain, resend", entry: pending(16*time.Second, 15*time.Second, ""), job: job, onUncertain: "resend",
			want: decision{step: stepSend, resend: true, attempt: 3, outcome: OutcomeUncertainResend}},
		{name: "expired lease: uncertain, dead letter", entry: pending(16*time.Second, 15*time.Second, ""), job: job, onUncertain: "dead_letter",
			want: decision{step: stepDeadLetter, reason: ReasonUncertain, outcome: OutcomeDeadLetter}},
		{name: "entry of a version without leases: uncertain", entry: pending(time.Second, 0, ""), job: job, onUncertain: "resend",
			want: decision{step: stepSend, resend: true, attempt: 3, outcome: OutcomeUncertainResend}},
		{name: "recorded ambiguous error: uncertain at once", entry: pending(time.Second, 0, "timeout"), job: job, onUncertain: "resend",
			want: decision{step: stepSend, resend: true, attempt: 3, outcome: OutcomeUncertainResend}},
		{name: "recorded ambiguous error, dead letter policy", entry: pending(time.Second, 0, "timeout"), job: job, onUncertain: "dead_letter",
			want: decision{step: stepDeadLetter, reason: ReasonUncertain, outcome: OutcomeDeadLetter}},
		{name: "a replay of an uncertain key is sent, whatever the policy", entry: pending(time.Second, 0, "timeout"), job: replay, onUncertain: "dead_letter",
			want: decision{step: stepSend, resend: true, attempt: 3, outcome: OutcomeUncertainResend}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decide(tt.entry, tt.inHand, tt.job, testPolicy(tt.onUncertain), now)
			got.cause = ""
			if got != tt.want {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAfterSend(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	status := func(code int) error { return &intercom.Error{StatusCode: code} }
	rateLimited := &intercom.Error{StatusCode: http.StatusTooManyRequests, RetryAt: now.Add(3 * time.Second)}
	tests := []struct {
		name    string
		err     error
		started bool
		attempt int
		want    decision
	}{
		{name: "accepted: record it", started: true, attempt: 1,
			want: decision{step: stepRecord, outcome: OutcomeSent}},
		{name: "429: wait for the reset as the same attempt, key kept", err: rateLimited, started: true, attempt: 2,
			want: decision{step: stepWait, outcome: OutcomeRateLimited, ledger: keepEntry, delay: 3 * time.Second}},
		{name: "the pacer would wait, for a call that may not: put back at once, nothing counted",
			err: fmt.Errorf("POST /messages: %w", intercom.ErrWouldWait), attempt: 1,
			want: decision{step: stepDefer}},
		{name: "503: not created, retry with backoff", err: status(503), started: true, attempt: 1,
			want: decision{step: stepRetry, outcome: OutcomeRetry, ledger: markFailed, delay: time.Second}},
		{name: "503 at attempt 3: doubled backoff", err: status(503), started: true, attempt: 3,
			want: decision{step: stepRetry, outcome: OutcomeRetry, ledger: markFailed, delay: 4 * time.Second}},
		{name: "504: may have been created", err: status(504), started: true, attempt: 1,
			want: decision{step: stepRetry, outcome: OutcomeRetry, ledger: markAmbiguous, delay: time.Second}},
		{name: "503 at the last attempt: exhausted, certain", err: status(503), started: true, attempt: 5,
			want: decision{step: stepDeadLetter, reason: ReasonExhausted, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
		{name: "504 at the last attempt: exhausted, key stays uncertain", err: status(504), started: true, attempt: 5,
			want: decision{step: stepDeadLetter, reason: ReasonExhausted, outcome: OutcomeDeadLetter, ledger: markAmbiguous}},
		{name: "422: permanent", err: status(422), started: true, attempt: 1,
			want: decision{step: stepDeadLetter, reason: ReasonPermanent, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
		{name: "404: a few retries", err: status(404), started: true, attempt: retryLaterAttempts - 1,
			want: decision{step: stepRetry, outcome: OutcomeRetry, ledger: markFailed, delay: 4 * time.Second}},
		{name: "404: then dead letter", err: status(404), started: true, attempt: retryLaterAttempts,
			want: decision{step: stepDeadLetter, reason: ReasonExhausted, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
		{name: "taken by another worker before the send", err: errBusy, attempt: 1,
			want: decision{step: stepDefer, outcome: OutcomeInFlight, delay: time.Second}},
		{name: "pacer wait ran out: nothing sent, no attempt spent", err: context.DeadlineExceeded, attempt: 1,
			want: decision{step: stepDefer, outcome: OutcomeRetry, delay: time.Second}},
		{name: "refused by the client before sending: permanent", err: status(400), attempt: 1,
			want: decision{step: stepDeadLetter, reason: ReasonPermanent, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := afterSend(tt.err, tt.started, tt.attempt, testPolicy("resend"), now)
			got.cause = ""
			if got != tt.want {
				t.Errorf("afterSend = %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("busy is recognised when wrapped", func(t *testing.T) {
		got := afterSend(errors.Join(errors.New("hook"), errBusy), false, 1, testPolicy("resend"), now)
		if got.step != stepDefer {
			t.Errorf("step = %v, want stepDefer", got.step)
		}
	})
}

// A look-up only reads: none of its failures is ambiguous, and nobody
// found is a dead letter at once.
func TestAfterLookup(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	status := func(code int) error { return &intercom.Error{StatusCode: code} }
	notFound := &ContactNotFoundError{Field: "email"}
	tests := []struct {
		name    string
		err     error
		attempt int
		want    decision
	}{
		{name: "nobody: dead letter contact_not_found", err: notFound, attempt: 1,
			want: decision{step: stepDeadLetter, reason: ReasonContactNotFound, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
		{name: "504 on a look-up: a certain failure, retried", err: status(504), attempt: 1,
			want: decision{step: stepRetry, outcome: OutcomeRetry, ledger: markFailed, delay: time.Second}},
		{name: "504 on the last attempt: dead letter, window given back", err: status(504), attempt: 5,
			want: decision{step: stepDeadLetter, reason: ReasonExhausted, outcome: OutcomeDeadLetter, ledger: forgetEntry, release: true}},
		{name: "429: wait, no attempt spent", err: &intercom.Error{StatusCode: 429, RetryAt: now.Add(2 * time.Second)}, attempt: 1,
			want: decision{step: stepWait, outcome: OutcomeRateLimited, ledger: keepEntry, delay: 2 * time.Second}},
		{name: "the pacer would wait, for a look-up that may not: put back at once, no attempt spent",
			err: fmt.Errorf("look up: %w", intercom.ErrWouldWait), attempt: 1, want: decision{step: stepDefer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := afterLookup(tt.err, tt.attempt, testPolicy("resend"), now)
			got.cause = ""
			if got != tt.want {
				t.Errorf("afterLookup = %+v, want %+v", got, tt.want)
			}
		})
	}
}

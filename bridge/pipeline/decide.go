package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// Stage 2's decisions are pure functions of what the ledger holds, the job,
// the delivery policy and the time, so that each rule of the guarantee can
// be read, and tested, in one place. The Sender only carries them out.

// Policy is what the delivery settings say about retries and ambiguity.
type Policy struct {
	MaxAttempts int
	// Backoff is the delay before attempt+1, without jitter.
	Backoff func(attempt int) time.Duration
	// OnUncertain is "resend" or "dead_letter": what to do with a job whose
	// earlier attempt may have reached Intercom.
	OnUncertain string
}

// step is what the Sender does next with a job.
type step int

const (
	stepSend       step = iota + 1 // mark the key pending, then send
	stepDrop                       // ack without sending
	stepDefer                      // put the job back for later; no attempt spent, nothing sent
	stepDeadLetter                 // write a dead letter, then ack
	stepRetry                      // put the job back after a backoff; an attempt was spent
	stepWait                       // keep the job, wait (rate limit), then send again
	stepRecord                     // Intercom has it: record the key as sent, then ack
)

// ledgerOp is what becomes of the key's pending entry after a send.
type ledgerOp int

const (
	keepEntry     ledgerOp = iota // leave it as it is
	forgetEntry                   // remove it: a replay of the dead letter starts afresh
	markFailed                    // count the attempt: the request certainly did not reach Intercom
	markAmbiguous                 // it may have: keep the key pending, with the error
)

// decision is one decision about a job.
type decision struct {
	step    step
	outcome string        // bridge_deliveries_total outcome, "" for none
	reason  string        // the dead letter's reason
	cause   string        // why, for logs and dead letters
	ledger  ledgerOp      // after a send
	release bool          // give the throttle window back: the message was certainly not sent
	resend  bool          // stepSend after an ambiguous outcome
	attempt int           // stepSend: which attempt this is, from 1
	delay   time.Duration // stepDefer, stepRetry, stepWait
}

// retryLaterAttempts bounds retries of a 404: Intercom answers 404 for a
// user created a moment ago, but a user that does not exist stays absent.
const retryLaterAttempts = 4

// maxDefer bounds how long a job held by another worker is put back for:
// it is looked at again at least this often.
const maxDefer = 5 * time.Second

// decide is what to do with a job before sending it, given its key's
// ledger entry (nil: none), whether this process already has the key in
// hand, and the time.
//
//   - sent: a duplicate, dropped;
//   - pending under a live lease, or in hand here: another worker's request
//     is on its way; look again later, never send;
//   - pending with an expired lease (its holder stopped) or with a recorded
//     ambiguous error: uncertain, and OnUncertain decides; a replay asked
//     for by an operator is sent again;
//   - failed (earlier attempts that certainly did not reach Intercom), or
//     none: send, as the attempt after those recorded.
//
// Attempts are counted in the ledger, not by JetStream's redeliveries: a
// job put back because someone else held it has not spent one.
func decide(e *ledgerEntry, inHand bool, job *Job, p Policy, now time.Time) decision {
	if inHand {
		return decision{step: stepDefer, outcome: OutcomeInFlight, delay: time.Second,
			cause: "this process is sending the key"}
	}
	switch {
	case e == nil:
		return decision{step: stepSend, attempt: 1}
	case e.State == stateSent:
		return decision{step: stepDrop, outcome: OutcomeDuplicate, cause: "already sent"}
	case e.State != statePending: // failed, or a state of a later version
		return decision{step: stepSend, attempt: e.Attempts + 1}
	case e.Error == "" && now.Before(e.leaseUntil()):
		return decision{step: stepDefer, outcome: OutcomeInFlight,
			delay: min(e.leaseUntil().Sub(now)+100*time.Millisecond, maxDefer),
			cause: fmt.Sprintf("%s is sending it (lease until %s)", e.Owner, e.leaseUntil().Format(time.RFC3339))}
	}
	why := e.Error
	if why == "" {
		why = fmt.Sprintf("%s stopped while its request was on its way", cmp.Or(e.Owner, "a worker"))
	}
	if !job.Replay && p.OnUncertain == "dead_letter" {
		return decision{step: stepDeadLetter, reason: ReasonUncertain, outcome: OutcomeDeadLetter,
			cause: "an earlier attempt may have reached Intercom: " + why}
	}
	return decision{step: stepSend, resend: true, attempt: e.Attempts + 1, outcome: OutcomeUncertainResend, cause: why}
}

// afterSend is what to do once the attempt-th send returned err (nil:
// Intercom accepted it). started reports whether the request got past the
// pacer and the key was marked pending: if not, nothing was sent and no
// attempt was spent, unless the client refused the message itself.
func afterSend(err error, started bool, attempt int, p Policy, now time.Time) decision {
	if err == nil {
		return decision{step: stepRecord, outcome: OutcomeSent}
	}
	if errors.Is(err, intercom.ErrWouldWait) {
		// A first attempt that may not wait for the pacer (see
		// attemptFirst): nothing was sent, and the outbox is where it waits.
		return decision{step: stepDefer, cause: err.Error()}
	}
	if errors.Is(err, errBusy) {
		// Another worker took the key between decide and the send.
		return decision{step: stepDefer, outcome: OutcomeInFlight, delay: time.Second, cause: err.Error()}
	}
	d := intercom.Classify(err)
	if !started && d.Class != intercom.Permanent {
		// The pacer did not admit it in time (a long backlog): put it back.
		return decision{step: stepDefer, outcome: OutcomeRetry, delay: time.Second, cause: err.Error()}
	}
	if d.Class == intercom.RateLimited {
		// Intercom did not take it: wait for the reset with the job and its
		// lease in hand, and send it again as the same attempt.
		return decision{step: stepWait, outcome: OutcomeRateLimited, ledger: keepEntry,
			delay: max(d.RetryAt.Sub(now), 0), cause: err.Error()}
	}
	ledger := markFailed
	if d.Uncertain {
		ledger = markAmbiguous
	}
	limit := p.MaxAttempts
	if d.Class == intercom.RetryLater {
		limit = min(limit, retryLaterAttempts)
	}
	switch {
	case d.Class == intercom.Permanent:
		return deadLetterAfter(ReasonPermanent, d.Uncertain, err)
	case attempt >= limit:
		return deadLetterAfter(ReasonExhausted, d.Uncertain, err)
	}
	return decision{step: stepRetry, outcome: OutcomeRetry, ledger: ledger, delay: p.Backoff(attempt), cause: err.Error()}
}

// deadLetterAfter is the decision to dead-letter a job whose last attempt
// failed with err. An ambiguous last attempt keeps the key pending, so that
// a replay knows the message may have been sent; a certain one removes the
// key and gives the throttle window back.
func deadLetterAfter(reason string, uncertain bool, err error) decision {
	d := decision{step: stepDeadLetter, reason: reason, outcome: OutcomeDeadLetter, cause: err.Error(),
		ledger: forgetEntry, release: true}
	if uncertain {
		d.ledger, d.release = markAmbiguous, false
	}
	return d
}

// afterLookup is what to do when looking a recipient up failed at the
// attempt-th try. Nobody found is a dead letter at once; other failures
// are classified as a send's would be, except that none is ambiguous: a
// look-up only reads.
func afterLookup(err error, attempt int, p Policy, now time.Time) decision {
	var nf *ContactNotFoundError
	if errors.As(err, &nf) {
		return decision{step: stepDeadLetter, reason: ReasonContactNotFound, outcome: OutcomeDeadLetter,
			ledger: forgetEntry, release: true, cause: err.Error()}
	}
	a := afterSend(err, true, attempt, p, now)
	switch {
	case a.ledger != markAmbiguous:
	case a.step == stepDeadLetter:
		a.ledger, a.release = forgetEntry, true
	default:
		a.ledger = markFailed
	}
	return a
}

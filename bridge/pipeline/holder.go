package pipeline

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// holder renews the lease of a job's pending key once half of it has run,
// for as long as the worker holds the key (waits for the pacer and for
// rate limits included). The message the job came in is kept alive
// meanwhile by the workers that hold it (see workers). A lease is renewed
// by a timer, not a goroutine of its own: almost every request is answered
// long before half its lease has run, and costs nothing but the timer.
type holder struct {
	msg    jobMsg
	ledger *Ledger
	t      Timeouts
	key    string
	log    zerolog.Logger

	mu      sync.Mutex
	rev     uint64 // revision of the key's entry, as last read or written
	leased  bool   // the entry at rev is this worker's pending entry
	owner   string
	attempt int
	renewal *time.Timer // renews the lease; nil until the first take
	closed  bool
}

func (s *Sender) hold(msg jobMsg, key string, log zerolog.Logger) *holder {
	return &holder{msg: msg, ledger: s.ledger, t: s.Timeouts, key: key, log: log}
}

// expect sets the revision the key's entry was read at.
func (h *holder) expect(rev uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
}

// take marks the key pending for owner's attempt, under a lease; errBusy
// when the entry changed since it was read (another worker took it).
func (h *holder) take(owner string, attempt int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), h.t.Step)
	defer cancel()
	rev, err := h.ledger.markPending(ctx, h.key, owner, attempt, h.t.Lease, h.rev)
	if err != nil {
		return err
	}
	h.rev, h.leased, h.owner, h.attempt = rev, true, owner, attempt
	h.renewIn(h.t.Lease / 2)
	return nil
}

// renewIn has the lease renewed after d; h.mu is held.
func (h *holder) renewIn(d time.Duration) {
	if h.closed {
		return
	}
	if h.renewal == nil {
		h.renewal = time.AfterFunc(d, h.renew)
		return
	}
	h.renewal.Reset(d)
}

// release stops renewing the lease and returns the entry's revision, for
// the write that settles the attempt.
func (h *holder) release() uint64 {
	rev, _ := h.releaseLease()
	return rev
}

// releaseLease is release, and also reports whether the entry at the
// revision is this worker's pending entry.
func (h *holder) releaseLease() (rev uint64, leased bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	leased, h.leased = h.leased, false
	return h.rev, leased
}

// close stops renewing the lease; the job has been settled (or is left to
// be handed out again). A renewal under way finishes first, so none is
// written after close.
func (h *holder) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if h.renewal != nil {
		h.renewal.Stop()
	}
}

// renew extends the lease, half of which has run.
func (h *holder) renew() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.leased || h.closed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.t.Step)
	defer cancel()
	rev, err := h.ledger.markPending(ctx, h.key, h.owner, h.attempt, h.t.Lease, h.rev)
	switch {
	case err == nil:
		h.rev = rev
		h.renewIn(h.t.Lease / 2)
	case errors.Is(err, errBusy):
		// Someone took the key after the lease ran out (this process lost
		// NATS for longer than the lease): their entry stands.
		h.leased = false
		h.log.Warn().Msg("the lease of the delivery key was taken over while its request was on its way")
	default:
		h.log.Debug().Err(err).Msg("cannot renew the lease of the delivery key; trying again")
		h.renewIn(h.t.Heartbeat)
	}
}

// jobMsg is what a worker settles a job through: the outbox message the job
// came in (outboxMsg), or, for the first attempt stage 1 makes at a job it
// has just rendered, the event the job came from (firstAttempt).
type jobMsg interface {
	// done settles the job: sent, dropped or dead-lettered. confirm waits
	// for JetStream to confirm (see ack and ackSent).
	done(confirm bool)
	// again puts the job back, to be worked again after delay.
	again(delay time.Duration)
	// mayWait reports whether the worker may keep the job while it waits
	// for the pacer or a rate limit's reset; if not, the job is put back
	// instead.
	mayWait() bool
	// answered says that the job's request to Intercom has had its answer
	// and that the job makes no other.
	answered()
}

// outboxMsg is a job that came from the outbox.
type outboxMsg struct{ jetstream.Msg }

func (m outboxMsg) done(confirm bool) {
	if confirm {
		ack(m.Msg)
	} else {
		ackSent(m.Msg)
	}
}

func (m outboxMsg) again(delay time.Duration) {
	if delay <= 0 {
		m.Nak()
		return
	}
	m.NakWithDelay(delay)
}

func (m outboxMsg) mayWait() bool { return true }

func (m outboxMsg) answered() {}

package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// MessageSender sends one message to Intercom; *intercom.Client is one.
// A hook in the context (intercom.WithBeforeSend) must be run after any
// wait and just before the request is written.
type MessageSender interface {
	CreateMessage(ctx context.Context, m intercom.Message) (*intercom.SentMessage, error)
}

// SenderOptions are what stage 2 needs.
type SenderOptions struct {
	Topology broker.Topology
	// Workers is the number of concurrent sends of stage 2, and of the
	// first attempts stage 1 makes (see attemptFirst).
	Workers int
	// Policy decides retries, dead letters and uncertain sends.
	Policy   Policy
	Client   MessageSender
	DryRun   bool // do everything but call Intercom and record keys: log each request instead
	Timeouts Timeouts
	// Replica names this process in the pending entries of the ledger; ""
	// means host name and process id.
	Replica string
	Log     zerolog.Logger
	Metrics *Metrics
	// OnUnauthorized, when set, is called when Intercom rejects the token.
	OnUnauthorized func()
	// Contacts configures the look-up of recipients named by user_id or
	// email; with no Finder, only recipients named by id and role can be
	// sent to.
	Contacts ContactsOptions
}

// Sender is stage 2: it reads the outbox with a durable consumer shared by
// replicas and sends each job at most once within the dedupe window.
type Sender struct {
	SenderOptions
	names     broker.Topology
	ledger    *Ledger
	throttles *Throttles
	waiting   *Waiting
	// waitingSeen are the rules bridge_scheduled_pending was set for, so
	// that one whose messages all went is set to 0; the monitor's alone.
	waitingSeen map[string]bool
	contacts    *Contacts
	dlq         *deadLetters

	inHand sync.Map // delivery key -> struct{}: keys a worker of this process is working on
	// slots bound stage 1's first attempts to Workers at once (see
	// attemptFirst); stage 2's workers are as many.
	slots chan struct{}

	js      jetstream.JetStream
	outbox  jetstream.Stream
	workers *workers
	stop    chan struct{} // closed by Stop: ends the monitor and the waits
	bg      sync.WaitGroup
	once    sync.Once
}

// StartSender starts stage 2 with opts.Workers concurrent sends.
func StartSender(ctx context.Context, js jetstream.JetStream, opts SenderOptions) (*Sender, error) {
	s, err := newSender(ctx, js, opts)
	if err != nil {
		return nil, err
	}
	return s, s.start(ctx)
}

// newSender prepares stage 2 without starting it.
func newSender(ctx context.Context, js jetstream.JetStream, opts SenderOptions) (*Sender, error) {
	names := opts.Topology
	sent, err := ensureBucket(ctx, js, names.Sent)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.Sent.Bucket, err)
	}
	throttle, err := ensureBucket(ctx, js, names.Throttle)
	if err != nil {
		return nil, fmt.Errorf("bucket %s (per-key TTLs need NATS server 2.11 or later): %w", names.Throttle.Bucket, err)
	}
	contacts, err := ensureBucket(ctx, js, names.Contacts)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.Contacts.Bucket, err)
	}
	until, err := legacyUntil(ctx, js, sent, names.Sent.TTL)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.Sent.Bucket, err)
	}
	if opts.Replica == "" {
		host, _ := os.Hostname()
		opts.Replica = fmt.Sprintf("%s-%d", cmp.Or(host, "bridge"), os.Getpid())
	}
	if opts.Timeouts == (Timeouts{}) {
		return nil, errors.New("stage 2: no timeouts (see NewTimeouts)")
	}
	s := &Sender{SenderOptions: opts, names: names,
		ledger: &Ledger{kv: sent, legacyUntil: until}, throttles: &Throttles{kv: throttle},
		dlq: &deadLetters{js: js, topology: names}, js: js, stop: make(chan struct{}), slots: make(chan struct{}, max(opts.Workers, 1))}
	co := opts.Contacts
	co.Log, co.Metrics = opts.Log, opts.Metrics
	s.contacts = NewContacts(contacts, co)
	if s.outbox, err = streamOf(ctx, js, names.Outbox.Name); err != nil {
		return nil, err
	}
	s.waiting = &Waiting{js: js, t: names, outbox: s.outbox, marks: sent}
	s.waitingSeen = map[string]bool{}
	return s, nil
}

// start creates or updates the durable consumer and starts the workers.
func (s *Sender) start(ctx context.Context) error {
	cons, err := ensureConsumer(ctx, s.outbox, s.names.SendConsumerConfig(s.Timeouts.AckWait, s.Workers*4))
	if err != nil {
		return fmt.Errorf("consumer %s: %w", s.names.SendConsumer, err)
	}
	if s.workers, err = startWorkers(cons, s.Workers, s.Workers*2, s.Timeouts.Heartbeat, s.handle); err != nil {
		return fmt.Errorf("consume %s: %w", s.names.Outbox.Name, err)
	}
	s.bg.Go(s.monitor)
	return nil
}

// Stop stops taking jobs and waits for the sends in flight.
func (s *Sender) Stop() {
	s.once.Do(func() {
		close(s.stop)
		if s.workers != nil {
			s.workers.stop()
		}
		s.bg.Wait()
	})
}

// monitor keeps the outbox gauges current.
func (s *Sender) monitor() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for first := true; ; first = false {
		// At once, then every tick: the gauges exist from the start.
		if !first {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
		// The outbox is a work queue: a sent job leaves it, so its first
		// message is the oldest job not yet done.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if info, err := s.outbox.Info(ctx); err == nil {
			s.Metrics.OutboxPending.Set(float64(info.State.Msgs))
			if info.State.Msgs == 0 {
				s.Metrics.OutboxOldestAge.Set(0)
			} else {
				s.Metrics.OutboxOldestAge.Set(time.Since(info.State.FirstTime).Seconds())
			}
		}
		for _, name := range []string{s.names.Events.Name, s.names.Outbox.Name, s.names.DLQ.Name} {
			if st, err := s.js.Stream(ctx, name); err == nil {
				if info, err := st.Info(ctx); err == nil {
					s.Metrics.StreamMessages.WithLabelValues(name).Set(float64(info.State.Msgs))
					s.Metrics.StreamBytes.WithLabelValues(name).Set(float64(info.State.Bytes))
				}
			}
		}
		if pending, err := s.waiting.Pending(ctx); err == nil {
			for rule := range s.waitingSeen {
				if _, ok := pending[rule]; !ok {
					pending[rule] = 0 // none waits any more
				}
			}
			for rule, n := range pending {
				s.waitingSeen[rule] = true
				s.Metrics.ScheduledPending.WithLabelValues(rule).Set(float64(n))
			}
		}
		if kv, ok := s.ledger.kv.(jetstream.KeyValue); ok {
			if st, err := kv.Status(ctx); err == nil {
				s.Metrics.LedgerKeys.Set(float64(deliveryKeys(ctx, kv, st.Values())))
				s.Metrics.LedgerBytes.Set(float64(st.Bytes()))
			}
		}
		cancel()
	}
}

func (s *Sender) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		msg.Nak()
		return
	}
	origin := Origin{s.names.Outbox.Name, meta.Sequence.Stream}
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
		defer cancel()
		s.Log.Error().Err(err).Msg("outbox message is not a job; dead-lettered")
		if err := s.deadLetter(ctx, &DeadLetter{Reason: ReasonInvalidEvent, Error: "outbox message is not a job: " + err.Error(),
			Raw: &RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}}, origin); err != nil {
			msg.NakWithDelay(time.Second)
			return
		}
		ack(msg)
		return
	}
	log := s.jobLog(&job)
	if msg.Headers().Get("Nats-Scheduler") != "" && meta.NumDelivered == 1 {
		// JetStream stored it from its schedule: its wait is over.
		s.Metrics.Scheduled.WithLabelValues(job.Rule, ScheduledFired).Inc()
	}
	if s.DryRun {
		s.Metrics.Deliveries.WithLabelValues(job.Rule, s.dryRunSend(msg, &job, log)).Inc()
		return
	}
	if wait := time.Until(job.RetryAt); wait > 0 {
		// A first attempt put it here (see attemptFirst) and said when it
		// may go again.
		msg.NakWithDelay(wait)
		return
	}
	if err := s.work(outboxMsg{msg}, &job, meta.NumDelivered, origin, log); err != nil {
		// The ledger or the dead-letter stream could not be reached: try
		// the job again later, nothing is lost.
		log.Warn().Err(err).Msg("delivery interrupted; will retry")
		msg.NakWithDelay(time.Second)
	}
}

// jobLog is the logger of one job's lines.
func (s *Sender) jobLog(job *Job) zerolog.Logger {
	return s.Log.With().Str("rule", job.Rule).Str("event_id", job.EventID).Str("delivery_key", job.Key).Logger()
}

// work delivers a job that came in m, its delivered-th delivery, with its
// key in hand and m kept alive meanwhile, and counts the outcome: what
// stage 2 and a first attempt share. An error means the job is to be tried
// again for a reason of the bridge's own (NATS unreachable).
func (s *Sender) work(m jobMsg, job *Job, delivered uint64, origin Origin, log zerolog.Logger) error {
	_, busy := s.inHand.LoadOrStore(job.Key, struct{}{})
	if !busy {
		defer s.inHand.Delete(job.Key)
	}
	h := s.hold(m, job.Key, log)
	defer h.close()
	outcome, err := s.deliver(h, job, busy, s.unlooked(job, busy, delivered), origin, log)
	if err != nil {
		return err
	}
	if outcome != "" {
		s.Metrics.Deliveries.WithLabelValues(job.Rule, outcome).Inc()
	}
	return nil
}

// unlooked reports whether a job may skip reading its key's ledger entry
// before it is sent, taking it that there is none: the pending entry is then
// created just before the request is written (as for a key without one),
// and only if the key turns out to have an entry is it read and decided
// on. That saves one round trip per message, and is safe only where the
// job's first step does not depend on the entry: its first delivery (not
// one put back before), no throttle window to take, no wait to check, not
// an operator's replay, no key in hand here, and no ledger of the old key
// form to look in.
func (s *Sender) unlooked(job *Job, busy bool, delivered uint64) bool {
	return delivered == 1 && !busy && job.Throttle == nil && job.Schedule == nil && !job.Replay &&
		!time.Now().Before(s.ledger.legacyUntil)
}

// deliver works one job and settles its message; it returns the outcome,
// or an error when the job must be tried again for a reason of the
// bridge's own (NATS unreachable). busy reports that another worker of
// this process has the job's key in hand; unlooked, that the key's entry
// is taken to be absent until the write of its pending entry says
// otherwise (see unlooked).
func (s *Sender) deliver(h *holder, job *Job, busy, unlooked bool, origin Origin, log zerolog.Logger) (string, error) {
	// The steps before the send share one Step. An unlooked job, most of
	// them, has none (no read, no wait, no throttle: see unlooked) and gets
	// no timer: one per message is a cost a profile shows.
	ctx := context.Background()
	if !unlooked {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeouts.Step)
		defer cancel()
	}
	if job.Schedule != nil {
		cancelled, err := s.waiting.Cancelled(ctx, job)
		if err != nil {
			return "", fmt.Errorf("cancel mark: %w", err)
		}
		if cancelled {
			log.Info().Str("schedule_key", job.Schedule.Key).Msg("its wait was cancelled; dropped, never sent")
			s.Metrics.Scheduled.WithLabelValues(job.Rule, ScheduledDroppedLater).Inc()
			h.msg.done(true)
			return OutcomeCancelled, nil
		}
	}
	var entry *ledgerEntry
	var rev uint64
	if !unlooked {
		var err error
		if entry, rev, err = s.ledger.get(ctx, job.Key); err != nil {
			return "", fmt.Errorf("ledger: %w", err)
		}
	}
	d := decide(entry, busy, job, s.Policy, time.Now())
	switch d.step {
	case stepDrop:
		log.Info().Str("intercom_message_id", entry.MessageID).Msg("already sent; duplicate dropped")
		h.msg.done(false)
		return d.outcome, nil
	case stepDefer:
		log.Debug().Str("why", d.cause).Dur("again_in_ms", d.delay).Msg("in flight elsewhere; put back")
		h.msg.again(d.delay)
		return d.outcome, nil
	case stepDeadLetter:
		log.Warn().Msg("an earlier attempt may have reached Intercom; dead-lettered (on_uncertain: dead_letter)")
		return s.fail(ctx, h.msg, job, entry.Attempts, d, errors.New(d.cause), origin)
	}

	if job.Throttle != nil {
		ok, err := s.throttles.acquire(ctx, job.Rule, job.Throttle, job.Key)
		if err != nil {
			return "", fmt.Errorf("throttle: %w", err)
		}
		if !ok {
			log.Info().Str("throttle_key", job.Throttle.Key).Str("per", job.Throttle.Per.String()).Msg("throttled")
			h.msg.done(true)
			return OutcomeThrottled, nil
		}
	}
	if d.resend {
		s.Metrics.Deliveries.WithLabelValues(job.Rule, d.outcome).Inc()
		log.Warn().Str("why", d.cause).Msg("an earlier attempt may have reached Intercom; sending again (on_uncertain: resend)")
	}

	attempt := d.attempt
	h.expect(rev)
	paced := context.Background()
	if !h.msg.mayWait() {
		paced = intercom.WithoutWaiting(paced)
	}
	for {
		lookupCtx, cancelLookup := paced, context.CancelFunc(func() {})
		if s.contacts.needsLookup(job.Message) {
			lookupCtx, cancelLookup = context.WithTimeout(paced, s.Timeouts.PacerWait+s.Timeouts.Send)
		}
		req, err := s.contacts.Message(lookupCtx, job.Message, log)
		cancelLookup()
		if err != nil {
			a := afterLookup(err, attempt, s.Policy, time.Now())
			if a.step == stepWait {
				if !s.rateLimited(h, job, a, attempt, log) {
					return "", nil // counted by rateLimited
				}
				continue
			}
			if unlooked {
				// Nothing may be recorded over an entry nobody read.
				if outcome, done, err := s.decideIfEntry(h, job, busy, origin, log); done {
					return outcome, err
				}
			}
			if err := s.settleLedger(job, a, attempt, h.release()); err != nil {
				return "", err
			}
			return s.conclude(h.msg, job, a, attempt, err, origin, log)
		}

		started := false
		var takeErr error
		sendCtx, cancelSend := context.WithTimeout(paced, s.Timeouts.PacerWait+s.Timeouts.Send)
		sendCtx = intercom.WithBeforeSend(sendCtx, func() error {
			takeErr = h.take(s.owner(attempt), attempt)
			started = takeErr == nil
			return takeErr
		})
		sent, err := s.Client.CreateMessage(sendCtx, req)
		cancelSend()
		if started {
			// The request had its answer, and the job makes no other:
			// what is left is the ledger's.
			h.msg.answered()
		}
		if takeErr != nil && !errors.Is(takeErr, errBusy) {
			return "", fmt.Errorf("ledger: %w", takeErr)
		}
		a := afterSend(err, started, attempt, s.Policy, time.Now())
		if unlooked && errors.Is(takeErr, errBusy) {
			// Nothing was sent: the key has an entry after all (sent
			// beyond the outbox's duplicate window, or being sent
			// elsewhere).
			return s.deliver(h, job, busy, false, origin, log)
		}
		if unlooked && !started && a.step == stepDeadLetter {
			// The client refused the message before its entry was
			// written: no dead letter for a key sent already.
			if outcome, done, err := s.decideIfEntry(h, job, busy, origin, log); done {
				return outcome, err
			}
		}
		if a.step == stepWait {
			if !s.rateLimited(h, job, a, attempt, log) {
				return "", nil // counted by rateLimited
			}
			continue
		}
		rev := h.release()
		if started {
			if err := s.settleLedger(job, a, attempt, rev); err != nil {
				return "", err
			}
		}
		if a.step == stepRecord {
			return s.succeed(h.msg, job, sent, log)
		}
		return s.conclude(h.msg, job, a, attempt, err, origin, log)
	}
}

// decideIfEntry reads the key's entry, for a job that skipped reading it
// (see unlooked), and when there is one after all works the job again,
// deciding on it; done reports that it did, or that the read failed.
func (s *Sender) decideIfEntry(h *holder, job *Job, busy bool, origin Origin, log zerolog.Logger) (outcome string, done bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
	defer cancel()
	e, _, err := s.ledger.get(ctx, job.Key)
	switch {
	case err != nil:
		return "", true, fmt.Errorf("ledger: %w", err)
	case e == nil:
		return "", false, nil
	}
	outcome, err = s.deliver(h, job, busy, false, origin, log)
	return outcome, true, err
}

// conclude carries out a decision after a failed look-up or send: put
// the job back, retry it later, or dead-letter it.
func (s *Sender) conclude(msg jobMsg, job *Job, a decision, attempt int, err error, origin Origin, log zerolog.Logger) (string, error) {
	if intercom.IsUnauthorized(err) && s.OnUnauthorized != nil {
		s.OnUnauthorized()
	}
	if intercom.IsAmbiguousAnswer(err) {
		// It may have been created: the key stays uncertain (afterSend).
		s.Metrics.Deliveries.WithLabelValues(job.Rule, OutcomeAmbiguousAnswer).Inc()
		log.Warn().Err(err).Msg("Intercom's answer has no message id; not taken as sent")
	}
	switch a.step {
	case stepDefer:
		log.Debug().Str("why", a.cause).Msg("not sent; put back")
		msg.again(a.delay)
		return a.outcome, nil
	case stepDeadLetter:
		switch a.reason {
		case ReasonPermanent:
			log.Error().Err(err).Msg("Intercom refused the message; dead-lettered")
		case ReasonContactNotFound:
			log.Error().Err(err).Msg("no such contact in Intercom; dead-lettered")
		default:
			log.Error().Err(err).Int("attempts", attempt).Msg("attempts exhausted; dead-lettered")
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
		defer cancel()
		return s.fail(ctx, msg, job, attempt, a, err, origin)
	default: // stepRetry
		delay := jitter(a.delay)
		log.Warn().Err(err).Int("attempt", attempt).Bool("uncertain", a.ledger == markAmbiguous).Dur("retry_in_ms", delay).Msg("send failed; will retry")
		msg.again(delay)
		return a.outcome, nil
	}
}

// rateLimited waits out a 429 (of a send or a look-up): Intercom did not
// take the request, and the client's pacer makes every worker wait for the
// reset. false when the job is put back instead: at once when the sender
// stops first, for another replica or the next start; after the reset when
// the job may not be kept waiting (a first attempt, see firstAttempt).
// Either way the key's entry goes back to how it was before the attempt
// took it, so that whoever works the job next sends it as the same
// attempt, not as one that may have reached Intercom.
func (s *Sender) rateLimited(h *holder, job *Job, a decision, attempt int, log zerolog.Logger) bool {
	s.Metrics.Deliveries.WithLabelValues(job.Rule, a.outcome).Inc()
	delay := a.delay
	if h.msg.mayWait() {
		if s.waitFor(delay) {
			return true
		}
		delay = 0
	}
	if err := s.untake(h, job, attempt, a.cause); err != nil {
		// The lease runs out and the key is uncertain: safe, if pessimistic.
		log.Warn().Err(err).Msg("cannot give the delivery key back after a 429")
	}
	h.msg.again(delay)
	return false
}

// untake writes the key's entry back to how it was before the attempt-th
// attempt took it, if it did: Intercom took nothing.
func (s *Sender) untake(h *holder, job *Job, attempt int, cause string) error {
	rev, leased := h.releaseLease()
	if !leased {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
	defer cancel()
	if attempt <= 1 {
		return s.ledger.forget(ctx, job.Key, rev)
	}
	return s.ledger.markFailed(ctx, job.Key, attempt-1, cause, rev)
}

// owner names the worker of an attempt in the ledger.
func (s *Sender) owner(attempt int) string { return s.Replica + "#" + strconv.Itoa(attempt) }

// settleLedger writes what became of an attempt over its pending entry.
func (s *Sender) settleLedger(job *Job, a decision, attempt int, rev uint64) error {
	if a.ledger == keepEntry {
		return nil // a send recorded by succeed, a wait: nothing to write here
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
	defer cancel()
	var err error
	switch a.ledger {
	case markFailed:
		err = s.ledger.markFailed(ctx, job.Key, attempt, a.cause, rev)
	case markAmbiguous:
		attempts := attempt
		if a.step == stepDeadLetter {
			attempts = 0 // a replay of the dead letter gets attempts of its own
		}
		err = s.ledger.markUncertain(ctx, job.Key, attempts, a.cause, rev)
	case forgetEntry:
		err = s.ledger.forget(ctx, job.Key, rev)
	}
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// waitFor waits for d, or until the sender stops (false).
func (s *Sender) waitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

func (s *Sender) succeed(msg jobMsg, job *Job, sent *intercom.SentMessage, log zerolog.Logger) (string, error) {
	// Intercom has the message. The job is acked only once the record is
	// written: acked without it, a replay of the same key would send it
	// again. If the process stops first the key stays pending and its lease
	// runs out, which makes it uncertain, as designed.
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.Timeouts.Step)
		err := s.ledger.markSent(ctx, job.Key, sent.ID, sent.ConversationID)
		cancel()
		if err == nil {
			break
		}
		if try == 1 || try%10 == 0 {
			log.Warn().Err(err).Int("try", try).Str("intercom_message_id", sent.ID).Msg("sent, but the record cannot be written yet; retrying")
		}
		if !s.waitFor(min(time.Duration(try)*200*time.Millisecond, 2*time.Second)) {
			log.Error().Str("intercom_message_id", sent.ID).Msg("sent, but stopping before the record was written: the key stays pending (uncertain)")
			return OutcomeSent, nil
		}
	}
	msg.done(false)
	if !job.Received.IsZero() && !job.Replay { // a replay's wait in the DLQ is not latency
		s.Metrics.DeliveryLatency.Observe(time.Since(job.due()).Seconds())
	}
	ev := log.Info().Str("intercom_message_id", sent.ID).Str("message_type", job.Message.MessageType)
	if sent.ConversationID != "" {
		ev = ev.Str("intercom_conversation_id", sent.ConversationID)
	}
	ev.Msg("sent")
	return OutcomeSent, nil
}

// fail writes the job's dead letter and acks it; d says why and whether
// the throttle window goes back, cause is the error.
func (s *Sender) fail(ctx context.Context, msg jobMsg, job *Job, attempts int, d decision, cause error, origin Origin) (string, error) {
	dl := &DeadLetter{Reason: d.reason, Error: cause.Error(), Rule: job.Rule, EventID: job.EventID, Source: job.Source,
		Key: job.Key, Attempts: attempts, Job: job}
	dl.withIntercomError(cause)
	if err := s.deadLetter(ctx, dl, origin); err != nil {
		return "", err
	}
	if d.release && job.Throttle != nil {
		if err := s.throttles.release(ctx, job.Rule, job.Throttle, job.Key); err != nil {
			s.Log.Warn().Err(err).Str("delivery_key", job.Key).Msg("cannot release the throttle window")
		}
	}
	msg.done(true)
	return OutcomeDeadLetter, nil
}

func (s *Sender) deadLetter(ctx context.Context, d *DeadLetter, origin Origin) error {
	if err := s.dlq.write(ctx, d, origin); err != nil {
		return err
	}
	s.Metrics.DeadLetters.WithLabelValues(d.Reason).Inc()
	return nil
}

// Backoff is the delay before attempt+1: initial doubling per attempt up
// to max.
func Backoff(initial, maxDelay time.Duration, attempt int) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	return min(d, maxDelay)
}

// jitter spreads retries of a burst out: a delay between d/2 and d.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// dryRunSend logs the request that would be sent, its HTML as it is (not
// \u003cp\u003e): the line is there to be read.
func (s *Sender) dryRunSend(msg jetstream.Msg, job *Job, log zerolog.Logger) string {
	body, _ := jsonout.Marshal(job.Message)
	ev := log.Info().RawJSON("request", body)
	if job.Throttle != nil {
		ev = ev.Str("throttle_key", job.Throttle.Key).Str("throttle_per", job.Throttle.Per.String())
	}
	ev.Msg("dry run: would send")
	ack(msg)
	return OutcomeDryRun
}

// ack acks a job and waits for JetStream to confirm, retrying a little: an
// ack lost while NATS reconnects would hand the job out again after the ack
// wait, to be worked again (a dead letter written twice, a throttle decided
// again), late, and counted as pending meanwhile.
func ack(msg jetstream.Msg) {
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := msg.DoubleAck(ctx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ackSent acks a job whose key the ledger records as sent, without waiting
// for JetStream to confirm: an ack lost on the way would hand the job out
// again after the ack wait, and that record would drop it as a duplicate,
// so the wait would buy one round trip per message and nothing else.
func ackSent(msg jetstream.Msg) { msg.Ack() }

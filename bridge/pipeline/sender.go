package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/metrics"
	"github.com/intercom-bridge/bridge/intercom"
)

// MessageSender sends one message to Intercom; *intercom.Client is one.
type MessageSender interface {
	CreateMessage(ctx context.Context, m intercom.Message) (*intercom.SentMessage, error)
}

// retryLaterAttempts bounds retries of a 404: Intercom answers 404 for a
// user created a moment ago, but a user that does not exist stays absent.
const retryLaterAttempts = 4

// Sender is stage 2: it reads the outbox with a durable consumer shared by
// replicas and sends each job at most once within the dedupe window.
type Sender struct {
	names     Names
	delivery  config.Delivery
	client    MessageSender
	dryRun    bool
	ledger    *Ledger
	throttles *Throttles
	dlq       *deadLetters
	log       zerolog.Logger
	m         *metrics.Metrics

	// OnUnauthorized is called when Intercom rejects the token.
	OnUnauthorized func()

	outbox  jetstream.Stream
	workers *workers
	stop    chan struct{} // closed by Stop: ends the monitor and waits for rate limits
	bg      sync.WaitGroup
	once    sync.Once
}

// StartSender starts stage 2 with cfg.Delivery.Workers concurrent sends. In
// dry run (dryRun true) it does everything but call Intercom and record
// keys: each request is logged in full instead.
func StartSender(ctx context.Context, js jetstream.JetStream, cfg *config.Config, client MessageSender, dryRun bool, log zerolog.Logger, m *metrics.Metrics) (*Sender, error) {
	names := NamesFor(cfg)
	sent, err := js.CreateOrUpdateKeyValue(ctx, SentBucketConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", names.Sent, err)
	}
	throttle, err := js.CreateOrUpdateKeyValue(ctx, ThrottleBucketConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("bucket %s (per-key TTLs need NATS server 2.11 or later): %w", names.Throttle, err)
	}
	s := &Sender{names: names, delivery: cfg.Delivery, client: client, dryRun: dryRun, log: log, m: m,
		ledger: &Ledger{kv: sent}, throttles: &Throttles{kv: throttle},
		dlq: &deadLetters{js: js, subject: names.DLQSubject}, stop: make(chan struct{})}
	if s.outbox, err = js.Stream(ctx, names.Outbox); err != nil {
		return nil, fmt.Errorf("stream %s: %w", names.Outbox, err)
	}
	cons, err := s.outbox.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:     names.SendConsumer,
		Description: "intercom-bridge stage 2: send messages to Intercom",
		AckPolicy:   jetstream.AckExplicitPolicy,
		// A job held by a process that died is handed out again after
		// this; InProgress extends it before each request and during waits.
		AckWait:       cfg.Intercom.Timeout.D() + 10*time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: cfg.Delivery.Workers * 4,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", names.SendConsumer, err)
	}
	if s.workers, err = startWorkers(cons, cfg.Delivery.Workers, cfg.Delivery.Workers*2, s.handle); err != nil {
		return nil, fmt.Errorf("consume %s: %w", names.Outbox, err)
	}
	s.bg.Go(s.monitor)
	return s, nil
}

// Stop stops taking jobs and waits for the sends in flight.
func (s *Sender) Stop() {
	s.once.Do(func() {
		close(s.stop)
		s.workers.stop()
		s.bg.Wait()
	})
}

// monitor keeps the outbox gauges current.
func (s *Sender) monitor() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		// The outbox is a work queue: a sent job leaves it, so its first
		// message is the oldest job not yet done.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if info, err := s.outbox.Info(ctx); err == nil {
			s.m.OutboxPending.Set(float64(info.State.Msgs))
			if info.State.Msgs == 0 {
				s.m.OutboxOldestAge.Set(0)
			} else {
				s.m.OutboxOldestAge.Set(time.Since(info.State.FirstTime).Seconds())
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
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.log.Error().Err(err).Msg("outbox message is not a job; dead-lettered")
		if err := s.deadLetter(ctx, &DeadLetter{Reason: ReasonInvalidEvent, Error: "outbox message is not a job: " + err.Error(),
			Raw: &RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}}); err != nil {
			msg.NakWithDelay(time.Second)
			return
		}
		ack(msg)
		return
	}
	log := s.log.With().Str("rule", job.Rule).Str("event_id", job.EventID).Str("delivery_key", job.Key).Logger()
	outcome, err := s.deliver(msg, &job, int(meta.NumDelivered), log)
	if err != nil {
		// The ledger or the dead-letter stream could not be reached: try
		// the job again later, nothing is lost.
		log.Warn().Err(err).Msg("delivery interrupted; will retry")
		msg.NakWithDelay(time.Second)
		return
	}
	s.m.Deliveries.WithLabelValues(job.Rule, outcome).Inc()
}

// deliver works one job and settles its message; it returns the outcome,
// or an error when the job must be tried again for a reason of the
// bridge's own (NATS unreachable).
func (s *Sender) deliver(msg jetstream.Msg, job *Job, attempt int, log zerolog.Logger) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.dryRun {
		return s.dryRunSend(msg, job, log)
	}

	entry, rev, err := s.ledger.get(ctx, job.Key)
	if err != nil {
		return "", fmt.Errorf("ledger: %w", err)
	}
	resend := false
	switch {
	case entry != nil && entry.State == stateSent:
		log.Info().Str("intercom_message_id", entry.MessageID).Msg("already sent; duplicate dropped")
		ack(msg)
		return metrics.Duplicate, nil
	case entry != nil && entry.State == statePending && !job.Replay && s.delivery.OnUncertain == "dead_letter":
		log.Warn().Msg("an earlier attempt may have reached Intercom; dead-lettered (on_uncertain: dead_letter)")
		why := "the process stopped while a request was on its way"
		if entry.Error != "" {
			why = entry.Error
		}
		return s.fail(ctx, msg, job, attempt, ReasonUncertain, fmt.Errorf("an earlier attempt may have reached Intercom: %s", why), false)
	case entry != nil && entry.State == statePending:
		// The process died, or a request timed out, after a request may
		// have reached Intercom: nobody can know. on_uncertain: resend.
		resend = true
	}

	if job.Throttle != nil {
		ok, err := s.throttles.acquire(ctx, job.Rule, job.Throttle, job.Key)
		if err != nil {
			return "", fmt.Errorf("throttle: %w", err)
		}
		if !ok {
			log.Info().Str("throttle_key", job.Throttle.Key).Dur("per", job.Throttle.Per).Msg("throttled")
			ack(msg)
			return metrics.Throttled, nil
		}
	}
	if resend {
		s.m.Deliveries.WithLabelValues(job.Rule, metrics.UncertainResend).Inc()
		log.Warn().Msg("an earlier attempt may have reached Intercom; sending again (on_uncertain: resend)")
	}

	for {
		if rev, err = s.ledger.markPending(ctx, job.Key, rev); err != nil {
			if errors.Is(err, errBusy) {
				msg.NakWithDelay(time.Second) // another worker has it
				return metrics.Retry, nil
			}
			return "", fmt.Errorf("ledger: %w", err)
		}
		msg.InProgress()
		sendCtx, cancelSend := context.WithTimeout(context.Background(), 2*time.Minute)
		sent, err := s.client.CreateMessage(sendCtx, job.Message)
		cancelSend()
		if err == nil {
			return s.succeed(msg, job, sent, log)
		}
		d := intercom.Classify(err)
		if d.Class != intercom.RateLimited {
			return s.failSend(ctx, msg, job, attempt, err, d, log)
		}
		// 429: Intercom did not take the request. Wait for the reset,
		// which the client's pacer makes every worker do, without
		// spending an attempt.
		s.m.Deliveries.WithLabelValues(job.Rule, metrics.RateLimited).Inc()
		if err := s.ledger.forget(ctx, job.Key); err != nil {
			return "", fmt.Errorf("ledger: %w", err)
		}
		rev = 0
		if !s.waitUntil(msg, d.RetryAt) {
			msg.Nak() // stopping: another replica, or the next start, goes on
			return metrics.RateLimited, nil
		}
	}
}

// waitUntil waits for t, telling JetStream the job is still in hand. It
// returns false when the sender stops first.
func (s *Sender) waitUntil(msg jetstream.Msg, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		msg.InProgress()
		select {
		case <-s.stop:
			return false
		case <-time.After(min(d, 10*time.Second)):
		}
	}
}

func (s *Sender) succeed(msg jetstream.Msg, job *Job, sent *intercom.SentMessage, log zerolog.Logger) (string, error) {
	// Intercom has the message: record it, retrying a little, and ack in
	// any case. If the record is lost the next copy is "uncertain", which
	// is what it would be had the process died here.
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.ledger.markSent(ctx, job.Key, sent.ID)
		cancel()
		if err == nil {
			break
		}
		log.Warn().Err(err).Int("try", i+1).Msg("cannot record the sent key")
		time.Sleep(200 * time.Millisecond)
	}
	ack(msg)
	if !job.Received.IsZero() && !job.Replay { // a replay's wait in the DLQ is not latency
		s.m.DeliveryLatency.Observe(time.Since(job.Received).Seconds())
	}
	log.Info().Str("intercom_message_id", sent.ID).Str("message_type", job.Message.MessageType).Msg("sent")
	return metrics.Sent, nil
}

// failSend acts on a failed request, by its classification.
func (s *Sender) failSend(ctx context.Context, msg jetstream.Msg, job *Job, attempt int, err error, d intercom.Decision, log zerolog.Logger) (string, error) {
	if d.Uncertain {
		if uerr := s.ledger.markUncertain(ctx, job.Key, err); uerr != nil {
			return "", fmt.Errorf("ledger: %w", uerr)
		}
	} else if ferr := s.ledger.forget(ctx, job.Key); ferr != nil {
		// The request did not reach Intercom: the next attempt is not a
		// possible duplicate.
		return "", fmt.Errorf("ledger: %w", ferr)
	}
	if intercom.IsUnauthorized(err) && s.OnUnauthorized != nil {
		s.OnUnauthorized()
	}
	limit := s.delivery.MaxAttempts
	if d.Class == intercom.RetryLater {
		limit = min(limit, retryLaterAttempts)
	}
	switch {
	case d.Class == intercom.Permanent:
		log.Error().Err(err).Msg("Intercom refused the message; dead-lettered")
		return s.fail(ctx, msg, job, attempt, ReasonPermanent, err, true)
	case attempt >= limit:
		log.Error().Err(err).Int("attempts", attempt).Msg("attempts exhausted; dead-lettered")
		return s.fail(ctx, msg, job, attempt, ReasonExhausted, err, !d.Uncertain)
	}
	delay := s.backoff(attempt)
	log.Warn().Err(err).Int("attempt", attempt).Bool("uncertain", d.Uncertain).Dur("retry_in", delay).Msg("send failed; will retry")
	msg.NakWithDelay(delay)
	return metrics.Retry, nil
}

// fail writes the job's dead letter and acks it. release gives back the
// throttle window when the message was certainly not sent.
func (s *Sender) fail(ctx context.Context, msg jetstream.Msg, job *Job, attempt int, reason string, cause error, release bool) (string, error) {
	d := &DeadLetter{Reason: reason, Error: cause.Error(), Rule: job.Rule, EventID: job.EventID, Source: job.Source,
		Key: job.Key, Attempts: attempt, Job: job}
	d.withIntercomError(cause)
	if err := s.deadLetter(ctx, d); err != nil {
		return "", err
	}
	if release && job.Throttle != nil {
		if err := s.throttles.release(ctx, job.Rule, job.Throttle, job.Key); err != nil {
			s.log.Warn().Err(err).Str("delivery_key", job.Key).Msg("cannot release the throttle window")
		}
	}
	ack(msg)
	return metrics.DeadLetter, nil
}

func (s *Sender) deadLetter(ctx context.Context, d *DeadLetter) error {
	if err := s.dlq.write(ctx, d); err != nil {
		return err
	}
	s.m.DeadLetters.WithLabelValues(d.Reason).Inc()
	return nil
}

// backoff is the delay before attempt+1: initial doubling per attempt up to
// max, with jitter so that retries of a burst spread out.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.delivery.Backoff.Initial.D()
	for i := 1; i < attempt && d < s.delivery.Backoff.Max.D(); i++ {
		d *= 2
	}
	d = min(d, s.delivery.Backoff.Max.D())
	return d/2 + rand.N(d/2+1)
}

// dryRunSend logs the request that would be sent.
func (s *Sender) dryRunSend(msg jetstream.Msg, job *Job, log zerolog.Logger) (string, error) {
	body, _ := json.Marshal(job.Message)
	ev := log.Info().RawJSON("request", body)
	if job.Throttle != nil {
		ev = ev.Str("throttle_key", job.Throttle.Key).Dur("throttle_per", job.Throttle.Per)
	}
	ev.Msg("dry run: would send")
	ack(msg)
	return metrics.DryRun, nil
}

// ack acks a job and waits for JetStream to confirm, retrying a little: an
// ack lost while NATS reconnects would hand the job out again after the ack
// wait (to be dropped as a duplicate, but late, and counted as pending).
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

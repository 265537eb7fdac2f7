package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/rules"
)

// Matcher is stage 1: it reads the events stream with a durable consumer
// (shared by replicas), evaluates the current rules, and stores one job per
// match in the outbox before it acks the event.
type Matcher struct {
	js      jetstream.JetStream
	names   Names
	decoder *event.Decoder
	rules   func() *rules.Set
	dlq     *deadLetters
	log     zerolog.Logger
	m       *Metrics

	cons    jetstream.Consumer
	workers *workers
	stop    chan struct{}
	bg      sync.WaitGroup
	once    sync.Once
}

// matchWorkers evaluate events in parallel: a JetStream Consume handler
// runs one message at a time.
const matchWorkers = 8

// StartMatcher starts stage 1. current returns the rules in force; a reload
// swaps what it returns, and each event is evaluated with one whole set.
func StartMatcher(ctx context.Context, js jetstream.JetStream, cfg *config.Config, current func() *rules.Set, log zerolog.Logger, m *Metrics) (*Matcher, error) {
	dec, err := NewDecoder(cfg)
	if err != nil {
		return nil, err
	}
	names := NamesFor(cfg)
	mt := &Matcher{js: js, names: names, decoder: dec, rules: current, log: log, m: m,
		dlq: &deadLetters{js: js, subject: names.DLQSubject}, stop: make(chan struct{})}
	events, err := streamOf(ctx, js, names.Events)
	if err != nil {
		return nil, err
	}
	cons, err := ensureConsumer(ctx, events, jetstream.ConsumerConfig{
		Durable:       names.MatchConsumer,
		Description:   "intercom-bridge stage 1: match events against rules",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       15 * time.Second, // an event takes milliseconds; handle gives up after 10 s
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 4096,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", names.MatchConsumer, err)
	}
	mt.cons = cons
	if mt.workers, err = startWorkers(cons, matchWorkers, 512, 5*time.Second, mt.handle); err != nil {
		return nil, fmt.Errorf("consume %s: %w", names.Events, err)
	}
	mt.bg.Go(mt.monitor)
	return mt, nil
}

// monitor keeps bridge_events_pending current: events stored and not yet
// matched, those being matched included.
func (mt *Matcher) monitor() {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-mt.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if info, err := mt.cons.Info(ctx); err == nil {
			mt.m.EventsPending.Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
		cancel()
	}
}

// NewDecoder returns the decoder for the events stream of cfg.
func NewDecoder(cfg *config.Config) (*event.Decoder, error) {
	d := &event.Decoder{Stream: cfg.EventsStream()}
	for _, s := range cfg.Sources {
		if s.Mode() != "capture" {
			continue
		}
		id, err := event.CompileExpr(s.NATS.ID)
		if err != nil {
			return nil, fmt.Errorf("source %s: id: %w", s.Name, err)
		}
		d.Captures = append(d.Captures, event.Capture{Name: s.Name, Subjects: s.NATS.Subjects, ID: id})
	}
	return d, nil
}

// Stop stops taking events and waits for those in hand; what was not acked
// is redelivered later.
func (mt *Matcher) Stop() {
	mt.once.Do(func() {
		close(mt.stop)
		mt.workers.stop()
		mt.bg.Wait()
	})
}

func (mt *Matcher) handle(msg jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mt.process(ctx, msg); err != nil {
		// Nothing is lost: the event is redelivered and its jobs, if some
		// were stored, are dropped as duplicates by the outbox.
		ev := mt.log.Warn().Err(err).Str("subject", msg.Subject())
		if meta, merr := msg.Metadata(); merr == nil {
			ev = ev.Uint64("seq", meta.Sequence.Stream)
		}
		ev.Msg("event not processed; will retry")
		msg.NakWithDelay(time.Second)
		return
	}
	msg.Ack()
}

// process stores the jobs and dead letters of one event.
func (mt *Matcher) process(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	origin := dlqOrigin(mt.names.Events, meta.Sequence.Stream)
	env, err := mt.decoder.Decode(msg.Subject(), msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp)
	var ev *rules.Event
	if err == nil {
		ev, err = env.Rules()
	}
	if err != nil {
		source := ""
		if env != nil {
			source = env.Source
		}
		mt.m.EventsInvalid.WithLabelValues(source).Inc()
		mt.log.Error().Err(err).Uint64("seq", meta.Sequence.Stream).Msg("event cannot be read; dead-lettered")
		return mt.deadLetter(ctx, &DeadLetter{Reason: ReasonInvalidEvent, Error: err.Error(), Source: source,
			EventID: event.Seq(mt.names.Events, meta.Sequence.Stream),
			Raw:     &RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}}, origin)
	}

	res := mt.rules().Evaluate(ev)
	futures := make([]jetstream.PubAckFuture, 0, len(res.Deliveries))
	jobs := make([]*Job, 0, len(res.Deliveries))
	for _, d := range res.Deliveries {
		job := &Job{Key: DeliveryKey(d.Rule, d.DedupeKey), Rule: d.Rule, EventID: ev.ID, Source: ev.Source,
			DedupeKey: d.DedupeKey, Message: d.Message, Received: ev.Time}
		if d.Throttle != nil {
			job.Throttle = &Throttle{Key: d.Throttle.Key, Per: d.Throttle.Per}
		}
		m, err := jobMsg(mt.names, job)
		if err != nil {
			return err
		}
		f, err := mt.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		futures = append(futures, f)
		jobs = append(jobs, job)
		mt.m.RuleMatches.WithLabelValues(d.Rule).Inc()
		mt.log.Debug().Str("rule", d.Rule).Str("event_id", ev.ID).Str("delivery_key", job.Key).Msg("queued")
	}
	for _, e := range res.Errors {
		mt.m.RuleErrors.WithLabelValues(e.Rule).Inc()
		mt.log.Error().Str("rule", e.Rule).Str("event_id", ev.ID).Err(e.Err).Msg("rule failed for event; dead-lettered")
		if err := mt.deadLetter(ctx, &DeadLetter{Reason: ReasonRender, Error: e.Err.Error(), Rule: e.Rule,
			EventID: ev.ID, Source: ev.Source, Event: env}, origin); err != nil {
			return err
		}
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				mt.duplicate(jobs[i], meta.NumDelivered > 1)
			}
		case err := <-f.Err():
			return fmt.Errorf("outbox: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("outbox: %w", ctx.Err())
		}
	}
	return nil
}

// duplicate reports a job the outbox already had under its delivery key
// (within its duplicate window): another event with the same dedupe key, or
// this event's own job stored by an earlier delivery of it (redelivered).
func (mt *Matcher) duplicate(job *Job, redelivered bool) {
	mt.m.Deliveries.WithLabelValues(job.Rule, OutcomeDuplicate).Inc()
	mt.log.Info().Str("rule", job.Rule).Str("event_id", job.EventID).Str("delivery_key", job.Key).
		Str("dedupe_key", job.DedupeKey).Bool("event_redelivered", redelivered).
		Msg("a message with this delivery key is already queued; duplicate dropped")
}

func (mt *Matcher) deadLetter(ctx context.Context, d *DeadLetter, origin string) error {
	if err := mt.dlq.write(ctx, d, origin); err != nil {
		return err
	}
	mt.m.DeadLetters.WithLabelValues(d.Reason).Inc()
	return nil
}

// jobMsg is the outbox message of a job; its Nats-Msg-Id is derived from
// the delivery key, so a job rendered twice is stored once.
func jobMsg(names Names, job *Job) (*nats.Msg, error) {
	body, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(names.OutboxSubject + "." + subjectToken(job.Rule))
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, outboxMsgID(job.Key))
	return m, nil
}

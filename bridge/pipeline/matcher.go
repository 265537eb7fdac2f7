package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/rules"
)

// Matcher is stage 1: it reads the events stream with a durable consumer
// (shared by replicas), evaluates the current rules, and before it acks the
// event settles one job per match: sent, dropped or dead-lettered at its
// first attempt, or stored in the outbox.
type Matcher struct {
	js       jetstream.JetStream
	names    broker.Topology
	decoder  *event.Decoder
	rules    func() *rules.Set
	dlq      *deadLetters
	log      zerolog.Logger
	m        *Metrics
	received *prometheus.CounterVec // nil: not counted
	activity *Activity              // nil: not recorded
	waiting  *Waiting
	sender   *Sender // nil: every job goes to the outbox

	cons    jetstream.Consumer
	workers *workers
	stop    chan struct{}
	bg      sync.WaitGroup
	once    sync.Once
}

// matchWorkers evaluate events in parallel: a JetStream Consume handler
// runs one message at a time. A stage 1 that makes first attempts has one
// more for each send slot (delivery.workers), so that it goes on matching
// while every slot is taken by a slow request.
const matchWorkers = 8

// MatcherOptions are what stage 1 needs.
type MatcherOptions struct {
	Topology broker.Topology
	// Decoder reads the stored events back (see event.Decoder).
	Decoder *event.Decoder
	// Rules returns the rules in force; a reload swaps what it returns,
	// and each event is evaluated with one whole set.
	Rules   func() *rules.Set
	Log     zerolog.Logger
	Metrics *Metrics
	// Received, when set, counts the events of capture sources by source
	// (bridge_events_received_total): the events stream stores them
	// itself, so stage 1 is the first of the bridge to see them.
	Received *prometheus.CounterVec
	// Activity, when set, records each rule's matches and the last one's
	// time.
	Activity *Activity
	// Sender, when set, is stage 2 in this process: stage 1 then makes
	// each job's first attempt itself, and stores in the outbox only the
	// jobs that are to wait or be tried again (see Sender.attemptFirst).
	Sender *Sender
}

// StartMatcher starts stage 1.
func StartMatcher(ctx context.Context, js jetstream.JetStream, o MatcherOptions) (*Matcher, error) {
	names := o.Topology
	mt := &Matcher{js: js, names: names, decoder: o.Decoder, rules: o.Rules, log: o.Log, m: o.Metrics, received: o.Received, activity: o.Activity,
		sender: o.Sender, dlq: &deadLetters{js: js, topology: names}, stop: make(chan struct{})}
	events, err := streamOf(ctx, js, names.Events.Name)
	if err != nil {
		return nil, err
	}
	timeouts := NewTimeouts(0) // its AckWait and Heartbeat do not depend on the send timeout
	if o.Sender != nil {
		timeouts = o.Sender.Timeouts
	}
	cons, err := ensureConsumer(ctx, events, names.MatchConsumerConfig(timeouts.AckWait))
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", names.MatchConsumer, err)
	}
	mt.cons = cons
	if mt.waiting, err = OpenWaiting(ctx, js, names); err != nil {
		return nil, err
	}
	n := matchWorkers
	if o.Sender != nil {
		n += o.Sender.Workers
	}
	if mt.workers, err = startWorkers(cons, n, 512, timeouts.Heartbeat, mt.handle); err != nil {
		return nil, fmt.Errorf("consume %s: %w", names.Events.Name, err)
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
	if err := mt.process(time.Now().Add(eventTimeout), msg); err != nil {
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

// eventTimeout bounds what stage 1 stores of one event: its jobs, its dead
// letters, its waiting messages. A first attempt has timeouts of its own.
const eventTimeout = 10 * time.Second

// process stores the jobs and dead letters of one event by deadline. Each
// step that talks to JetStream makes its context (step): most events have
// none, and a context with a deadline costs a timer.
func (mt *Matcher) process(deadline time.Time, msg jetstream.Msg) error {
	step := func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), deadline)
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	origin := Origin{mt.names.Events.Name, meta.Sequence.Stream}
	env, err := mt.decoder.Decode(msg.Subject(), msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp)
	var ev *rules.Event
	if err == nil {
		ev, err = env.Rules()
	}
	if err != nil {
		source := mt.decoder.Source(msg.Subject())
		if env != nil {
			source = env.Source
		}
		mt.m.EventsInvalid.WithLabelValues(source).Inc()
		mt.log.Error().Err(err).Uint64("seq", meta.Sequence.Stream).Msg("event cannot be read; dead-lettered")
		ctx, cancel := step()
		defer cancel()
		return mt.deadLetter(ctx, &DeadLetter{Reason: ReasonInvalidEvent, Error: err.Error(), Source: source,
			EventID: event.Seq(mt.names.Events.Name, meta.Sequence.Stream),
			Raw:     &RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}}, origin)
	}

	if mt.received != nil && meta.NumDelivered == 1 && msg.Headers().Get(event.EnvelopeHeader) == "" {
		mt.received.WithLabelValues(ev.Source).Inc() // a captured subject's event, seen first here
	}
	set := mt.rules()
	res := set.Evaluate(ev)
	// Cancels first: an event that cancels a rule's waiting message and
	// schedules a new one under the same key keeps the new one. A shadow
	// rule cancels nothing: it must not change what live rules send.
	for _, c := range res.Cancels {
		if shadow(set, c.Rule) {
			continue
		}
		ctx, cancel := step()
		cancelled, err := mt.waiting.Cancel(ctx, c.Rule, c.Key, meta.Sequence.Stream)
		cancel()
		if err != nil {
			return err
		}
		if cancelled {
			mt.m.Scheduled.WithLabelValues(c.Rule, ScheduledCancelled).Inc()
			mt.log.Info().Str("rule", c.Rule).Str("schedule_key", c.Key).Str("event_id", ev.ID).Msg("waiting message cancelled")
		}
	}
	futures := make([]jetstream.PubAckFuture, 0, len(res.Deliveries))
	jobs := make([]*Job, 0, len(res.Deliveries))
	var first []*Job // for the first attempts, once the rest is stored
	var maxPayload int64
	if len(res.Deliveries) > 0 {
		maxPayload = mt.js.Conn().MaxPayload()
	}
	for _, d := range res.Deliveries {
		mt.activity.matched(d.Rule, time.Now())
		if shadow(set, d.Rule) {
			mt.m.RuleMatches.WithLabelValues(d.Rule, rules.ModeShadow).Inc()
			if l := mt.log.Debug(); l.Enabled() {
				l.Str("rule", d.Rule).Str("event_id", ev.ID).Str("delivery_key", DeliveryKey(d.Rule, d.DedupeKey)).
					Str("mode", rules.ModeShadow).RawJSON("message", shadowMessage(&d.Message)).Msg("shadow rule matched; not sent")
			}
			continue
		}
		job := &Job{Key: DeliveryKey(d.Rule, d.DedupeKey), Rule: d.Rule, EventID: ev.ID, Source: ev.Source,
			DedupeKey: d.DedupeKey, Message: d.Message, Received: ev.Time}
		if d.Throttle != nil {
			job.Throttle = &Throttle{Key: d.Throttle.Key, Per: d.Throttle.Per}
		}
		if d.Schedule != nil {
			job.Schedule = &JobSchedule{At: d.Schedule.At, Key: d.Schedule.Key, EventSeq: meta.Sequence.Stream}
		}
		// A job the outbox cannot store fails as a render does: its
		// dead letter has the event, to be replayed with a smaller message.
		if err := job.tooLarge(maxPayload); err != nil {
			res.Errors = append(res.Errors, &rules.EvalError{Rule: d.Rule, Err: err})
			continue
		}
		if d.Schedule != nil {
			if d.Schedule.At.After(time.Now()) {
				ctx, cancel := step()
				err := mt.schedule(ctx, job)
				cancel()
				if err != nil {
					return err
				}
				mt.m.RuleMatches.WithLabelValues(d.Rule, rules.ModeLive).Inc()
				continue
			}
			// Its time has come already (an at in the past, a replay):
			// it goes to the outbox at once.
		}
		if mt.sender != nil {
			first = append(first, job)
			mt.m.RuleMatches.WithLabelValues(d.Rule, rules.ModeLive).Inc()
			continue
		}
		m, err := JobMsg(mt.names, job)
		if err != nil {
			return err
		}
		f, err := mt.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		futures = append(futures, f)
		jobs = append(jobs, job)
		mt.m.RuleMatches.WithLabelValues(d.Rule, rules.ModeLive).Inc()
		mt.log.Debug().Str("rule", d.Rule).Str("event_id", ev.ID).Str("delivery_key", job.Key).Msg("queued")
	}
	for _, e := range res.Errors {
		mt.m.RuleErrors.WithLabelValues(e.Rule).Inc()
		if shadow(set, e.Rule) {
			// Not a dead letter: a replay of it would send a shadow
			// rule's message.
			mt.log.Debug().Str("rule", e.Rule).Str("event_id", ev.ID).Str("mode", rules.ModeShadow).Err(e.Err).Msg("shadow rule failed for event")
			continue
		}
		mt.log.Error().Str("rule", e.Rule).Str("event_id", ev.ID).Err(e.Err).Msg("rule failed for event; dead-lettered")
		ctx, cancel := step()
		err := mt.deadLetter(ctx, &DeadLetter{Reason: ReasonRender, Error: e.Err.Error(), Rule: e.Rule,
			EventID: ev.ID, Source: ev.Source, Event: env}, origin)
		cancel()
		if err != nil {
			return err
		}
	}
	if len(futures) > 0 {
		ctx, cancel := step()
		err := mt.stored(ctx, meta.NumDelivered, futures, jobs)
		cancel()
		if err != nil {
			return err
		}
	}
	for _, job := range first {
		if err := mt.attemptFirst(meta.NumDelivered, job, origin); err != nil {
			return err
		}
	}
	return nil
}

// stored waits until JetStream has stored each of an event's jobs.
func (mt *Matcher) stored(ctx context.Context, delivered uint64, futures []jetstream.PubAckFuture, jobs []*Job) error {
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				mt.duplicate(jobs[i], delivered > 1)
			}
		case err := <-f.Err():
			return fmt.Errorf("outbox: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("outbox: %w", ctx.Err())
		}
	}
	return nil
}

// attemptFirst has stage 2 make the job's first attempt (see
// Sender.attemptFirst), and stores the job in the outbox if it is to be
// worked again.
func (mt *Matcher) attemptFirst(delivered uint64, job *Job, origin Origin) error {
	toOutbox, retryAt := mt.sender.attemptFirst(delivered, job, origin)
	if !toOutbox {
		return nil
	}
	job.RetryAt = retryAt
	m, err := JobMsg(mt.names, job)
	if err != nil {
		return err
	}
	// A context of its own: the attempt may have taken a while.
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	ack, err := mt.js.PublishMsg(ctx, m)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if ack.Duplicate {
		mt.duplicate(job, delivered > 1)
	}
	mt.log.Debug().Str("rule", job.Rule).Str("event_id", job.EventID).Str("delivery_key", job.Key).Time("retry_at", retryAt).Msg("queued")
	return nil
}

// shadow reports whether the set's rule is a shadow rule.
func shadow(set *rules.Set, rule string) bool {
	r := set.Rule(rule)
	return r != nil && r.Shadow()
}

// shadowMessage is a shadow rule's message as its debug line shows it.
func shadowMessage(m *rules.Message) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		return []byte("null")
	}
	return b
}

// schedule stores a job that waits, replacing its rule's message waiting
// under the same key.
func (mt *Matcher) schedule(ctx context.Context, job *Job) error {
	replaced, err := mt.waiting.Schedule(ctx, job)
	if err != nil {
		return err
	}
	mt.m.Scheduled.WithLabelValues(job.Rule, ScheduledWaiting).Inc()
	if replaced {
		mt.m.Scheduled.WithLabelValues(job.Rule, ScheduledReplaced).Inc()
	}
	mt.log.Debug().Str("rule", job.Rule).Str("event_id", job.EventID).Str("schedule_key", job.Schedule.Key).
		Time("at", job.Schedule.At).Bool("replaced", replaced).Msg("waits")
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

func (mt *Matcher) deadLetter(ctx context.Context, d *DeadLetter, origin Origin) error {
	if err := mt.dlq.write(ctx, d, origin); err != nil {
		return err
	}
	mt.m.DeadLetters.WithLabelValues(d.Reason).Inc()
	return nil
}

// JobMsg is the outbox message of a job; its Nats-Msg-Id is derived from
// the delivery key, so a job rendered twice is stored once.
func JobMsg(names broker.Topology, job *Job) (*nats.Msg, error) {
	body, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(names.OutboxSubjectFor(job.Rule))
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, outboxMsgID(job.Key))
	return m, nil
}

package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/metrics"
	"github.com/intercom-bridge/bridge/intercom"
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
	m       *metrics.Metrics

	workers *workers
}

// matchWorkers evaluate events in parallel: a JetStream Consume handler
// runs one message at a time.
const matchWorkers = 8

// StartMatcher starts stage 1. current returns the rules in force; a reload
// swaps what it returns, and each event is evaluated with one whole set.
func StartMatcher(ctx context.Context, js jetstream.JetStream, cfg *config.Config, current func() *rules.Set, log zerolog.Logger, m *metrics.Metrics) (*Matcher, error) {
	dec, err := NewDecoder(cfg)
	if err != nil {
		return nil, err
	}
	names := NamesFor(cfg)
	mt := &Matcher{js: js, names: names, decoder: dec, rules: current, log: log, m: m,
		dlq: &deadLetters{js: js, subject: names.DLQSubject}}
	cons, err := js.CreateOrUpdateConsumer(ctx, names.Events, jetstream.ConsumerConfig{
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
	if mt.workers, err = startWorkers(cons, matchWorkers, 512, mt.handle); err != nil {
		return nil, fmt.Errorf("consume %s: %w", names.Events, err)
	}
	return mt, nil
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
func (mt *Matcher) Stop() { mt.workers.stop() }

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
			Raw:     &RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}})
	}

	res := mt.rules().Evaluate(ev)
	futures := make([]jetstream.PubAckFuture, 0, len(res.Deliveries))
	for _, d := range res.Deliveries {
		job := &Job{Key: DeliveryKey(d.Rule, d.DedupeKey), Rule: d.Rule, EventID: ev.ID, Source: ev.Source,
			DedupeKey: d.DedupeKey, Message: toIntercom(d.Message), Received: ev.Time}
		if d.Throttle != nil {
			job.Throttle = &Throttle{Key: d.Throttle.Key, Per: d.Throttle.Per}
		}
		m, err := mt.jobMsg(job)
		if err != nil {
			return err
		}
		f, err := mt.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		futures = append(futures, f)
		mt.m.RuleMatches.WithLabelValues(d.Rule).Inc()
		mt.log.Debug().Str("rule", d.Rule).Str("event_id", ev.ID).Str("delivery_key", job.Key).Msg("queued")
	}
	for _, e := range res.Errors {
		mt.m.RuleErrors.WithLabelValues(e.Rule).Inc()
		mt.log.Error().Str("rule", e.Rule).Str("event_id", ev.ID).Err(e.Err).Msg("rule failed for event; dead-lettered")
		if err := mt.deadLetter(ctx, &DeadLetter{Reason: ReasonRender, Error: e.Err.Error(), Rule: e.Rule,
			EventID: ev.ID, Source: ev.Source, Event: env}); err != nil {
			return err
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("outbox: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("outbox: %w", ctx.Err())
		}
	}
	return nil
}

func (mt *Matcher) deadLetter(ctx context.Context, d *DeadLetter) error {
	if err := mt.dlq.write(ctx, d); err != nil {
		return err
	}
	mt.m.DeadLetters.WithLabelValues(d.Reason).Inc()
	return nil
}

// jobMsg is the outbox message of a job; its Nats-Msg-Id is the delivery
// key, so a job rendered twice is stored once.
func (mt *Matcher) jobMsg(job *Job) (*nats.Msg, error) {
	body, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(mt.names.OutboxSubject + "." + subjectToken(job.Rule))
	m.Data = body
	m.Header.Set(nats.MsgIdHdr, job.Key)
	return m, nil
}

// toIntercom converts a rendered message to the client's request type: the
// two packages do not import each other.
func toIntercom(m rules.Message) intercom.Message {
	msg := intercom.Message{
		MessageType: m.MessageType, Subject: m.Subject, Body: m.Body, Template: m.Template,
		From:                                  intercom.From{Type: m.From.Type, ID: m.From.ID},
		CreateConversationWithoutContactReply: m.CreateConversationWithoutContactReply,
	}
	// TODO(recipients): a recipient named by user_id (Intercom's
	// external_id) or email needs a contact look-up before it can be
	// addressed; until then only a recipient with an Intercom id is sent.
	if m.To.ID != "" {
		msg.To = []intercom.Recipient{{Type: m.To.Type, ID: m.To.ID}}
	}
	return msg
}

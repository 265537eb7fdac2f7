package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/rules"
)

// newDecoder returns the decoder for the events stream of cfg.
func newDecoder(cfg *config.Config) (*event.Decoder, error) {
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

// matcher reads the events stream with a durable consumer and evaluates
// each event with the current rules.
type matcher struct {
	decoder *event.Decoder
	rules   func() *rules.Set
	log     zerolog.Logger
	cc      jetstream.ConsumeContext
}

func startMatcher(ctx context.Context, js jetstream.JetStream, cfg *config.Config, current func() *rules.Set, log zerolog.Logger) (*matcher, error) {
	dec, err := newDecoder(cfg)
	if err != nil {
		return nil, err
	}
	m := &matcher{decoder: dec, rules: current, log: log}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.EventsStream(), jetstream.ConsumerConfig{
		Durable:       cfg.NATS.Prefix + "_match",
		Description:   "intercom-bridge: match events against rules",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 1024,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s_match: %w", cfg.NATS.Prefix, err)
	}
	if m.cc, err = cons.Consume(m.handle); err != nil {
		return nil, fmt.Errorf("consume %s: %w", cfg.EventsStream(), err)
	}
	return m, nil
}

func (m *matcher) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		msg.Nak()
		return
	}
	env, err := m.decoder.Decode(msg.Subject(), msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp)
	if err == nil {
		var ev *rules.Event
		if ev, err = env.Rules(); err == nil {
			m.evaluate(ev)
		}
	}
	if err != nil {
		m.log.Error().Err(err).Uint64("seq", meta.Sequence.Stream).Msg("event cannot be read")
	}
	msg.Ack()
}

func (m *matcher) evaluate(ev *rules.Event) {
	res := m.rules().Evaluate(ev)
	for _, d := range res.Deliveries {
		m.log.Info().Str("event_id", ev.ID).Str("source", ev.Source).Str("rule", d.Rule).Str("dedupe_key", d.DedupeKey).
			Str("message_type", d.Message.MessageType).Msg("rule matched")
	}
	for _, e := range res.Errors {
		m.log.Error().Str("event_id", ev.ID).Str("source", ev.Source).Str("rule", e.Rule).Err(e.Err).Msg("rule failed")
	}
	if len(res.Deliveries) == 0 && len(res.Errors) == 0 {
		m.log.Debug().Str("event_id", ev.ID).Str("source", ev.Source).Msg("no rule matched")
	}
}

func (m *matcher) stop() { m.cc.Drain() }

package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
)

// NATSSources runs the NATS sources that need the bridge to read them: bind
// (a durable consumer on a stream that already exists) and core (a queue
// subscription). Capture sources need nothing: the events stream stores
// their subjects itself.
type NATSSources struct {
	js       jetstream.JetStream
	nc       *nats.Conn
	topology broker.Topology
	log      zerolog.Logger

	consumers []jetstream.ConsumeContext
	subs      []*nats.Subscription
	m         *Metrics
}

// StartNATSSources starts the bind and core sources among sources,
// storing their events under t's subjects; m (nil: none) counts the
// events stored.
func StartNATSSources(ctx context.Context, t broker.Topology, sources []Source, nc *nats.Conn, js jetstream.JetStream, log zerolog.Logger, m *Metrics) (*NATSSources, error) {
	n := &NATSSources{js: js, nc: nc, topology: t, log: log, m: m.orNew()}
	for _, s := range sources {
		var err error
		switch s.Kind {
		case KindBind:
			err = n.bind(ctx, s)
		case KindCore:
			err = n.core(s)
		default:
			continue
		}
		if err != nil {
			n.Stop()
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
	}
	return n, nil
}

// bind reads an existing stream with a durable consumer named
// <prefix>_<source>, so that replicas share the work and a restart goes on
// where it stopped. Each message is acked only after its event is stored.
func (n *NATSSources) bind(ctx context.Context, s Source) error {
	id, err := event.CompileExpr(s.NATS.ID)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	cc := n.topology.BindConsumerConfig(s.Name, s.NATS.Subjects)
	durable := cc.Durable
	var cons jetstream.Consumer
	err = broker.Retry(ctx, "consumer "+durable, func(ctx context.Context) (err error) {
		cons, err = n.js.CreateOrUpdateConsumer(ctx, s.NATS.Stream, cc)
		return err
	})
	if err != nil {
		return fmt.Errorf("consumer %s on stream %s: %w", durable, s.NATS.Stream, err)
	}
	stream := s.NATS.Stream
	consumer, err := cons.Consume(func(m jetstream.Msg) {
		meta, err := m.Metadata()
		if err != nil {
			n.log.Error().Err(err).Str("source", s.Name).Msg("message without metadata")
			m.Nak()
			return
		}
		// A stored message's own sequence is a stable id: a redelivery
		// after a crash is stored once.
		msg := event.NATSMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(), Time: meta.Timestamp,
			Fallback: event.Seq(stream, meta.Sequence.Stream)}
		if err := n.store(s.Name, id, msg); err != nil {
			m.NakWithDelay(time.Second)
			return
		}
		m.Ack()
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", stream, err)
	}
	n.consumers = append(n.consumers, consumer)
	return nil
}

// core subscribes with a queue group: at-most-once, since a message
// published while no bridge listens, or lost before it is stored, is gone.
func (n *NATSSources) core(s Source) error {
	id, err := event.CompileExpr(s.NATS.ID)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	for _, subject := range s.NATS.Subjects {
		sub, err := n.nc.QueueSubscribe(subject, s.NATS.Queue, func(m *nats.Msg) {
			msg := event.NATSMsg{Subject: m.Subject, Header: m.Header, Data: m.Data, Time: time.Now(), Fallback: nuid.Next()}
			if err := n.store(s.Name, id, msg); err != nil {
				n.log.Warn().Err(err).Str("source", s.Name).Str("subject", m.Subject).Msg("core message dropped")
			}
		})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subject, err)
		}
		// Core messages arrive faster than they can be stored at times:
		// hold many rather than drop them as a slow consumer.
		sub.SetPendingLimits(1<<20, 1<<30)
		n.subs = append(n.subs, sub)
	}
	return nil
}

// store puts one message's event in the events stream. A message that is
// not a valid event is stored as it is, without an envelope: stage 1 then
// dead-letters it with the reason, so that nothing is dropped here.
func (n *NATSSources) store(source string, id *event.Expr, msg event.NATSMsg) error {
	subject := n.topology.SourceSubject(source)
	var m *nats.Msg
	env, err := event.FromNATS(source, id, msg)
	if err == nil {
		m, err = env.Msg(subject)
	}
	if err != nil {
		n.log.Error().Err(err).Str("source", source).Str("subject", msg.Subject).Msg("message is not a valid event; stored for the dead-letter stream")
		m = nats.NewMsg(subject)
		m.Data = msg.Data
		m.Header.Set(nats.MsgIdHdr, event.MsgID(source, msg.Fallback))
	}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	ack, err := n.js.PublishMsg(ctx, m)
	if err != nil {
		return err
	}
	if !ack.Duplicate {
		n.m.EventsReceived.WithLabelValues(source).Inc()
	}
	return nil
}

// Stop stops reading. Messages being handled finish; unacked ones are
// redelivered to another replica or after a restart.
func (n *NATSSources) Stop() {
	for _, cc := range n.consumers {
		cc.Drain()
	}
	for _, s := range n.subs {
		s.Drain()
	}
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/internal/lograte"
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

	readers []Reader
	m       *Metrics
}

// A Reader is a running source that reads its events from elsewhere and
// stores them in the events stream: a bind source, a core one; a Kafka
// source would be another. Stop ends it once what it holds is settled;
// what it never acked comes back to a replica or after a restart.
type Reader interface {
	Stop()
}

// startReader starts one kind of source that the bridge reads itself, on
// n's connection and store. Capture sources need none (the events stream
// stores their subjects), webhooks come to the HTTP handler.
type startReader func(ctx context.Context, n *NATSSources, s Source) (Reader, error)

// readers are the kinds the bridge reads: a new kind is its Kind, its
// settings in Source, and its start function here.
var readers = map[Kind]startReader{
	KindBind: startBind,
	KindCore: startCore,
}

// StartNATSSources starts the bind and core sources among sources,
// storing their events under t's subjects; m (nil: none) counts the
// events stored.
func StartNATSSources(ctx context.Context, t broker.Topology, sources []Source, nc *nats.Conn, js jetstream.JetStream, log zerolog.Logger, m *Metrics) (*NATSSources, error) {
	n := &NATSSources{js: js, nc: nc, topology: t, log: log, m: m.orNew()}
	for _, s := range sources {
		start, ok := readers[s.Kind]
		if !ok {
			continue
		}
		r, err := start(ctx, n, s)
		if err != nil {
			n.Stop()
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		n.readers = append(n.readers, r)
	}
	return n, nil
}

// bindWindow bounds the copies a bind source has published into the
// events stream and not yet seen stored: reading waits while this many are
// unconfirmed. Publishing without waiting for each answer is what lets a
// bind source go faster than one store round trip per event.
const bindWindow = 256

// startBind reads an existing stream with a durable consumer named
// <prefix>_<source>, so that replicas share the work and a restart goes on
// where it stopped. Each message is acked only after its copy is stored.
func startBind(ctx context.Context, n *NATSSources, s Source) (Reader, error) {
	id, err := event.CompileExpr(s.NATS.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	cc := n.topology.BindConsumerConfig(s.Name, s.NATS.Subjects)
	durable := cc.Durable
	var cons jetstream.Consumer
	err = broker.Retry(ctx, "consumer "+durable, func(ctx context.Context) (err error) {
		cons, err = n.js.CreateOrUpdateConsumer(ctx, s.NATS.Stream, cc)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s on stream %s: %w", durable, s.NATS.Stream, err)
	}
	b := &binder{n: n, source: s.Name, stream: s.NATS.Stream, id: id,
		slots: make(chan struct{}, bindWindow), copies: make(chan bindCopy, bindWindow), settled: make(chan struct{}),
		logs: lograte.New(logInterval)}
	go b.settle()
	// Pulled no further ahead than the window holds: the rest would only
	// wait in the client.
	consumer, err := cons.Consume(b.handle, broker.PullOptions(bindWindow)...)
	if err != nil {
		close(b.copies)
		return nil, fmt.Errorf("consume %s: %w", b.stream, err)
	}
	b.cc = consumer
	return b, nil
}

// binder copies one bind source's messages into the events stream: handle
// publishes each copy without waiting, settle acks each consumed message
// once JetStream has stored its copy, or naks it to come back.
type binder struct {
	n      *NATSSources
	source string
	stream string
	id     *event.Expr
	cc     jetstream.ConsumeContext

	slots   chan struct{}    // one per copy published and not settled: the window
	copies  chan bindCopy    // the unsettled copies, in the order published
	settled chan struct{}    // closed once settle has returned
	logs    *lograte.Limiter // a copy refused again and again is one line per reason per interval
}

// bindCopy is a consumed message whose copy is on its way to the store.
type bindCopy struct {
	msg      jetstream.Msg
	stored   jetstream.PubAckFuture
	deadline time.Time // past it, the copy counts as not stored
}

// handle runs for each consumed message, one at a time.
func (b *binder) handle(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		b.n.log.Error().Err(err).Str("source", b.source).Msg("message without metadata")
		m.Nak()
		return
	}
	// A stored message's own sequence is a stable id: a redelivery
	// after a crash, or of a copy stored whose answer was lost, is
	// stored once (the events stream's Nats-Msg-Id window).
	msg := event.NATSMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data(),
		Time: meta.Timestamp, Fallback: event.Seq(b.stream, meta.Sequence.Stream)}
	out := b.n.eventMsg(b.source, b.id, msg)
	b.slots <- struct{}{}
	f, err := b.n.js.PublishMsgAsync(out)
	if errors.Is(err, nats.ErrMaxPayload) {
		f, err = b.n.js.PublishMsgAsync(b.n.refused(b.source, msg, out))
	}
	if err != nil {
		<-b.slots
		b.failed(m, err)
		return
	}
	b.copies <- bindCopy{msg: m, stored: f, deadline: time.Now().Add(publishTimeout)}
}

// settle acks or naks the copies in the order they were published.
// JetStream answers one connection's publishes to a stream in the order it
// stores them, so this acks each message as soon as its copy is stored; a
// publish never answered holds those behind it until its deadline.
func (b *binder) settle() {
	defer close(b.settled)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c := range b.copies {
		timer.Reset(time.Until(c.deadline))
		select {
		case ack := <-c.stored.Ok():
			if !ack.Duplicate {
				b.n.m.EventsReceived.WithLabelValues(b.source).Inc()
			}
			c.msg.Ack()
		case err := <-c.stored.Err():
			b.failed(c.msg, err)
		case <-timer.C:
			b.failed(c.msg, fmt.Errorf("no acknowledgement from JetStream within %s", publishTimeout))
		}
		<-b.slots
	}
}

// failed puts back a message whose copy was not stored: it comes back in
// a second, or after the consumer's AckWait when the nak cannot reach the
// server either.
func (b *binder) failed(m jetstream.Msg, err error) {
	if ok, suppressed := b.logs.Allow(storeReason(err)); ok {
		b.n.log.Warn().Err(err).Str("source", b.source).Str("subject", m.Subject()).Int("suppressed", suppressed).
			Msg("message not stored; redelivered")
	}
	m.NakWithDelay(time.Second)
}

// stop stops reading and waits until every copy published is settled, so
// that the messages whose copies are stored are acked rather than left to
// wait out the AckWait.
// Stop drains the consumer and settles the copies on their way.
func (b *binder) Stop() {
	b.cc.Drain()
	<-b.cc.Closed()
	close(b.copies)
	<-b.settled
}

// coreReader is a core source's queue subscriptions, one per subject.
type coreReader []*nats.Subscription

// Stop drains the subscriptions: what they hold is stored first.
func (c coreReader) Stop() {
	for _, s := range c {
		s.Drain()
	}
}

// startCore subscribes with a queue group: at-most-once, since a message
// published while no bridge listens, or lost before it is stored, is gone.
func startCore(_ context.Context, n *NATSSources, s Source) (Reader, error) {
	id, err := event.CompileExpr(s.NATS.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	var subs coreReader
	for _, subject := range s.NATS.Subjects {
		sub, err := n.nc.QueueSubscribe(subject, s.NATS.Queue, func(m *nats.Msg) {
			msg := event.NATSMsg{Subject: m.Subject, Header: m.Header, Data: m.Data, Time: time.Now(), Fallback: nuid.Next()}
			if err := n.store(s.Name, id, msg); err != nil {
				n.log.Warn().Err(err).Str("source", s.Name).Str("subject", m.Subject).Msg("core message dropped")
			}
		})
		if err != nil {
			subs.Stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		// Core messages arrive faster than they can be stored at times:
		// hold many rather than drop them as a slow consumer.
		sub.SetPendingLimits(1<<20, 1<<30)
		subs = append(subs, sub)
	}
	return subs, nil
}

// store puts one message's event in the events stream and waits until it
// is stored.
func (n *NATSSources) store(source string, id *event.Expr, msg event.NATSMsg) error {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	out := n.eventMsg(source, id, msg)
	ack, err := n.js.PublishMsg(ctx, out)
	if errors.Is(err, nats.ErrMaxPayload) {
		ack, err = n.js.PublishMsg(ctx, n.refused(source, msg, out))
	}
	if err != nil {
		return err
	}
	if !ack.Duplicate {
		n.m.EventsReceived.WithLabelValues(source).Inc()
	}
	return nil
}

// eventMsg is the events-stream message of one message of a source. A
// message that is not a valid event is stored as it is, without an
// envelope: stage 1 then dead-letters it with the reason, so that nothing
// is dropped here.
func (n *NATSSources) eventMsg(source string, id *event.Expr, msg event.NATSMsg) *nats.Msg {
	subject := n.topology.SourceSubject(source)
	env, err := event.FromNATS(source, id, msg)
	if err == nil {
		var m *nats.Msg
		if m, err = env.Msg(subject); err == nil {
			return m
		}
	}
	n.log.Error().Err(err).Str("source", source).Str("subject", msg.Subject).Msg("message is not a valid event; stored for the dead-letter stream")
	m := nats.NewMsg(subject)
	m.Data = msg.Data
	m.Header.Set(nats.MsgIdHdr, event.MsgID(source, msg.Fallback))
	return m
}

// refused stands for the event out of msg that the NATS server cannot take
// (with its envelope and headers, larger than max_payload): a message with
// the event's id and no body, whose RefusedHeader says why, so that stage
// 1 dead-letters it and the source's message is settled rather than tried
// again for ever. The message itself stays where it was (a bind source's
// stream keeps it, at the sequence the reason names).
func (n *NATSSources) refused(source string, msg event.NATSMsg, out *nats.Msg) *nats.Msg {
	m := nats.NewMsg(out.Subject)
	m.Header.Set(nats.MsgIdHdr, out.Header.Get(nats.MsgIdHdr))
	m.Header.Set(event.RefusedHeader, fmt.Sprintf("the message %s on %s, of %d bytes, is larger as an event than the NATS server takes (max_payload %d bytes): not stored",
		msg.Fallback, msg.Subject, len(msg.Data), n.nc.MaxPayload()))
	n.log.Error().Str("source", source).Str("subject", msg.Subject).Str("message", msg.Fallback).Int("bytes", len(msg.Data)).
		Int64("max_payload", n.nc.MaxPayload()).Msg("message too large to store as an event; dead-lettered")
	return m
}

// Stop stops reading. Messages being handled finish, and the copies of
// bind sources on their way are settled; unacked messages are redelivered
// to another replica or after a restart.
func (n *NATSSources) Stop() {
	for _, r := range n.readers {
		r.Stop()
	}
}

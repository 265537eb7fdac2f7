package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// copyWindow bounds the copies a source has published into the events
// stream and not yet seen stored: reading waits while this many are
// unconfirmed. Publishing without waiting for each answer is what lets a
// bind or core source go faster than one store round trip per event.
const copyWindow = 256

// window publishes copies into the events stream without waiting, at most
// copyWindow at once, and settles each, in the order published, with its
// own done. JetStream answers one connection's publishes to a stream in
// the order it stores them, so each is settled as soon as it is stored; a
// publish never answered holds those behind it until its deadline.
type window struct {
	js      jetstream.JetStream
	slots   chan struct{}    // one per copy published and not settled
	copies  chan pendingCopy // the unsettled copies, in the order published
	settled chan struct{}    // closed once settle has returned

	mu     sync.RWMutex // held to read by publish, to write by close
	closed bool
}

// errWindowClosed is the answer to a publish after close: a core source's
// callback that outlived Stop's wait.
var errWindowClosed = errors.New("the source is stopping")

// pendingCopy is a copy on its way to the store.
type pendingCopy struct {
	stored   jetstream.PubAckFuture
	deadline time.Time // past it, the copy counts as not stored
	done     func(*jetstream.PubAck, error)
}

func newWindow(js jetstream.JetStream) *window {
	w := &window{js: js, slots: make(chan struct{}, copyWindow), copies: make(chan pendingCopy, copyWindow), settled: make(chan struct{})}
	go w.settle()
	return w
}

// publish sends out on its way, or instead, when out is larger than the
// server takes, the stand-in refused makes; done gets the answer. It waits
// while the window is full.
func (w *window) publish(out *nats.Msg, refused func() *nats.Msg, done func(*jetstream.PubAck, error)) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		done(nil, errWindowClosed)
		return
	}
	w.slots <- struct{}{}
	f, err := w.js.PublishMsgAsync(out)
	if errors.Is(err, nats.ErrMaxPayload) {
		f, err = w.js.PublishMsgAsync(refused())
	}
	if err != nil {
		<-w.slots
		done(nil, err)
		return
	}
	w.copies <- pendingCopy{stored: f, deadline: time.Now().Add(publishTimeout), done: done}
}

func (w *window) settle() {
	defer close(w.settled)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c := range w.copies {
		timer.Reset(time.Until(c.deadline))
		select {
		case ack := <-c.stored.Ok():
			c.done(ack, nil)
		case err := <-c.stored.Err():
			c.done(nil, err)
		case <-timer.C:
			c.done(nil, fmt.Errorf("no acknowledgement from JetStream within %s", publishTimeout))
		}
		<-w.slots
	}
}

// close waits until every copy published is settled. Nothing may be
// published after it.
func (w *window) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.copies)
	}
	w.mu.Unlock()
	<-w.settled
}

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
	b := &binder{n: n, source: s.Name, stream: s.NATS.Stream, id: id, copies: newWindow(n.js), logs: lograte.New(logInterval)}
	// Pulled no further ahead than the window holds: the rest would only
	// wait in the client.
	consumer, err := cons.Consume(b.handle, broker.PullOptions(copyWindow)...)
	if err != nil {
		b.copies.close()
		return nil, fmt.Errorf("consume %s: %w", b.stream, err)
	}
	b.cc = consumer
	return b, nil
}

// binder copies one bind source's messages into the events stream: handle
// publishes each copy without waiting, and acks each consumed message once
// JetStream has stored its copy, or naks it to come back.
type binder struct {
	n      *NATSSources
	source string
	stream string
	id     *event.Expr
	cc     jetstream.ConsumeContext

	copies *window
	logs   *lograte.Limiter // a copy refused again and again is one line per reason per interval
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
	b.copies.publish(out, func() *nats.Msg { return b.n.refused(b.source, msg, out) }, func(ack *jetstream.PubAck, err error) {
		if err != nil {
			b.failed(m, err)
			return
		}
		if !ack.Duplicate {
			b.n.m.EventsReceived.WithLabelValues(b.source).Inc()
		}
		m.Ack()
	})
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

// Stop drains the consumer and waits until every copy published is
// settled, so that the messages whose copies are stored are acked rather
// than left to wait out the AckWait.
func (b *binder) Stop() {
	b.cc.Drain()
	<-b.cc.Closed()
	b.copies.close()
}

// coreReader is a core source's queue subscriptions, one per subject, and
// the window their copies go through.
type coreReader struct {
	subs   []*nats.Subscription
	copies *window
}

// coreDrainTimeout bounds Stop's wait for the messages a subscription
// holds: past it, those still held are dropped with the connection.
const coreDrainTimeout = 10 * time.Second

// Stop drains the subscriptions, so that what they hold is published, and
// waits until those copies are settled.
func (c *coreReader) Stop() {
	closed := make([]<-chan nats.SubStatus, len(c.subs))
	for i, s := range c.subs {
		closed[i] = s.StatusChanged(nats.SubscriptionClosed)
		s.Drain()
	}
	deadline := time.After(coreDrainTimeout)
	for _, ch := range closed {
		select {
		case <-ch:
		case <-deadline:
		}
	}
	c.copies.close()
}

// startCore subscribes with a queue group: at-most-once, since a message
// published while no bridge listens, or lost before it is stored, is gone.
func startCore(_ context.Context, n *NATSSources, s Source) (Reader, error) {
	id, err := event.CompileExpr(s.NATS.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	c := &coreReader{copies: newWindow(n.js)}
	logs := lograte.New(logInterval)
	for _, subject := range s.NATS.Subjects {
		sub, err := n.nc.QueueSubscribe(subject, s.NATS.Queue, func(m *nats.Msg) {
			msg := event.NATSMsg{Subject: m.Subject, Header: m.Header, Data: m.Data, Time: time.Now(), Fallback: nuid.Next()}
			out := n.eventMsg(s.Name, id, msg)
			c.copies.publish(out, func() *nats.Msg { return n.refused(s.Name, msg, out) }, func(ack *jetstream.PubAck, err error) {
				if err != nil {
					if ok, suppressed := logs.Allow(storeReason(err)); ok {
						n.log.Warn().Err(err).Str("source", s.Name).Str("subject", m.Subject).Int("suppressed", suppressed).Msg("core message dropped")
					}
					return
				}
				if !ack.Duplicate {
					n.m.EventsReceived.WithLabelValues(s.Name).Inc()
				}
			})
		})
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("subscribe %s: %w", subject, err)
		}
		// Core messages arrive faster than they can be stored at times:
		// hold many rather than drop them as a slow consumer.
		sub.SetPendingLimits(1<<20, 1<<30)
		c.subs = append(c.subs, sub)
	}
	return c, nil
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

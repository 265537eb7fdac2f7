package ingest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
)

// bindEnv is e with the stream ORDERS holding n messages for the bind
// source "orders" of testSources, numbered by their stream sequence.
func bindEnv(t *testing.T, n int) *env {
	t.Helper()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := e.js.PublishAsync("orders.eu.paid", fmt.Appendf(nil, `{"order":%d}`, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("ORDERS not filled within 30 s")
	}
	return e
}

// runBindSource runs the bind source on a connection of its own, which the
// caller may close to cut the bridge off.
func runBindSource(t *testing.T, e *env, log zerolog.Logger) (*NATSSources, *nats.Conn) {
	t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var bind []Source
	for _, s := range e.sources {
		if s.Kind == KindBind {
			bind = append(bind, s)
		}
	}
	sources, err := StartNATSSources(context.Background(), e.top, bind, nc, js, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sources, nc
}

// bindConsumer is the bind source's durable consumer, as the test's own
// connection sees it.
func (e *env) bindConsumer() jetstream.Consumer {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), "ORDERS", e.top.BindConsumerConfig("orders", nil).Durable)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// storedCopies counts the copies of each ORDERS message in the events
// stream, by the id the bind source gives it (ORDERS-<seq>).
func (e *env) storedCopies() map[string]int {
	e.t.Helper()
	copies := map[string]int{}
	for _, env := range e.stored() {
		copies[env.ID]++
	}
	return copies
}

// checkAckedStored fails the test unless every message the consumer
// acknowledged has its copy stored: the ack floor is read first, so a
// copy it counts was stored before the copies are read.
func (e *env) checkAckedStored(when string) {
	e.t.Helper()
	info, err := e.bindConsumer().Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	copies := e.storedCopies()
	for seq := uint64(1); seq <= info.AckFloor.Stream; seq++ {
		if copies[fmt.Sprintf("ORDERS-%d", seq)] == 0 {
			e.t.Fatalf("%s: ORDERS message %d acked (ack floor %d), its copy not stored (%d stored)", when, seq, info.AckFloor.Stream, len(copies))
		}
	}
	e.t.Logf("%s: ack floor %d, %d acks pending, %d copies stored", when, info.AckFloor.Stream, info.NumAckPending, len(copies))
}

// waitAllStoredOnce waits until the consumer has nothing left and checks
// that each of the n messages has exactly one copy.
func (e *env) waitAllStoredOnce(n int, within time.Duration) {
	e.t.Helper()
	cons := e.bindConsumer()
	poll.For(e.t, within, "every message to be copied and acked", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream == uint64(n)
	})
	copies := e.storedCopies()
	for seq := 1; seq <= n; seq++ {
		if c := copies[fmt.Sprintf("ORDERS-%d", seq)]; c != 1 {
			e.t.Errorf("ORDERS message %d: %d copies in the events stream, want 1", seq, c)
		}
	}
	if len(copies) != n {
		e.t.Errorf("%d distinct copies stored, want %d", len(copies), n)
	}
}

// TestBindRefusedCopiesComeBack: while the events stream refuses writes,
// the bind source acks none of the messages it could not store; once it
// takes them again, every message is stored once.
func TestBindRefusedCopiesComeBack(t *testing.T) {
	const n, room = 1000, 300
	e := bindEnv(t, n)
	ctx := context.Background()
	full := e.top.Events
	full.MaxMsgs, full.Discard = room, jetstream.DiscardNew
	if _, err := e.js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	sources, _ := runBindSource(t, e, zerolog.New(&logs))
	defer sources.Stop()

	poll.For(t, 10*time.Second, "the events stream to fill and refuse a copy", func() bool {
		return len(e.storedCopies()) == room && strings.Contains(logs.String(), "message not stored; redelivered")
	})
	e.checkAckedStored("while refused")
	if info, _ := e.bindConsumer().Info(ctx); info.AckFloor.Stream > room {
		t.Fatalf("ack floor %d past the %d copies the stream could take", info.AckFloor.Stream, room)
	}

	if _, err := e.js.UpdateStream(ctx, e.top.Events); err != nil {
		t.Fatal(err)
	}
	e.waitAllStoredOnce(n, 30*time.Second)
}

// TestBindStopSettlesCopies: a graceful stop acks every message whose copy
// was stored (soon, not after the AckWait of 30 s), so that a new start
// goes on where it stopped; and it stores nothing twice.
func TestBindStopSettlesCopies(t *testing.T) {
	const n = 5000
	e := bindEnv(t, n)
	cons := e.bindConsumer
	sources, _ := runBindSource(t, e, zerolog.Nop())
	poll.For(t, 10*time.Second, "some messages acked", func() bool {
		info, err := cons().Info(context.Background())
		return err == nil && info.AckFloor.Stream > 0
	})
	sources.Stop()
	// Acks are not answered: the server may take them a moment after
	// the stop.
	poll.For(t, 5*time.Second, "every message with a stored copy to be acked", func() bool {
		info, err := cons().Info(context.Background())
		return err == nil && info.AckFloor.Stream == uint64(len(e.storedCopies()))
	})
	e.checkAckedStored("after the stop")

	sources, _ = runBindSource(t, e, zerolog.Nop())
	defer sources.Stop()
	e.waitAllStoredOnce(n, 60*time.Second)
}

// A bind source's pull requests expire within broker.PullExpiry and ask
// for heartbeats every broker.PullHeartbeat: one the server dropped
// (around the consumer's creation, a change of its leader) is replaced
// within two heartbeats, not after jetstream's default 30 s, during which
// the source would deliver nothing.
func TestBindPullRequestsExpireSoon(t *testing.T) {
	e := bindEnv(t, 1)
	durable := e.top.BindConsumerConfig("orders", nil).Durable
	req := natstest.FirstPullRequest(t, e.nc, "ORDERS", durable, func() {
		sources, _ := runBindSource(t, e, zerolog.Nop())
		t.Cleanup(sources.Stop)
	})
	if req.Expires <= 0 || req.Expires > broker.PullExpiry {
		t.Errorf("pull request %+v expires in %s, want at most %s", req, req.Expires, broker.PullExpiry)
	}
	if req.Heartbeat <= 0 || req.Heartbeat > broker.PullHeartbeat {
		t.Errorf("pull request %+v asks for heartbeats every %s, want at most %s", req, req.Heartbeat, broker.PullHeartbeat)
	}
}

package broker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

func testOptions(t *testing.T) Options {
	return Options{DataDir: t.TempDir(), ConnectTimeout: 10 * time.Second, MaxStore: 1 << 30}
}

// testEvents is the events stream of a bridge with prefix "bridge" and a
// capture source on billing.>.
var testEvents = NewTopology(TopologyOptions{Prefix: "bridge", Replicas: 1, EventsMaxAge: 7 * 24 * time.Hour,
	Duplicates: 10 * time.Minute, CaptureSubjects: []string{"billing.>"}}).Events

func TestEmbeddedServerStoresEvents(t *testing.T) {
	cfg := testOptions(t)
	ctx := context.Background()
	b, err := Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Connected() || b.ClientURL() != "" {
		t.Errorf("connected %v, client URL %q (want none without nats.listen)", b.Connected(), b.ClientURL())
	}
	s, err := b.EnsureStream(ctx, testEvents)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.JS.Publish(ctx, "billing.invoice.paid", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JS.Publish(ctx, "bridge.in.shop", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || info.Config.MaxAge != 7*24*time.Hour || info.Config.Duplicates != 10*time.Minute {
		t.Errorf("stream: %d msgs, config %+v", info.State.Msgs, info.Config)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// The store survives a restart.
	b, err = Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s, err = b.EnsureStream(ctx, testEvents)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 2 {
		t.Errorf("after restart: %d msgs", info.State.Msgs)
	}
}

func TestDataDirIsLocked(t *testing.T) {
	cfg := testOptions(t)
	b, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), cfg, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "is in use by another bridge process") {
		t.Fatalf("second open: %v", err)
	}
	b.Close()
	b, err = Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Close()
}

func TestEmbeddedListen(t *testing.T) {
	cfg := testOptions(t)
	cfg.Listen = "127.0.0.1:0"
	b, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.ClientURL() == "" {
		t.Fatal("no client URL")
	}
	nc, err := nats.Connect(b.ClientURL())
	if err != nil {
		t.Fatalf("another program cannot connect: %v", err)
	}
	nc.Close()
}

// openExternal opens a broker on a NATS server of the test's own, as with
// an external server in production; the broker closes when the test ends.
func openExternal(t *testing.T) (*natstest.Server, *Broker, Options) {
	t.Helper()
	srv := natstest.Start(t)
	cfg := testOptions(t)
	cfg.URL = srv.ClientURL()
	b, err := Open(context.Background(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return srv, b, cfg
}

func TestStreamChangeRefused(t *testing.T) {
	_, b, _ := openExternal(t)
	// Another stream owns billing.>: the events stream cannot capture it.
	if _, err := b.JS.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BILLING", Subjects: []string{"billing.>"}}); err != nil {
		t.Fatal(err)
	}
	_, err := b.EnsureStream(context.Background(), testEvents)
	if err == nil || !strings.Contains(err.Error(), "stream BRIDGE_EVENTS (subjects [bridge.in.> billing.>]): JetStream refused the configuration") ||
		!strings.Contains(err.Error(), "overlap") {
		t.Errorf("got %v", err)
	}
}

func TestExternalServerReconnects(t *testing.T) {
	srv, b, _ := openExternal(t)
	if !b.Connected() {
		t.Fatal("not connected")
	}
	srv.Server.Shutdown()
	srv.Server.WaitForShutdown()
	poll.For(t, 20*time.Second, "the broker to see NATS gone", func() bool { return !b.Connected() })
	srv.Restart(0)
	poll.For(t, 20*time.Second, "the broker to reconnect", b.Connected)
}

func TestExternalServerUnreachable(t *testing.T) {
	cfg := testOptions(t)
	cfg.URL = "nats://alice:S3cret@127.0.0.1:1,nats://127.0.0.1:2"
	cfg.ConnectTimeout = 300 * time.Millisecond
	_, err := Open(context.Background(), cfg, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "could not connect to nats://alice:xxxxx@127.0.0.1:1,nats://127.0.0.1:2 within 300ms") {
		t.Errorf("got %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "S3cret") {
		t.Errorf("the password is in the error: %v", err)
	}
}

// An outbox made before messages could wait (no schedules, no wait
// subjects) is updated in place: the bridge's upgrade needs no migration.
func TestEnsureStreamUpgradesOutbox(t *testing.T) {
	_, b, _ := openExternal(t)
	ctx := context.Background()
	top := NewTopology(TopologyOptions{Prefix: "bridge", Replicas: 1, Duplicates: time.Minute})
	old := top.Outbox
	old.Subjects, old.AllowMsgSchedules = []string{top.OutboxSubject + ".>"}, false
	if _, err := b.JS.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	s, err := b.EnsureStream(ctx, top.Outbox)
	if err != nil {
		t.Fatal(err)
	}
	if c := s.CachedInfo().Config; !c.AllowMsgSchedules || len(c.Subjects) != 2 {
		t.Errorf("outbox after the upgrade: schedules %v, subjects %v", c.AllowMsgSchedules, c.Subjects)
	}
}

package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// Two replicas that start together on a cluster that has just started
// both create the topology: the first answers (no meta leader yet) are
// retried.
func TestEnsureStreamOnAStartingCluster(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			nc, err := nats.Connect(servers[i].ClientURL())
			if err != nil {
				errs[i] = err
				return
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				errs[i] = err
				return
			}
			b := &Broker{Conn: nc, JS: js, log: zerolog.Nop()}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, errs[i] = b.EnsureStream(ctx, jetstream.StreamConfig{Name: "T_EVENTS", Subjects: []string{"t.>"}, Replicas: 3, Storage: jetstream.FileStorage})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i+1, err)
		}
	}
}

// A configuration JetStream refuses is not retried, and the error says what
// differs from the stream that exists.
func TestEnsureStreamSaysWhatDiffers(t *testing.T) {
	js := natstest.JetStream(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Retention: jetstream.LimitsPolicy}); err != nil {
		t.Fatal(err)
	}
	b := &Broker{JS: js, log: zerolog.Nop()}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.EnsureStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Retention: jetstream.WorkQueuePolicy})
	if err == nil {
		t.Fatal("a retention change was accepted")
	}
	for _, want := range []string{"stream S", "JetStream refused the configuration", "retention Limits (want WorkQueue)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Both have no byte limit, which JetStream stores as -1 and the
	// config asks for as 0: that is no difference.
	if strings.Contains(err.Error(), "max_bytes") {
		t.Errorf("error %q names max_bytes, which does not differ", err)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Errorf("JetStream's error is not kept: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a refusal took %v: it was retried", d)
	}
}

func TestTransient(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{nats.ErrNoResponders, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream cluster not available"}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10009, Description: "JetStream cluster can not handle request"}, true},
		{&jetstream.APIError{Code: 500, ErrorCode: 10069, Description: "stream configuration update can not change retention"}, false},
		{&jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "stream configuration update can not change retention"}, false},
		{&jetstream.APIError{Code: 404, ErrorCode: 10059, Description: "stream not found"}, false},
		{errors.New("something else"), false},
	} {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// The probe fails while a replicated stream has lost its quorum, though
// the connection stays up, and recovers when the nodes come back.
func TestProbeFollowsQuorum(t *testing.T) {
	servers := natstest.StartCluster(t, 3)
	nc, err := nats.Connect(servers[0].ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{Conn: nc, JS: js, log: zerolog.Nop()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.EnsureStream(ctx, jetstream.StreamConfig{Name: "Q", Subjects: []string{"q.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	p := StartProbe(js, "Q", 200*time.Millisecond, time.Second)
	defer p.Stop()
	poll.For(t, 30*time.Second, "the probe to pass", func() bool { return p.Problem() == nil })

	// Two of three nodes away until the probe notices: how soon the
	// stream's leader steps down without its followers depends on the
	// machine's speed.
	for _, s := range servers[1:] {
		s.Down()
	}
	poll.For(t, 2*time.Minute, "the probe to fail without a quorum", func() bool { return p.Problem() != nil })
	if !nc.IsConnected() {
		t.Error("the connection dropped: the test checks a live connection to a cluster without quorum")
	}
	t.Logf("without quorum: %v", p.Problem())
	// A replica starts answering for a stream that has stayed without a
	// leader past the server's lost-quorum interval (10 s): the probe
	// must keep failing then too.
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if p.Problem() == nil {
			t.Fatal("the probe passed again while two of three nodes were down")
		}
	}
	t.Logf("still without quorum: %v", p.Problem())
	for _, s := range servers[1:] {
		s.Up()
	}
	poll.For(t, 60*time.Second, "the probe to pass again", func() bool { return p.Problem() == nil })
}

package broker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/natstest"
)

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
		// A node of a starting cluster that has not reported in yet; the
		// same code for a configuration no cluster of this size can place.
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, false},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline, insufficient storage"}, false},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement, tags not matched ['az:x']"}, false},
		{errors.New("something else"), false},
	} {
		if got := Transient(tt.err); got != tt.want {
			t.Errorf("Transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

package ingest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// TestBodyIdleDeadlineMovesWithProgress: a body that keeps arriving, if
// slowly, is read however long it takes in all; one that stops for the
// idle timeout gets 408.
func TestBodyIdleDeadlineMovesWithProgress(t *testing.T) {
	e := newEnv(t)
	// Gaps well inside the idle timeout, on a machine however busy, and a
	// body that takes twice the timeout in all.
	e.opts.BodyIdleTimeout = time.Second
	hooks, err := e.webhooks(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hooks.Handler())
	defer srv.Close()
	body := `{"slow":"` + strings.Repeat("x", 20) + `"}`
	cases := []struct {
		name  string
		pause time.Duration // between pieces of 5 bytes
		stall bool          // stop before the end
		want  int
	}{
		{"slow but steady: 2.1 s in all", 300 * time.Millisecond, false, http.StatusAccepted},
		{"stalled", 50 * time.Millisecond, true, http.StatusRequestTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /hooks/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
			for i := 0; i < len(body); i += 5 {
				if tc.stall && i >= 10 {
					break
				}
				time.Sleep(tc.pause)
				io.WriteString(c, body[i:min(i+5, len(body))])
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestEventOverNATSLimitIs413: an event that NATS can never take (with
// its headers, over the server's max_payload) is a 413, not "retry later".
func TestEventOverNATSLimitIs413(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 8 << 10 })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateOrUpdateStream(context.Background(), testTopology.Events); err != nil {
		t.Fatal(err)
	}
	hooks, err := NewWebhooks(testTopology, testWebhookOptions, testSources(), js, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		body   []byte
		header string
		want   int
	}{
		{"small", []byte(`{"a":1}`), "", http.StatusAccepted},
		{"a large header", []byte(`{"a":2}`), strings.Repeat("h", 9<<10), http.StatusRequestEntityTooLarge},
		{"a large body", []byte(`{"a":"` + strings.Repeat("b", 9<<10) + `"}`), "", http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/hooks/open", bytes.NewReader(tc.body))
			if tc.header != "" {
				r.Header.Set("X-Big", tc.header)
			}
			rw := httptest.NewRecorder()
			hooks.Handler().ServeHTTP(rw, r)
			if rw.Code != tc.want {
				t.Errorf("status %d, want %d: %s", rw.Code, tc.want, rw.Body)
			}
		})
	}
}

// A message that fits the NATS server but not once wrapped as an event
// (its envelope adds to it) is settled, not nakked for ever (bind) or
// dropped (core): what is stored instead has the event's id, no body, and
// a reason that stage 1 dead-letters it with, naming the message. The
// messages after it are copied as usual.
func TestMessageTooLargeAsAnEvent(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 8 << 10 })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	events, err := js.CreateOrUpdateStream(ctx, testTopology.Events)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	// big(n) fits the server as it is, not with an envelope.
	big := func(n int) []byte {
		return fmt.Appendf(nil, `{"order":%d,"note":"%s"}`, n, strings.Repeat("b", 8<<10-40))
	}
	for _, body := range [][]byte{big(1), []byte(`{"order":2}`)} {
		if _, err := js.Publish(ctx, "orders.eu.paid", body); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, srv: srv, top: testTopology, opts: testWebhookOptions, sources: testSources(), nc: nc, js: js, events: events}
	sources, err := StartNATSSources(ctx, e.top, e.sources, nc, js, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sources.Stop()
	if err := nc.Publish("telemetry.big", big(3)); err != nil {
		t.Fatal(err)
	}
	poll.For(t, 10*time.Second, "both ORDERS messages settled and three events stored", func() bool {
		info, err := e.bindConsumer().Info(ctx)
		return err == nil && info.AckFloor.Stream == 2 && info.NumAckPending == 0 && natstest.Msgs(t, js, e.top.Events.Name) == 3
	})

	dec := &event.Decoder{Stream: e.top.Events.Name, In: e.top.SourceSubject("")}
	refused := map[string]string{} // reason by Nats-Msg-Id
	var copied []string
	for seq := uint64(1); seq <= 3; seq++ {
		m, err := events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		env, err := dec.Decode(m.Subject, m.Header, m.Data, m.Sequence, m.Time)
		switch {
		case err != nil && len(m.Data) == 0:
			refused[m.Header.Get(nats.MsgIdHdr)] = err.Error()
		case err != nil:
			t.Errorf("event %d: %v, with a body of %d bytes", seq, err, len(m.Data))
		default:
			copied = append(copied, env.ID)
		}
	}
	if !slices.Equal(copied, []string{"ORDERS-2"}) || len(refused) != 2 {
		t.Fatalf("stored: copied %v (want [ORDERS-2]), refused %v (want the first order's and the core message's)", copied, refused)
	}
	reason := refused[event.MsgID("orders", "ORDERS-1")]
	for _, want := range []string{"ORDERS-1", "orders.eu.paid", "max_payload 8192"} {
		if !strings.Contains(reason, want) {
			t.Errorf("bind: reason %q does not name %q", reason, want)
		}
	}
	delete(refused, event.MsgID("orders", "ORDERS-1"))
	for _, reason := range refused { // the core message's
		if !strings.Contains(reason, "telemetry.big") {
			t.Errorf("core: reason %q does not name telemetry.big", reason)
		}
	}
}

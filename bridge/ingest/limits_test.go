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
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/natstest"
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

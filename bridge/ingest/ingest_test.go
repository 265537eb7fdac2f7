package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
)

const (
	whsec    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whsecOld = "whsec_b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZA=="
)

// testSources are one source of each kind and scheme.
func testSources() []Source {
	return []Source{
		{Name: "shop", Kind: KindWebhook, Webhook: WebhookSource{
			Auth:    webhook.AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec, whsecOld}},
			Headers: []string{"x-request-id", "webhook-id", "authorization"}}},
		{Name: "github", Kind: KindWebhook, Webhook: WebhookSource{
			Auth: webhook.AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"gh-secret"}, Header: "X-Hub-Signature-256", Prefix: "sha256="},
			ID:   `headers["x-github-delivery"]`}},
		{Name: "crm", Kind: KindWebhook, Webhook: WebhookSource{
			Auth:    webhook.AuthConfig{Scheme: "bearer", Secrets: []string{"crm-token"}},
			Subject: `"crm." + event.kind`}},
		{Name: "open", Kind: KindWebhook, Webhook: WebhookSource{Auth: webhook.AuthConfig{Scheme: "none"}}},
		{Name: "billing", Kind: KindCapture, NATS: NATSSource{Subjects: []string{"billing.>"}}},
		{Name: "orders", Kind: KindBind, NATS: NATSSource{Stream: "ORDERS", Subjects: []string{"orders.*.paid"}}},
		{Name: "telemetry", Kind: KindCore, NATS: NATSSource{Subjects: []string{"telemetry.>"}, Queue: "bridge"}},
	}
}

// testTopology is the topology of a bridge with prefix "bridge" and the
// capture source of testSources.
var testTopology = broker.NewTopology(broker.TopologyOptions{Prefix: "bridge", Replicas: 1,
	EventsMaxAge: time.Hour, Duplicates: 10 * time.Minute, CaptureSubjects: []string{"billing.>"}})

// testWebhookOptions are the config file's defaults.
var testWebhookOptions = WebhookOptions{MaxBodyBytes: 1 << 20, MaxJSONDepth: 64, MaxInflightBytes: 64 << 20, BodyIdleTimeout: 10 * time.Second}

// env is a real NATS server with the events stream, and the webhook
// handler on top of it.
type env struct {
	t       testing.TB
	srv     *natstest.Server
	top     broker.Topology
	opts    WebhookOptions
	sources []Source
	nc      *nats.Conn
	js      jetstream.JetStream
	hooks   *Webhooks
	events  jetstream.Stream
}

// webhooks is a handler on e's sources and options as they are now.
func (e *env) webhooks(log zerolog.Logger) (*Webhooks, error) {
	return NewWebhooks(e.top, e.opts, e.sources, e.js, log, nil)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	events, err := js.CreateOrUpdateStream(context.Background(), testTopology.Events)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, top: testTopology, opts: testWebhookOptions, sources: testSources(), nc: nc, js: js, events: events}
	if e.hooks, err = e.webhooks(zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	return e
}

// post sends a webhook through the handler and returns the status and the
// decoded JSON answer.
func (e *env) post(source string, body []byte, header http.Header) (int, map[string]any) {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+source, bytes.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	rw := httptest.NewRecorder()
	e.hooks.Handler().ServeHTTP(rw, r)
	var answer map[string]any
	if err := json.Unmarshal(rw.Body.Bytes(), &answer); err != nil {
		e.t.Fatalf("answer is not JSON: %q", rw.Body.String())
	}
	if ct := rw.Header().Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type %q", ct)
	}
	return rw.Code, answer
}

// stored returns every envelope in the events stream.
func (e *env) stored() []*event.Envelope {
	e.t.Helper()
	ctx := context.Background()
	info, err := e.events.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	dec := &event.Decoder{Stream: e.top.Events.Name, Captures: []event.Capture{{Name: "billing", Subjects: []string{"billing.>"}}}}
	var out []*event.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := e.events.GetMsg(ctx, seq)
		if err != nil {
			e.t.Fatal(err)
		}
		env, err := dec.Decode(m.Subject, m.Header, m.Data, m.Sequence, m.Time)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

func standardHeaders(t *testing.T, secret, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := webhook.SignStandard(secret, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {fmt.Sprint(ts.Unix())}, "Webhook-Signature": {sig},
		"Content-Type": {"application/json"}}
}

func TestWebhookAuthSchemes(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"type":"order.paid","amount":150}`)
	now := time.Now()
	ghSig := "sha256=" + webhook.SignHMAC("gh-secret", body, "hex")
	with := func(h http.Header, k, v string) http.Header {
		c := h.Clone()
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	std := standardHeaders(t, whsec, "msg_1", now, body)
	gh := http.Header{"X-Hub-Signature-256": {ghSig}, "X-Github-Delivery": {"d-1"}}
	tests := []struct {
		name   string
		source string
		body   []byte
		header http.Header
		status int
		reason string
	}{
		{"standard: correct", "shop", body, std, 202, ""},
		{"standard: rotated-out secret still listed", "shop", body, standardHeaders(t, whsecOld, "msg_2", now, body), 202, ""},
		{"standard: tampered body", "shop", []byte(`{"type":"order.paid","amount":15000}`), std, 401, "signature does not match"},
		{"standard: wrong secret", "shop", body, standardHeaders(t, "whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldA==", "msg_3", now, body), 401, "signature does not match"},
		{"standard: missing signature", "shop", body, with(std, "Webhook-Signature", ""), 401, "missing webhook-signature header"},
		{"standard: stale timestamp", "shop", body, standardHeaders(t, whsec, "msg_4", now.Add(-6*time.Minute), body), 401, "timestamp too old"},
		{"standard: future timestamp", "shop", body, standardHeaders(t, whsec, "msg_5", now.Add(6*time.Minute), body), 401, "timestamp too new"},
		{"hmac: correct", "github", body, gh, 202, ""},
		{"hmac: tampered body", "github", []byte(`{}`), gh, 401, "signature does not match"},
		{"hmac: wrong secret", "github", body, with(gh, "X-Hub-Signature-256", "sha256="+webhook.SignHMAC("nope", body, "hex")), 401, "signature does not match"},
		{"hmac: missing header", "github", body, with(gh, "X-Hub-Signature-256", ""), 401, "missing X-Hub-Signature-256 header"},
		{"bearer: correct", "crm", []byte(`{"kind":"lead"}`), http.Header{"Authorization": {"Bearer crm-token"}}, 202, ""},
		{"bearer: wrong token", "crm", []byte(`{"kind":"lead"}`), http.Header{"Authorization": {"Bearer crm-tokeN"}}, 401, ""},
		{"bearer: missing", "crm", []byte(`{"kind":"lead"}`), nil, 401, ""},
		{"none", "open", body, nil, 202, ""},
	}
	accepted := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := e.post(tc.source, tc.body, tc.header)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, answer)
			}
			if tc.status == 202 {
				accepted++
			}
			if tc.reason != "" && answer["error"] != tc.reason {
				t.Errorf("error %q, want %q", answer["error"], tc.reason)
			}
		})
	}
	stored := e.stored()
	if len(stored) != accepted {
		t.Fatalf("stored %d events, accepted %d", len(stored), accepted)
	}
	byID := map[string]*event.Envelope{}
	for _, env := range stored {
		byID[env.ID] = env
	}
	if env := byID["msg_1"]; env == nil || env.Source != "shop" || env.Subject != "bridge.in.shop" || string(env.Data) != string(body) {
		t.Errorf("standard-webhooks event: %+v", env)
	} else if _, ok := env.Headers["authorization"]; ok || env.Headers["webhook-id"] != "msg_1" || len(env.Headers) != 1 {
		t.Errorf("kept headers %v: want only the configured, non-secret ones", env.Headers)
	}
	if env := byID["d-1"]; env == nil || env.Source != "github" {
		t.Errorf("id from the source's expression: %+v", byID)
	} else if _, ok := env.Headers["x-hub-signature-256"]; ok {
		t.Errorf("signature header stored: %v", env.Headers)
	}
	for _, env := range stored {
		if env.Source == "crm" && env.Subject != "crm.lead" {
			t.Errorf("subject from the source's expression: %q", env.Subject)
		}
	}
}

func TestBadRequestsStoreNothing(t *testing.T) {
	e := newEnv(t)
	e.opts.MaxBodyBytes = 64
	hooks, _ := e.webhooks(zerolog.Nop())
	e.hooks = hooks
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
		status int
		reason string
	}{
		{"too large", "POST", "/hooks/open", `{"a":"` + strings.Repeat("x", 100) + `"}`, nil, 413, "body larger than 64 bytes"},
		{"not JSON content type", "POST", "/hooks/open", `a=1`, http.Header{"Content-Type": {"text/plain"}}, 415, `content type "text/plain" is not JSON: send application/json or a CloudEvent`},
		{"a form where the source takes none", "POST", "/hooks/open", `payload=%7B%7D`, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 415, `content type "application/x-www-form-urlencoded" is not accepted by this source: choose application/json in the sender's settings (GitHub: Content type), or accept the form with content_types or preset: github`},
		{"invalid JSON", "POST", "/hooks/open", `{"a":`, nil, 400, ""},
		{"trailing data", "POST", "/hooks/open", `{} {}`, nil, 400, ""},
		{"too deep", "POST", "/hooks/open", strings.Repeat("[", 12) + strings.Repeat("]", 12), nil, 400, "JSON nested deeper than 10 levels at offset 11"},
		{"unknown source", "POST", "/hooks/nope", `{}`, nil, 404, `unknown source "nope"`},
		{"no source", "POST", "/hooks/", `{}`, nil, 404, ""},
		{"other path", "POST", "/metrics", `{}`, nil, 404, ""},
		{"GET", "GET", "/hooks/open", ``, nil, 405, "method GET not allowed: send events with POST"},
		{"PUT", "PUT", "/hooks/open", `{}`, nil, 405, ""},
		{"malformed CloudEvent", "POST", "/hooks/open", `{"specversion":"1.0","id":"x"}`, http.Header{"Content-Type": {"application/cloudevents+json"}}, 400, ""},
	}
	e.opts.MaxJSONDepth = 10
	e.hooks, _ = e.webhooks(zerolog.Nop())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				r.Header[k] = v
			}
			rw := httptest.NewRecorder()
			e.hooks.Handler().ServeHTTP(rw, r)
			if rw.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rw.Code, tc.status, rw.Body)
			}
			var answer map[string]string
			if err := json.Unmarshal(rw.Body.Bytes(), &answer); err != nil || answer["error"] == "" {
				t.Fatalf("want a JSON error, got %q", rw.Body)
			}
			if tc.reason != "" && answer["error"] != tc.reason {
				t.Errorf("error %q, want %q", answer["error"], tc.reason)
			}
			if tc.status == 405 && rw.Header().Get("Allow") != "POST" {
				t.Errorf("Allow: %q", rw.Header().Get("Allow"))
			}
		})
	}
	if n := len(e.stored()); n != 0 {
		t.Errorf("%d events stored from bad requests", n)
	}
}

func TestSenderRetriesAreStoredOnce(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"a":1}`)
	h := standardHeaders(t, whsec, "msg_retry", time.Now(), body)
	for i := range 3 {
		status, answer := e.post("shop", body, h)
		if status != 202 || answer["id"] != "msg_retry" || (answer["duplicate"] == true) != (i > 0) {
			t.Errorf("attempt %d: %d %v", i, status, answer)
		}
	}
	// Without any id, the same body from the same source is the same event.
	for range 3 {
		if status, _ := e.post("open", []byte(`{"same":true}`), nil); status != 202 {
			t.Errorf("status %d", status)
		}
	}
	if status, _ := e.post("open", []byte(`{"same":false}`), nil); status != 202 {
		t.Errorf("status %d", status)
	}
	if got := len(e.stored()); got != 3 {
		t.Errorf("stored %d events, want 3", got)
	}
}

func TestCloudEvents(t *testing.T) {
	e := newEnv(t)
	structured := `{"specversion":"1.0","id":"ce-1","source":"/crm","type":"com.example.lead.created","data":{"lead":"L1"}}`
	if status, answer := e.post("open", []byte(structured), http.Header{"Content-Type": {"application/cloudevents+json"}}); status != 202 || answer["id"] != "ce-1" {
		t.Fatalf("structured: %d %v", status, answer)
	}
	binary := http.Header{"Ce-Id": {"ce-2"}, "Ce-Source": {"/crm"}, "Ce-Specversion": {"1.0"}, "Ce-Type": {"com.example.lead.updated"}, "Content-Type": {"application/json"}}
	if status, answer := e.post("open", []byte(`{"lead":"L2"}`), binary); status != 202 || answer["id"] != "ce-2" {
		t.Fatalf("binary: %d %v", status, answer)
	}
	got := e.stored()
	if len(got) != 2 {
		t.Fatalf("stored %d", len(got))
	}
	if got[0].Type != "com.example.lead.created" || string(got[0].Data) != `{"lead":"L1"}` {
		t.Errorf("structured: %+v", got[0])
	}
	if got[1].Type != "com.example.lead.updated" || string(got[1].Data) != `{"lead":"L2"}` || got[1].Headers["ce-type"] != "com.example.lead.updated" {
		t.Errorf("binary: %+v", got[1])
	}
}

func TestUnavailableStorageAnswers503(t *testing.T) {
	e := newEnv(t)
	if err := e.js.DeleteStream(context.Background(), e.top.Events.Name); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/hooks/open", strings.NewReader(`{}`))
	rw := httptest.NewRecorder()
	e.hooks.Handler().ServeHTTP(rw, r)
	if rw.Code != 503 || rw.Header().Get("Retry-After") == "" {
		t.Errorf("status %d, Retry-After %q", rw.Code, rw.Header().Get("Retry-After"))
	}
	e.hooks.Close()
	rw = httptest.NewRecorder()
	e.hooks.Handler().ServeHTTP(rw, httptest.NewRequest("POST", "/hooks/open", strings.NewReader(`{}`)))
	if rw.Code != 503 || !strings.Contains(rw.Body.String(), "shutting down") {
		t.Errorf("after Close: %d %s", rw.Code, rw.Body)
	}
}

func TestNATSSources(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	// Published before the bridge reads the stream: bind starts at the
	// beginning.
	m := nats.NewMsg("orders.eu.paid")
	m.Data = []byte(`{"order":1}`)
	m.Header.Set(nats.MsgIdHdr, "order-1")
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, "orders.eu.refunded", []byte(`{"order":2}`)); err != nil {
		t.Fatal(err)
	}
	sources, err := StartNATSSources(ctx, e.top, e.sources, e.nc, e.js, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sources.Stop()
	if _, err := e.js.Publish(ctx, "orders.us.paid", []byte(`{"order":3}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Publish(ctx, "billing.invoice.paid", []byte(`{"invoice":9}`)); err != nil {
		t.Fatal(err)
	}
	ce := nats.NewMsg("telemetry.usage")
	ce.Data = []byte(`{"used":95}`)
	ce.Header.Set("ce-id", "tel-1")
	ce.Header.Set("ce-source", "/meter")
	ce.Header.Set("ce-specversion", "1.0")
	ce.Header.Set("ce-type", "usage.reported")
	ce.Header.Set("content-type", "application/json")
	if err := e.nc.PublishMsg(ce); err != nil {
		t.Fatal(err)
	}
	e.nc.Flush()

	var got []*event.Envelope
	poll.Until(10*time.Second, func() bool { got = e.stored(); return len(got) >= 4 })
	bySource := map[string][]*event.Envelope{}
	for _, env := range got {
		bySource[env.Source] = append(bySource[env.Source], env)
	}
	if o := bySource["orders"]; len(o) != 2 || o[0].ID != "order-1" || o[0].Subject != "orders.eu.paid" || o[1].ID != "ORDERS-3" {
		t.Errorf("bind: %+v", o)
	}
	if b := bySource["billing"]; len(b) != 1 || !strings.HasPrefix(b[0].ID, "BRIDGE_EVENTS-") || string(b[0].Data) != `{"invoice":9}` {
		t.Errorf("capture: %+v", *b[0])
	}
	if c := bySource["telemetry"]; len(c) != 1 || c[0].ID != "tel-1" || c[0].Type != "usage.reported" {
		t.Errorf("core: %+v", c)
	}

	// A message that is not JSON is not dropped: it is stored as it is, for
	// stage 1 to dead-letter.
	if _, err := e.js.Publish(ctx, "orders.eu.paid", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	var stored *jetstream.RawStreamMsg
	poll.For(t, 10*time.Second, "the invalid message to be stored", func() bool {
		m, err := e.events.GetLastMsgForSubject(ctx, "bridge.in.orders")
		if err != nil || string(m.Data) != "not json" {
			return false
		}
		stored = m
		return true
	})
	if stored.Header.Get(event.EnvelopeHeader) != "" {
		t.Error("stored as an envelope")
	}
}

// TestExternalServerRestart sends webhooks while the NATS server restarts:
// every event answered 202 must be stored afterwards.
func TestExternalServerRestart(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.hooks.Handler())
	defer srv.Close()
	accepted := map[string]bool{}
	send := func(i int) {
		resp, err := http.Post(srv.URL+"/hooks/open", "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		var answer map[string]any
		json.NewDecoder(resp.Body).Decode(&answer)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 202:
			accepted[answer["id"].(string)] = true
		case 503:
		default:
			t.Fatalf("status %d: %v", resp.StatusCode, answer)
		}
	}
	i := 0
	for ; i < 50; i++ {
		send(i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.Restart(500 * time.Millisecond)
	}()
	for ; ; i++ {
		select {
		case <-done:
		default:
			send(i)
			continue
		}
		break
	}
	// The client reconnects; then everything goes through again.
	deadline := time.Now().Add(15 * time.Second)
	for n := 0; n < 50 && time.Now().Before(deadline); i++ {
		before := len(accepted)
		send(i)
		if len(accepted) > before {
			n++
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	stored := map[string]bool{}
	for _, env := range e.stored() {
		stored[env.ID] = true
	}
	lost := 0
	for id := range accepted {
		if !stored[id] {
			lost++
		}
	}
	t.Logf("sent %d, accepted %d, stored %d, lost %d", i, len(accepted), len(stored), lost)
	if lost != 0 || len(accepted) < 100 {
		t.Errorf("lost %d of %d accepted events", lost, len(accepted))
	}
}

func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	var logs syncbuf.Buffer
	hooks, err := e.webhooks(zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		reqID, source string
		want          []string
	}{
		{"req-1", "open", []string{`"request_id":"req-1"`, `"source":"open"`, `"status":202`, `"event_id":"sha256:`}},
		{"", "shop", []string{`"request_id":"`, `"status":401`, `"error":"missing webhook-id (or svix-id) header"`}},
	} {
		r := httptest.NewRequest("POST", "/hooks/"+tc.source, strings.NewReader(`{"a":1}`))
		if tc.reqID != "" {
			r.Header.Set("X-Request-Id", tc.reqID)
		}
		rw := httptest.NewRecorder()
		hooks.Handler().ServeHTTP(rw, r)
		if tc.reqID != "" && rw.Header().Get("X-Request-Id") != tc.reqID {
			t.Errorf("X-Request-Id not echoed: %q", rw.Header().Get("X-Request-Id"))
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		last := lines[len(lines)-1]
		for _, w := range tc.want {
			if !strings.Contains(last, w) {
				t.Errorf("access log %s lacks %s", last, w)
			}
		}
	}
}

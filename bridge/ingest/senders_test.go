package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// The Svix documentation's example, verbatim.
const (
	svixSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	svixID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	svixTimestamp = 1614265330
	svixBody      = `{"test": 2432232314}`
	svixSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// presetSource is a webhook source as the config file makes it from
// "preset: <name>" and a secret or several.
func presetSource(t *testing.T, name, preset string, secrets ...string) Source {
	t.Helper()
	p, err := LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	p.Auth.Secrets = secrets
	return Source{Name: name, Kind: KindWebhook, Webhook: WebhookSource{Auth: p.Auth, Subject: p.Subject, ContentTypes: p.ContentTypes}}
}

// with makes sources e's and rebuilds its handler.
func (e *env) with(sources ...Source) {
	e.t.Helper()
	e.sources = sources
	var err error
	if e.hooks, err = e.webhooks(zerolog.Nop()); err != nil {
		e.t.Fatal(err)
	}
}

// hexHMAC and b64HMAC sign as the senders document it, with crypto/hmac.
func hexHMAC(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func b64HMAC(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// senderCase is one request of a sender and what the bridge must do.
type senderCase struct {
	name    string
	source  string
	body    string
	header  http.Header
	status  int
	id      string // the stored event's id; "" any
	subject string // the stored event's subject; "" any
	dup     bool
	reason  string
}

// run posts each case and checks the answer and, for the accepted, the
// stored event.
func (e *env) run(t *testing.T, cases []senderCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := e.post(tc.source, []byte(tc.body), tc.header)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, answer)
			}
			if tc.reason != "" && answer["error"] != tc.reason {
				t.Errorf("error %q, want %q", answer["error"], tc.reason)
			}
			if status != 202 {
				return
			}
			if (answer["duplicate"] == true) != tc.dup {
				t.Errorf("duplicate %v, want %v", answer["duplicate"], tc.dup)
			}
			id := fmt.Sprint(answer["id"])
			if tc.id != "" && id != tc.id {
				t.Errorf("id %q, want %q", id, tc.id)
			}
			for _, env := range e.stored() {
				if env.ID == id && env.Source == tc.source && tc.subject != "" && env.Subject != tc.subject {
					t.Errorf("subject %q, want %q", env.Subject, tc.subject)
				}
			}
		})
	}
}

func TestSvix(t *testing.T) {
	e := newEnv(t)
	const rotated = "whsec_bmV3LXN2aXgtc2VjcmV0LWFmdGVyLXJvdGF0aW9u"
	e.with(presetSource(t, "svix", "svix", svixSecret), presetSource(t, "clerk", "svix", rotated, svixSecret))
	signedAt := time.Unix(svixTimestamp, 0)
	e.hooks.now = func() time.Time { return signedAt.Add(time.Minute) }
	svix := func(id string, ts int64, sig string) http.Header {
		return http.Header{"Svix-Id": {id}, "Svix-Timestamp": {fmt.Sprint(ts)}, "Svix-Signature": {sig}, "Content-Type": {"application/json"}}
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(rotated, "whsec_"))
	clerkBody := `{"type":"user.created","object":"event","data":{"id":"user_29w83sxmDNGwOuEthce5gg56FcC"}}`
	signClerk := func(k []byte, id string) http.Header {
		return svix(id, svixTimestamp, "v1,"+b64HMAC(k, fmt.Sprintf("%s.%d.%s", id, svixTimestamp, clerkBody)))
	}
	oldKey, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(svixSecret, "whsec_"))
	e.run(t, []senderCase{
		{name: "the published vector", source: "svix", body: svixBody, header: svix(svixID, svixTimestamp, svixSignature), status: 202, id: svixID, subject: "bridge.in.svix"},
		{name: "the vector again: a retry", source: "svix", body: svixBody, header: svix(svixID, svixTimestamp, svixSignature), status: 202, id: svixID, dup: true},
		{name: "tampered body", source: "svix", body: `{"test": 2432232315}`, header: svix(svixID, svixTimestamp, svixSignature), status: 401, reason: "signature does not match"},
		{name: "tampered id", source: "svix", body: svixBody, header: svix("msg_forged", svixTimestamp, svixSignature), status: 401, reason: "signature does not match"},
		{name: "stale", source: "svix", body: svixBody, header: svix(svixID, svixTimestamp-301, svixSignature), status: 401, reason: "timestamp too old"},
		{name: "the type names the subject", source: "clerk", body: clerkBody, header: signClerk(key, "msg_2"), status: 202, id: "msg_2", subject: "clerk.user.created"},
		{name: "rotating: the old key still listed", source: "clerk", body: clerkBody, header: signClerk(oldKey, "msg_3"), status: 202, id: "msg_3"},
	})
	// The rotation ends: the old key is removed (a re-read secret file).
	if err := e.hooks.SetSecrets(map[string][]string{"clerk": {rotated}}); err != nil {
		t.Fatal(err)
	}
	e.run(t, []senderCase{
		{name: "rotated: the old key refused", source: "clerk", body: clerkBody, header: signClerk(oldKey, "msg_4"), status: 401, reason: "signature does not match"},
		{name: "rotated: the new key", source: "clerk", body: clerkBody, header: signClerk(key, "msg_5"), status: 202, id: "msg_5"},
	})
	if err := e.hooks.SetSecrets(map[string][]string{"clerk": {"not base64!"}, "svix": {rotated}}); err == nil {
		t.Error("SetSecrets with a bad secret succeeded")
	}
	e.run(t, []senderCase{{name: "a refused SetSecrets changes nothing", source: "svix", body: svixBody, header: svix(svixID, svixTimestamp, svixSignature), status: 202, dup: true}})
}

func TestStripe(t *testing.T) {
	e := newEnv(t)
	const secret, old = "whsec_3f8b1c9d2e7a4f6b0c5d8e1a9b2c7d4e", "whsec_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"
	e.with(presetSource(t, "stripe", "stripe", secret, old))
	now := time.Now().Unix()
	body := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid","data":{"object":{"customer":"cus_1"}}}`
	// As Stripe's documentation computes a test header: hex HMAC-SHA256 of
	// "<t>.<body>", keyed with the endpoint secret as shown.
	sig := func(key string, t int64, body string) http.Header {
		return http.Header{"Stripe-Signature": {fmt.Sprintf("t=%d,v1=%s", t, hexHMAC(key, fmt.Sprintf("%d.%s", t, body)))},
			"Content-Type": {"application/json; charset=utf-8"}}
	}
	e.run(t, []senderCase{
		{name: "signed", source: "stripe", body: body, header: sig(secret, now, body), status: 202, id: "evt_1NG8Du2eZvKYlo2CUI79vXWy", subject: "stripe.invoice.paid"},
		{name: "Stripe's retry, signed anew", source: "stripe", body: body, header: sig(secret, now+60, body), status: 202, id: "evt_1NG8Du2eZvKYlo2CUI79vXWy", dup: true},
		{name: "tampered body", source: "stripe", body: strings.Replace(body, "cus_1", "cus_2", 1), header: sig(secret, now, body), status: 401, reason: "signature does not match"},
		{name: "stale", source: "stripe", body: body, header: sig(secret, now-400, body), status: 401, reason: "timestamp too old"},
		{name: "rotating: the old secret still listed", source: "stripe", body: strings.Replace(body, "evt_1", "evt_3", 1), header: sig(old, now, strings.Replace(body, "evt_1", "evt_3", 1)), status: 202, id: "evt_3NG8Du2eZvKYlo2CUI79vXWy"},
		{name: "wrong secret", source: "stripe", body: body, header: sig("whsec_wrong", now, body), status: 401, reason: "signature does not match"},
		{name: "no header", source: "stripe", body: body, header: nil, status: 401, reason: "missing Stripe-Signature header"},
	})
	twoV1Body := strings.Replace(body, "evt_1", "evt_2", 1)
	twoV1 := sig(secret, now, twoV1Body)
	twoV1.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s,v1=%s,v0=%s", now, hexHMAC("whsec_other", fmt.Sprintf("%d.%s", now, twoV1Body)),
		hexHMAC(secret, fmt.Sprintf("%d.%s", now, twoV1Body)), strings.Repeat("0", 64)))
	e.run(t, []senderCase{{name: "several v1, one of ours, v0 ignored", source: "stripe", body: twoV1Body, header: twoV1, status: 202, id: "evt_2NG8Du2eZvKYlo2CUI79vXWy"}})
	if err := e.hooks.SetSecrets(map[string][]string{"stripe": {secret}}); err != nil {
		t.Fatal(err)
	}
	e.run(t, []senderCase{{name: "rotated: the old secret refused", source: "stripe", body: body, header: sig(old, now, body), status: 401, reason: "signature does not match"}})
}

func TestGitHub(t *testing.T) {
	e := newEnv(t)
	const secret, rotated = "gh-secret-0123456789", "gh-secret-rotated-9876"
	strict := presetSource(t, "strict", "github", secret)
	strict.Webhook.ContentTypes = nil // JSON only, as a source without the preset
	e.with(presetSource(t, "github", "github", secret, rotated), strict)
	payload := `{"ref":"refs/heads/main","repository":{"full_name":"octo/hello"}}`
	form := "payload=" + url.QueryEscape(payload)
	gh := func(key, body, ct string) http.Header {
		return http.Header{"X-Hub-Signature-256": {"sha256=" + hexHMAC(key, body)}, "X-Github-Event": {"push"},
			"X-Github-Delivery": {fmt.Sprint(time.Now().UnixNano())}, "Content-Type": {ct}}
	}
	const formCT = "application/x-www-form-urlencoded"
	e.run(t, []senderCase{
		{name: "json", source: "github", body: payload, header: gh(secret, payload, "application/json"), status: 202, subject: "github.push"},
		{name: "the same event as a form is the same event", source: "github", body: form, header: gh(secret, form, formCT), status: 202, subject: "github.push", dup: true},
		{name: "form, another event", source: "github", body: "payload=" + url.QueryEscape(`{"zen":"Keep it logically awesome."}`), header: gh(secret, "payload="+url.QueryEscape(`{"zen":"Keep it logically awesome."}`), formCT), status: 202},
		{name: "form, tampered", source: "github", body: form + "x", header: gh(secret, form, formCT), status: 401, reason: "signature does not match"},
		{name: "form, signed but not GitHub's shape", source: "github", body: form + "&b=1", header: gh(secret, form+"&b=1", formCT), status: 400, reason: "form body must hold one field, payload=<JSON>, as GitHub sends it"},
		{name: "form, a payload that is not JSON", source: "github", body: "payload=nope", header: gh(secret, "payload=nope", formCT), status: 400},
		{name: "rotating: the new secret", source: "github", body: `{"n":2}`, header: gh(rotated, `{"n":2}`, "application/json"), status: 202},
		{name: "wrong secret", source: "github", body: payload, header: gh("nope", payload, "application/json"), status: 401, reason: "signature does not match"},
		{name: "a form where the source takes JSON only", source: "strict", body: form, header: gh(secret, form, formCT), status: 415},
		{name: "no event header: the default subject", source: "github", body: `{"n":9}`, header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexHMAC(secret, `{"n":9}`)}}, status: 202, subject: "bridge.in.github"},
	})
	for _, env := range e.stored() {
		if env.Source == "github" && strings.HasPrefix(string(env.Data), "payload=") {
			t.Errorf("the form stored as it came: %s", env.Data)
		}
	}
	if err := e.hooks.SetSecrets(map[string][]string{"github": {rotated}}); err != nil {
		t.Fatal(err)
	}
	e.run(t, []senderCase{{name: "rotated: the old secret refused", source: "github", body: `{"n":3}`, header: gh(secret, `{"n":3}`, "application/json"), status: 401}})
}

func TestShopify(t *testing.T) {
	e := newEnv(t)
	const secret, rotated = "shpss_0123456789abcdef0123", "shpss_rotated_fedcba987654"
	e.with(presetSource(t, "shopify", "shopify", secret, rotated))
	body := `{"id":820982911946154508,"email":"jon@example.com","total_price":"149.50"}`
	shop := func(key, body string) http.Header {
		return http.Header{"X-Shopify-Hmac-Sha256": {b64HMAC([]byte(key), body)}, "X-Shopify-Topic": {"orders/create"},
			"X-Shopify-Webhook-Id": {"b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"}, "Content-Type": {"application/json"}}
	}
	e.run(t, []senderCase{
		{name: "signed", source: "shopify", body: body, header: shop(secret, body), status: 202, subject: "shopify.orders.create"},
		{name: "Shopify's retry", source: "shopify", body: body, header: shop(secret, body), status: 202, dup: true},
		{name: "tampered", source: "shopify", body: strings.Replace(body, "149", "1", 1), header: shop(secret, body), status: 401, reason: "signature does not match"},
		{name: "hex instead of base64", source: "shopify", body: body, header: http.Header{"X-Shopify-Hmac-Sha256": {hexHMAC(secret, body)}}, status: 401},
		{name: "rotating: the new secret", source: "shopify", body: `{"id":2}`, header: shop(rotated, `{"id":2}`), status: 202},
	})
	if err := e.hooks.SetSecrets(map[string][]string{"shopify": {rotated}}); err != nil {
		t.Fatal(err)
	}
	e.run(t, []senderCase{{name: "rotated: the old secret refused", source: "shopify", body: `{"id":3}`, header: shop(secret, `{"id":3}`), status: 401}})
}

// failingPublisher fails the publish numbered failAt (from 1), once: its
// acknowledgement is an error.
type failingPublisher struct {
	jetstream.JetStream
	n, failAt int
	atOnce    bool // the publish itself fails, not its acknowledgement
}

func (p *failingPublisher) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if p.n++; p.n == p.failAt && p.atOnce {
		return nil, nats.ErrConnectionClosed
	}
	if p.n == p.failAt {
		errs := make(chan error, 1)
		errs <- errors.New("nats: timeout")
		return failedFuture{m: m, errs: errs}, nil
	}
	return p.JetStream.PublishMsgAsync(m, opts...)
}

// failedFuture is a publish whose acknowledgement is an error.
type failedFuture struct {
	m    *nats.Msg
	errs chan error
}

func (f failedFuture) Ok() <-chan *jetstream.PubAck { return nil }
func (f failedFuture) Err() <-chan error            { return f.errs }
func (f failedFuture) Msg() *nats.Msg               { return f.m }

func TestCloudEventsBatch(t *testing.T) {
	e := newEnv(t)
	member := func(id, typ, data string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/crm","type":"` + typ + `","data":` + data + `}`
	}
	batch := func(members ...string) []byte { return []byte("[" + strings.Join(members, ",") + "]") }
	ct := http.Header{"Content-Type": {"application/cloudevents-batch+json"}}
	post := func(t *testing.T, source string, body []byte, h http.Header) (int, map[string]any) {
		t.Helper()
		return e.post(source, body, h)
	}
	ids := func(answer map[string]any) string {
		var out []string
		for _, ev := range answer["events"].([]any) {
			m := ev.(map[string]any)
			out = append(out, fmt.Sprintf("%v %v", m["id"], m["duplicate"] == true))
		}
		return strings.Join(out, " ")
	}
	three := batch(member("b1", "lead.created", `{"n":1}`), member("b2", "lead.updated", `{"n":2}`), member("b3", "lead.deleted", `null`))

	t.Run("stored, each with its own id", func(t *testing.T) {
		status, answer := post(t, "open", three, ct)
		if status != 202 || ids(answer) != "b1 false b2 false b3 false" {
			t.Fatalf("%d %v", status, answer)
		}
		got := e.stored()
		if len(got) != 3 || got[1].ID != "b2" || got[1].Type != "lead.updated" || string(got[1].Data) != `{"n":2}` {
			t.Errorf("stored %+v", got)
		}
	})
	t.Run("the batch again: stored once", func(t *testing.T) {
		if status, answer := post(t, "open", three, ct); status != 202 || ids(answer) != "b1 true b2 true b3 true" {
			t.Fatalf("%d %v", status, answer)
		}
	})
	bad := []struct {
		name, body, reason string
	}{
		{"a malformed member", string(batch(member("c1", "t", `{}`), `{"specversion":"1.0","id":"c2"}`)), "event [1]: cloudevents: missing required attributes: source, type"},
		{"a member whose data is not an object", string(batch(member("c1", "t", `{}`), member("c2", "t", `{}`), member("c3", "t", `[1]`))), "event [2]: the CloudEvent's data must be a JSON object"},
		{"not an array", member("c1", "t", `{}`), "cloudevents: a batch must be a JSON array of events"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if status, answer := post(t, "open", []byte(tc.body), ct); status != 400 || answer["error"] != tc.reason {
				t.Errorf("%d %v, want 400 %q", status, answer, tc.reason)
			}
		})
	}
	if n := len(e.stored()); n != 3 {
		t.Fatalf("%d stored after the bad batches, want the first 3 only", n)
	}

	// postVia posts body to the open source of a handler that publishes
	// with p.
	postVia := func(t *testing.T, p Publisher, body []byte) (int, map[string]any) {
		t.Helper()
		hooks, err := NewWebhooks(e.top, e.opts, e.sources, p, zerolog.Nop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		real := e.hooks
		e.hooks = hooks
		defer func() { e.hooks = real }()
		return post(t, "open", body, ct)
	}
	// The second of three events fails: its acknowledgement is an error
	// (the third is stored all the same), or it cannot be sent (the
	// third is not sent).
	for _, tc := range []struct {
		name, p       string
		atOnce        bool
		stored, retry string
	}{
		{"a publish fails: 503, and the retry stores the rest once", "d", false, "2 of the batch's 3", "d1 true d2 false d3 true"},
		{"a publish cannot be sent: 503 once those before it are stored, and the retry stores the rest once", "f", true, "1 of the batch's 3", "f1 true f2 false f3 false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			three := batch(member(tc.p+"1", "t", `{}`), member(tc.p+"2", "t", `{}`), member(tc.p+"3", "t", `{}`))
			before := len(e.stored())
			status, answer := postVia(t, &failingPublisher{JetStream: e.js, failAt: 2, atOnce: tc.atOnce}, three)
			if status != 503 || !strings.Contains(fmt.Sprint(answer["error"]), tc.stored+" events were stored") {
				t.Fatalf("%d %v", status, answer)
			}
			if status, answer := post(t, "open", three, ct); status != 202 || ids(answer) != tc.retry {
				t.Fatalf("retry: %d %v", status, answer)
			}
			if n := len(e.stored()) - before; n != 3 {
				t.Errorf("%d stored, want 3", n)
			}
		})
	}

	t.Run("signed: each event's id is its own, not the request's webhook-id", func(t *testing.T) {
		body := batch(member("s1", "t", `{}`), member("s2", "t", `{}`))
		h := standardHeaders(t, whsec, "msg_batch", time.Now(), body)
		h.Set("Content-Type", "application/cloudevents-batch+json")
		if status, answer := post(t, "shop", body, h); status != 202 || ids(answer) != "s1 false s2 false" {
			t.Fatalf("%d %v", status, answer)
		}
	})
	t.Run("a batch larger than a request's window: stored in order, and a failure counted right", func(t *testing.T) {
		members := make([]string, 5*requestWindow)
		for i := range members {
			members[i] = member(fmt.Sprint("w", i), "t", `{}`)
		}
		status, answer := postVia(t, &failingPublisher{JetStream: e.js, failAt: 3*requestWindow + 2, atOnce: true}, batch(members...))
		if want := fmt.Sprintf("%d of the batch's %d events were stored", 3*requestWindow+1, len(members)); status != 503 || !strings.Contains(fmt.Sprint(answer["error"]), want) {
			t.Fatalf("%d %v, want 503 %q", status, answer, want)
		}
		before := len(e.stored())
		status, answer = post(t, "open", batch(members...), ct)
		events, _ := answer["events"].([]any)
		if status != 202 || len(events) != len(members) {
			t.Fatalf("retry: %d, %d answers", status, len(events))
		}
		for i, a := range events {
			a := a.(map[string]any)
			if a["id"] != fmt.Sprint("w", i) || (a["duplicate"] == true) != (i <= 3*requestWindow) {
				t.Fatalf("answer %d: %v", i, a)
			}
		}
		if n := len(e.stored()) - before; n != len(members)-3*requestWindow-1 {
			t.Errorf("the retry stored %d, want %d", n, len(members)-3*requestWindow-1)
		}
	})
	t.Run("too many events", func(t *testing.T) {
		members := make([]string, maxBatchEvents+1)
		for i := range members {
			members[i] = member(fmt.Sprint("x", i), "t", "null")
		}
		if status, answer := post(t, "open", batch(members...), ct); status != 413 {
			t.Errorf("%d %v", status, answer)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if status, answer := post(t, "open", []byte(`[]`), ct); status != 202 || len(answer["events"].([]any)) != 0 {
			t.Errorf("%d %v", status, answer)
		}
	})
}

// silentPublisher sends every message on its way and never hears back.
type silentPublisher struct{}

func (silentPublisher) PublishMsgAsync(m *nats.Msg, _ ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	return failedFuture{m: m}, nil // both channels nil: nothing ever arrives
}

// TestWebhookUnansweredPublish: a publish JetStream never answers is a 503
// with Retry-After once the wait for it is over, not a request held for
// ever; and a sender that goes away frees the handler at once.
func TestWebhookUnansweredPublish(t *testing.T) {
	e := newEnv(t)
	hooks, err := NewWebhooks(e.top, e.opts, e.sources, silentPublisher{}, zerolog.Nop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hooks.ackWithin = 50 * time.Millisecond
	e.hooks = hooks
	status, answer := e.post("open", []byte(`{"a":1}`), nil)
	if status != http.StatusServiceUnavailable || answer["error"] != "the event could not be stored; retry later" {
		t.Errorf("%d %v, want 503", status, answer)
	}

	hooks.ackWithin = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequest(http.MethodPost, "/hooks/open", strings.NewReader(`{"a":2}`)).WithContext(ctx)
	done := make(chan int)
	go func() {
		rw := httptest.NewRecorder()
		hooks.Handler().ServeHTTP(rw, r)
		done <- rw.Code
	}()
	cancel()
	select {
	case code := <-done:
		if code != http.StatusServiceUnavailable {
			t.Errorf("a sender gone: %d, want 503", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler still waits for a sender that is gone")
	}
}

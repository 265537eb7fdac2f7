package event

import (
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestFromNATSIDOrder(t *testing.T) {
	idExpr, err := CompileExpr(`headers["x-id"] ?? event.id`)
	if err != nil {
		t.Fatal(err)
	}
	ce := nats.Header{"ce-id": {"ce-1"}, "ce-source": {"/s"}, "ce-specversion": {"1.0"}, "ce-type": {"t.x"}, "content-type": {"application/json"}}
	tests := []struct {
		name   string
		id     *Expr
		header nats.Header
		data   string
		want   string
	}{
		{"expression from a header", idExpr, nats.Header{"X-Id": {"h-1"}, nats.MsgIdHdr: {"m-1"}}, `{"id":"p-1"}`, "h-1"},
		{"expression from the payload", idExpr, nil, `{"id":"p-1"}`, "p-1"},
		{"expression gives nothing: Nats-Msg-Id", idExpr, nats.Header{nats.MsgIdHdr: {"m-1"}}, `{}`, "m-1"},
		{"no expression: Nats-Msg-Id", nil, nats.Header{nats.MsgIdHdr: {"m-1"}}, `{}`, "m-1"},
		{"CloudEvents id", nil, ce, `{}`, "ce-1"},
		{"fallback", nil, nil, `{}`, "S-7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env, err := FromNATS("src", tc.id, NATSMsg{Subject: "a.b", Header: tc.header, Data: []byte(tc.data), Time: time.Unix(1, 0), Fallback: "S-7"})
			if err != nil {
				t.Fatal(err)
			}
			if env.ID != tc.want || env.Source != "src" || env.Subject != "a.b" {
				t.Errorf("got %+v", env)
			}
		})
	}
}

func TestFromNATSRefusesNonJSON(t *testing.T) {
	if _, err := FromNATS("src", nil, NATSMsg{Subject: "a", Data: []byte("hello")}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("got %v", err)
	}
}

func TestHeadersDropCredentials(t *testing.T) {
	got := Headers(nats.Header{"Authorization": {"Bearer x"}, "X-Api-Token": {"t"}, "Webhook-Signature": {"v1,x"},
		"Nats-Msg-Id": {"1"}, "X-Request-Id": {"r"}, "Ce-Type": {"t"}}, nil)
	if len(got) != 2 || got["x-request-id"] != "r" || got["ce-type"] != "t" {
		t.Errorf("got %v", got)
	}
}

func TestDecoder(t *testing.T) {
	d := &Decoder{Stream: "EV", Captures: []Capture{{Name: "billing", Subjects: []string{"billing.>"}}}}
	env := &Envelope{ID: "e1", Source: "shop", Subject: "bridge.in.shop", Time: time.Unix(5, 0).UTC(), Data: []byte(`{"a":1}`)}
	m, err := env.Msg("bridge.in.shop")
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(nats.MsgIdHdr) != "shop:e1" || m.Header.Get(EnvelopeHeader) != "1" || len(m.Header) != 2 {
		t.Errorf("headers %v", m.Header)
	}
	for k := range m.Header {
		if c := textproto.CanonicalMIMEHeaderKey(k); c != k {
			t.Errorf("header %q is written as it is, not as %q: Header.Get would not find it", k, c)
		}
	}
	got, err := d.Decode(m.Subject, m.Header, m.Data, 1, time.Now())
	if err != nil || got.ID != "e1" || got.Source != "shop" || string(got.Data) != `{"a":1}` {
		t.Errorf("envelope: %+v %v", got, err)
	}
	got, err = d.Decode("billing.paid", nil, []byte(`{"b":2}`), 9, time.Unix(7, 0))
	if err != nil || got.ID != "EV-9" || got.Source != "billing" || !got.Time.Equal(time.Unix(7, 0)) {
		t.Errorf("captured: %+v %v", got, err)
	}
	if _, err := d.Decode("other", nil, []byte(`{}`), 3, time.Now()); err == nil || !strings.Contains(err.Error(), "belongs to no source") {
		t.Errorf("unknown subject: %v", err)
	}
	ev, err := got.Rules()
	if err != nil || ev.Data.(map[string]any)["b"] != int64(2) {
		t.Errorf("rules event: %+v %v", ev, err)
	}
}

func TestExprResults(t *testing.T) {
	for src, want := range map[string]string{`"x-" + source`: "x-s", `event.n`: "42", `headers["missing"]`: "", `event.ok`: "true"} {
		x, err := CompileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Eval(nil, map[string]any{"n": int64(42), "ok": true}, "s", "subj")
		if err != nil || got != want {
			t.Errorf("%s: %q %v", src, got, err)
		}
	}
	if x, _ := CompileExpr(" "); x != nil {
		t.Error("an empty expression compiled")
	}
	if _, err := CompileExpr("headers["); err == nil {
		t.Error("a broken expression compiled")
	}
}

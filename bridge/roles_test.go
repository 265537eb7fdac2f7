package bridge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/internal/natstest"
)

// TestRolesSplitIntakeFromDelivery: an intake replica stores webhooks and
// captured NATS messages with no rules, no token and no stage running; a
// delivery replica started later, with no webhook listener, sends each
// event's message once.
func TestRolesSplitIntakeFromDelivery(t *testing.T) {
	var full config.Config
	h := newHarness(t, func(c *config.Config) {
		full = *c
		c.Role = config.RoleIntake
		c.Intercom.Token = ""
		c.Rules.Paths = []string{"no-such-rules"} // an intake replica reads none
	})
	ctx := context.Background()
	js := h.svc.Broker().JS
	top := h.cfg.Topology()

	code, rd := h.readyz()
	if code != http.StatusOK || rd.Role != config.RoleIntake || rd.Rules != 0 {
		t.Fatalf("intake /readyz: %d %+v", code, rd)
	}
	if code, body := getURL(t, "http://"+h.svc.AdminAddr()+"/rules"); code != http.StatusOK || !strings.Contains(body, `"rules": []`) {
		t.Errorf("intake /rules: %d %s", code, body)
	}
	if err := h.svc.ReloadRules(); err == nil {
		t.Error("an intake replica reloaded rules")
	}

	if code := h.webhook("msg_1", map[string]any{"type": "order.paid", "order": "A-1", "user": "u1", "name": "Ann", "amount": 20}); code != http.StatusAccepted {
		t.Fatalf("webhook: %d", code)
	}
	h.publish("crm.lead.created", map[string]any{"contact": "c-1", "name": "Bo"})
	h.waitFor("both events stored", func() bool { return natstest.Msgs(t, js, top.Events.Name) == 2 })
	for _, c := range [][2]string{{top.Events.Name, top.MatchConsumer}, {top.Outbox.Name, top.SendConsumer}} {
		if _, err := js.Consumer(ctx, c[0], c[1]); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Errorf("consumer %s on an intake replica: %v", c[1], err)
		}
	}
	if n := len(h.ic.Messages()); n != 0 {
		t.Fatalf("an intake replica sent %d messages", n)
	}

	full.Role = config.RoleDelivery
	delivery, err := Start(ctx, &full, zerolog.New(h.logs), Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { delivery.Stop(context.Background()) })
	if addr := delivery.WebhookAddr(); addr != "" {
		t.Errorf("a delivery replica listens for webhooks on %s", addr)
	}
	if rd := delivery.readiness(); !rd.Ready || rd.Role != config.RoleDelivery || rd.Rules != 4 {
		t.Errorf("delivery readiness: %+v", rd)
	}
	if err := delivery.ReloadRules(); err != nil {
		t.Errorf("a delivery replica's rule reload: %v", err)
	}
	h.waitFor("both messages", func() bool { return len(h.ic.Messages()) >= 2 })
	h.settle()
	got := map[string]int{}
	for _, m := range h.ic.Messages() {
		got[m.MessageType+" "+firstRecipient(m).ID]++
	}
	email, inapp := "email "+h.user("u1").ID, "inapp c-1"
	if len(h.ic.Messages()) != 2 || got[email] != 1 || got[inapp] != 1 {
		t.Errorf("sent %v, want one %q and one %q", got, email, inapp)
	}
}

package bridge

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

// A shadow rule beside the harness's rules: one that renders, and one
// that fails for every order.
const shadowRules = `rules:
  - name: order-shadow
    mode: shadow
    on: {sources: [shop]}
    when: event.type == "order.paid"
    message: {type: inapp, from: "394051", to: {type: user, user_id: '{{ .event.user }}'}, body: 'Shadow {{ .event.order }}'}
    dedupe: 'order-{{ .event.order }}'
  - name: shadow-broken
    mode: shadow
    on: {sources: [shop]}
    message: {type: inapp, from: "394051", to: {type: user, user_id: '{{ .event.nobody }}'}, body: x}
`

// A shadow rule is evaluated and rendered on live traffic, counted and
// logged, and never sent, queued, dead-lettered nor put in the ledger.
func TestShadowRuleIsCountedNeverSent(t *testing.T) {
	h := newHarness(t, func(cfg *config.Config) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "shadow.yaml"), []byte(shadowRules), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Rules.Paths = append(cfg.Rules.Paths, dir)
	})
	before := time.Now()
	h.webhook("msg_1", map[string]any{"type": "order.paid", "order": 1, "user": "u-1", "name": "Ada", "amount": 10})
	h.waitFor("the live rule's email", func() bool { return h.delivered("order-thanks", pipeline.OutcomeSent) == 1 })
	h.settle()

	if msgs := h.ic.Messages(); len(msgs) != 1 || msgs[0].MessageType != "email" {
		t.Errorf("Intercom got %d messages, want the live rule's email only: %+v", len(msgs), msgs)
	}
	_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
	for series, want := range map[string]float64{
		`bridge_rule_matches_total{mode="shadow",rule="order-shadow"}`: 1,
		`bridge_rule_matches_total{mode="live",rule="order-thanks"}`:   1,
		`bridge_rule_errors_total{rule="shadow-broken"}`:               1,
		`bridge_dead_letters_total{reason="render"}`:                   0,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(body, `bridge_rule_matches_total{mode="live",rule="order-shadow"}`) {
		t.Error("the shadow rule has a live series")
	}
	for _, o := range pipeline.Outcomes {
		if n := h.delivered("order-shadow", o); n != 0 {
			t.Errorf("deliveries of the shadow rule, %s: %d", o, n)
		}
	}
	if entries := h.dlq(); len(entries) != 0 {
		t.Errorf("dead letters: %+v", entries)
	}
	// The sent ledger holds the live rule's key only.
	kv, err := h.svc.Broker().JS.KeyValue(context.Background(), h.cfg.Topology().Sent.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(context.Background())
	// Delivery keys have no dot; the ledger's own records (the key format
	// marker, cancel marks) do.
	keys = slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, ".") })
	if err != nil || len(keys) != 1 {
		t.Errorf("ledger keys %v (%v), want the live rule's one", keys, err)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"message":"shadow rule matched; not sent"`) ||
		!strings.Contains(logs, `"delivery_key":"order-shadow/order-1"`) || !strings.Contains(logs, `"message":"shadow rule failed for event"`) {
		t.Errorf("no debug lines of the shadow rules:\n%s", tail(logs, 20))
	}

	// /rules lists every rule with its mode and what it matched.
	_, status := getURL(t, "http://"+h.svc.AdminAddr()+"/rules")
	var st RulesStatus
	if err := json.Unmarshal([]byte(status), &st); err != nil {
		t.Fatalf("%v\n%s", err, status)
	}
	byName := map[string]RuleStatus{}
	for _, r := range st.Rules {
		byName[r.Name] = r
	}
	for _, tc := range []struct {
		rule, mode string
		matches    uint64
	}{{"order-thanks", "live", 1}, {"order-shadow", "shadow", 1}, {"shadow-broken", "shadow", 0}, {"lead-welcome", "live", 0}} {
		r := byName[tc.rule]
		matched := r.LastMatch != nil && !r.LastMatch.Before(before.Add(-time.Second))
		if r.Mode != tc.mode || r.Matches != tc.matches || matched != (tc.matches > 0) || !strings.Contains(r.Pos, ".yaml:") {
			t.Errorf("/rules: %s: %+v, want mode %s, %d matches", tc.rule, r, tc.mode, tc.matches)
		}
	}
}

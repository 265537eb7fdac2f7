package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (h *harness) readyz() (int, readiness) {
	h.t.Helper()
	code, body := getURL(h.t, "http://"+h.svc.AdminAddr()+"/readyz")
	var rd readiness
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		h.t.Fatalf("readyz body %q: %v", body, err)
	}
	return code, rd
}

func TestReadyzFollowsNATS(t *testing.T) {
	h := newHarness(t, nil)
	if code, _ := getURL(t, "http://"+h.svc.AdminAddr()+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, rd := h.readyz(); code != 200 || !rd.Ready || rd.Rules != 4 {
		t.Fatalf("readyz %d %+v", code, rd)
	}
	h.nats.Server.Shutdown()
	h.nats.Server.WaitForShutdown()
	h.waitFor("/readyz to fail", func() bool {
		code, rd := h.readyz()
		return code == 503 && !rd.Ready && strings.Contains(strings.Join(rd.NotReady, ","), "nats: not connected")
	})
	h.nats.Restart(0)
	h.waitFor("/readyz to pass again", func() bool { code, _ := h.readyz(); return code == 200 })
}

func TestReadyzAfterRejectedToken(t *testing.T) {
	h := newHarness(t, nil)
	h.ic.FailNext(1, 401)
	h.webhook("msg_401", map[string]any{"type": "order.paid", "order": 1, "user": "u", "name": "n", "amount": 1})
	h.waitFor("/readyz to fail", func() bool {
		code, rd := h.readyz()
		return code == 503 && strings.Contains(strings.Join(rd.NotReady, ","), "token was rejected")
	})
	// The next accepted message shows the token works again.
	h.webhook("msg_ok", map[string]any{"type": "order.paid", "order": 2, "user": "u", "name": "n", "amount": 1})
	h.waitFor("/readyz to pass again", func() bool { code, _ := h.readyz(); return code == 200 })
}

// metricValue reads one sample from /metrics.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMetricsMoveAsEventsFlow(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 3 {
		h.webhook(fmt.Sprintf("m-%d", i), map[string]any{"type": "order.paid", "order": i, "user": "u", "name": "n", "amount": 10})
	}
	h.webhook("m-bad", map[string]any{"type": "order.paid", "order": 99, "user": "u", "amount": 10}) // render error
	h.publish("crm.lead.created", map[string]any{"contact": "c", "name": "x"})
	h.waitFor("the deliveries", func() bool {
		return h.delivered("order-thanks", pipeline.OutcomeSent) == 3 && h.delivered("lead-welcome", pipeline.OutcomeSent) == 1
	})
	h.settle()
	// The state kept in NATS, read every 2 s: 4 delivery keys, 5 events.
	h.waitFor("the state gauges", func() bool {
		_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
		return metricValue(t, body, `bridge_ledger_keys`) == 4 && metricValue(t, body, `bridge_stream_messages{stream="BRIDGE_EVENTS"}`) == 5 &&
			metricValue(t, body, `bridge_ledger_bytes`) > 0
	})
	_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
	for series, want := range map[string]float64{
		`bridge_events_received_total{source="shop"}`: 4,
		`bridge_events_received_total{source="crm"}`:  1, // captured: counted by stage 1
		`bridge_ready`: 1,
		`bridge_webhook_requests_total{code="202",source="shop"}`:     4,
		`bridge_rule_matches_total{mode="live",rule="order-thanks"}`:  3,
		`bridge_rule_errors_total{rule="order-thanks"}`:               1,
		`bridge_deliveries_total{outcome="sent",rule="order-thanks"}`: 3,
		`bridge_deliveries_total{outcome="sent",rule="lead-welcome"}`: 1,
		`bridge_dead_letters_total{reason="render"}`:                  1,
		`bridge_rules_loaded`: 4,
		`bridge_intercom_request_duration_seconds_count{code="200"}`: 6, // 4 messages, 2 look-ups
		`bridge_contact_lookups_total{outcome="miss"}`:               2, // user u, contact c
		`bridge_contact_lookups_total{outcome="hit"}`:                2, // u again, twice
		`bridge_delivery_latency_seconds_count`:                      4,
		`bridge_intercom_token_ok`:                                   1,
		`bridge_rules_last_reload_successful`:                        1,
		`bridge_outbox_pending`:                                      0,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metricValue(t, body, "bridge_intercom_ratelimit_remaining") <= 0 {
		t.Error("bridge_intercom_ratelimit_remaining is not Intercom's X-RateLimit-Remaining")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "bridge_rules_hash{hash="} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if strings.Contains(body, h.ic.Token()) || strings.Contains(body, secret) {
		t.Error("/metrics shows a secret")
	}
}

// Before the first event every series whose labels are known exists at
// 0, so that increase() alerts fire on the first dead letter; what only
// Intercom can say is absent until it has said it.
func TestMetricsBeforeTheFirstEvent(t *testing.T) {
	h := newHarness(t, nil)
	_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
	for _, series := range []string{
		`bridge_dead_letters_total{reason="permanent"} 0`,
		`bridge_dead_letters_total{reason="contact_not_found"} 0`,
		`bridge_deliveries_total{outcome="dead_letter",rule="order-thanks"} 0`,
		`bridge_deliveries_total{outcome="sent",rule="lead-welcome"} 0`,
		`bridge_rule_errors_total{rule="order-thanks"} 0`,
		`bridge_rule_matches_total{mode="live",rule="order-thanks"} 0`,
		`bridge_events_received_total{source="crm"} 0`,
		`bridge_events_received_total{source="shop"} 0`,
		`bridge_events_invalid_total{source="shop"} 0`,
		`bridge_contact_lookups_total{outcome="error"} 0`,
		`bridge_ready 1`,
		`bridge_build_info{goversion="` + runtime.Version() + `",intercom_version="` + h.cfg.Intercom.Version + `",version="test"} 1`,
	} {
		if !strings.Contains(body, "\n"+series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if strings.Contains(body, "bridge_intercom_ratelimit_remaining ") {
		t.Error("bridge_intercom_ratelimit_remaining is shown before Intercom sent a header")
	}

	// Events that cannot be read are counted under their source, whether
	// the bridge stored them (a webhook, bind or core source) or the
	// stream captured them.
	nc, err := nats.Connect(h.nats.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, subject := range []string{"crm.broken", h.cfg.Topology().SourceSubject("shop")} {
		if _, err := js.Publish(context.Background(), subject, []byte("not json")); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("the invalid events counted by source", func() bool {
		_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
		return metricValue(t, body, `bridge_events_invalid_total{source="crm"}`) == 1 &&
			metricValue(t, body, `bridge_events_invalid_total{source="shop"}`) == 1
	})
}

func TestReloadKeepsRulesOnErrorAndDropsNothing(t *testing.T) {
	h := newHarness(t, nil)
	rulesFile := h.cfg.Rules.Paths[0]
	write := func(content string) {
		t.Helper()
		tmp := filepath.Join(filepath.Dir(rulesFile), ".rules.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rulesFile); err != nil { // as editors save
			t.Fatal(err)
		}
	}
	// A broken save: the running rules stay, /readyz shows the error.
	write(strings.Replace(testRules, "when: event.type ==", "when: event.type ===", 1))
	h.waitFor("the reload error in /readyz", func() bool {
		code, rd := h.readyz()
		return code == 200 && len(rd.RulesErrors) == 1 && strings.Contains(rd.RulesErrors[0], "rules.yaml:4:")
	})
	_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
	if metricValue(t, body, "bridge_rules_reload_errors_total") < 1 || metricValue(t, body, "bridge_rules_last_reload_successful") != 0 {
		t.Errorf("reload error metrics:\n%s", body)
	}

	// Events keep flowing through reloads: each is sent exactly once.
	const n = 200
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			h.publish("crm.lead.created", map[string]any{"contact": fmt.Sprintf("c-%d", i), "name": "x"})
			if i%20 == 0 {
				write(strings.Replace(testRules, "Welcome, ", fmt.Sprintf("Welcome (%d), ", i), 1))
				if err := h.svc.ReloadRules(); err != nil { // as SIGHUP does; the watcher may reload too
					t.Error(err)
				}
			}
		}
	}()
	<-done
	h.waitFor("all messages", func() bool { return len(h.ic.Messages()) >= n })
	h.settle()
	seen := map[string]int{}
	for _, m := range h.ic.Messages() {
		seen[firstRecipient(m).ID]++
	}
	if len(seen) != n || len(h.ic.Messages()) != n {
		t.Errorf("%d messages to %d contacts, want %d and %d", len(h.ic.Messages()), len(seen), n, n)
	}
	h.waitFor("a good reload to clear the error", func() bool { _, rd := h.readyz(); return len(rd.RulesErrors) == 0 })
	reloaded := 0
	for _, m := range h.ic.Messages() {
		if strings.HasPrefix(m.Body, "Welcome (") {
			reloaded++
		}
	}
	if reloaded == 0 {
		t.Error("no message used a reloaded rule")
	}
}

func TestBacklogShowsInMetrics(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Delivery.MaxAttempts = 1000 })
	h.ic.FailNext(100000, 503) // Intercom is down
	for i := range 3 {
		h.publish("crm.lead.created", map[string]any{"contact": fmt.Sprintf("c-%d", i), "name": "x"})
	}
	h.waitFor("the backlog gauges", func() bool {
		_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
		return metricValue(t, body, "bridge_outbox_pending") == 3 && metricValue(t, body, "bridge_outbox_oldest_age_seconds") > 0
	})
}

func TestInjectionThroughEventValuesIsNeutralised(t *testing.T) {
	h := newHarness(t, nil)
	h.webhook("msg_inj", map[string]any{"type": "order.paid", "order": "7\r\nBcc: evil@example.com", "user": "u-1",
		"name": `<script>alert("x")</script><img src=x onerror=alert(1)>`, "amount": 1})
	h.waitFor("the message", func() bool { return len(h.ic.Messages()) == 1 })
	m := h.ic.Messages()[0]
	if strings.ContainsAny(m.Subject, "\r\n") || m.Subject != "Thanks for order 7Bcc: evil@example.com" {
		t.Errorf("subject %q", m.Subject)
	}
	if strings.Contains(m.Body, "<script") || strings.Contains(m.Body, "<img") ||
		!strings.Contains(m.Body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("body %q", m.Body)
	}
}

// TestSIGHUPRereadsWebhookSecretFiles: a rotated secret file takes effect
// on SIGHUP; a file that cannot be read leaves the running secrets. So in
// role all and in role intake, which runs no rules.
func TestSIGHUPRereadsWebhookSecretFiles(t *testing.T) {
	for _, role := range []string{config.RoleAll, config.RoleIntake} {
		t.Run(role, func(t *testing.T) {
			testSIGHUPRereadsWebhookSecretFiles(t, role)
		})
	}
}

func testSIGHUPRereadsWebhookSecretFiles(t *testing.T, role string) {
	const rotated = "whsec_cm90YXRlZC1zZWNyZXQtZm9yLXRoZS1zaG9wLXNvdXJjZQ=="
	file := filepath.Join(t.TempDir(), "shop-secret")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(secret + "\n")
	h := newHarness(t, func(c *config.Config) { c.Sources[0].Webhook.Auth.SecretFile = file; c.Role = role })
	status := func(key, id string) int {
		resp := h.webhookSignedBy(key, id, map[string]any{"type": "noop"})
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(rotated, "r-0"); got != 401 {
		t.Fatalf("the rotated secret before SIGHUP: %d", got)
	}
	write(secret + "\n" + rotated + "\n") // the rotation begins: both
	h.reload <- struct{}{}
	h.waitFor("the rotated secret accepted", func() bool { return status(rotated, fmt.Sprint("r-", time.Now().UnixNano())) == 202 })
	if got := status(secret, "o-1"); got != 202 {
		t.Errorf("the old secret while both are listed: %d", got)
	}
	write(rotated + "\n") // the rotation ends
	h.reload <- struct{}{}
	h.waitFor("the old secret refused", func() bool { return status(secret, fmt.Sprint("o-", time.Now().UnixNano())) == 401 })

	write("\n")
	h.reload <- struct{}{}
	h.waitFor("the error logged", func() bool { return strings.Contains(h.logs.String(), "webhook secret files not reloaded") })
	if got := status(rotated, "r-2"); got != 202 {
		t.Errorf("after an empty file the running secret must stay: %d", got)
	}
	if strings.Contains(h.logs.String(), strings.TrimPrefix(rotated, "whsec_")) {
		t.Error("a secret in the logs")
	}
}

// TestPProfOnlyWhenAsked: /debug/pprof/ answers on the admin listener with
// admin.pprof, and is not found without it, nor ever beside the webhooks.
func TestPProfOnlyWhenAsked(t *testing.T) {
	off := newHarness(t, nil)
	if code, _ := getURL(t, "http://"+off.svc.AdminAddr()+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("admin.pprof off: /debug/pprof/ answered %d, want 404", code)
	}

	on := newHarness(t, func(c *config.Config) { c.Admin.PProf = true })
	code, body := getURL(t, "http://"+on.svc.AdminAddr()+"/debug/pprof/")
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("admin.pprof on: /debug/pprof/ answered %d:\n%.300s", code, body)
	}
	if code, body := getURL(t, "http://"+on.svc.AdminAddr()+"/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("admin.pprof on: /debug/pprof/heap answered %d:\n%.300s", code, body)
	}
	if code, _ := getURL(t, "http://"+on.svc.WebhookAddr()+"/debug/pprof/"); code == http.StatusOK {
		t.Errorf("the webhook listener serves /debug/pprof/")
	}
}

package bridge

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

// consoleClient talks to the admin listener as a browser would: it does
// not follow redirects, so that a test sees them.
type consoleClient struct {
	t          *testing.T
	base       string
	user, pass string
	bearer     string
}

func (h *harness) console() *consoleClient {
	return &consoleClient{t: h.t, base: "http://" + h.svc.AdminAddr()}
}

func (c *consoleClient) do(method, path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *consoleClient) get(path string) (int, string) {
	c.t.Helper()
	code, body, _ := c.do("GET", path, nil)
	return code, body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the token a page of the console carries.
func (c *consoleClient) csrf() string {
	c.t.Helper()
	_, body := c.get("/console/playground")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		c.t.Fatalf("no CSRF token in the playground:\n%s", body)
	}
	return m[1]
}

func TestConsolePagesLoad(t *testing.T) {
	h := newHarness(t, nil)
	h.webhook("msg_c1", map[string]any{"type": "order.paid", "order": 1, "user": "u-1", "name": "Ada", "amount": 10})
	h.waitFor("the message", func() bool { return h.delivered("order-thanks", pipeline.OutcomeSent) == 1 })
	c := h.console()
	if code, _, hdr := c.do("GET", "/", nil); code != http.StatusFound || hdr.Get("Location") != "/console/" {
		t.Errorf("/: %d to %q", code, hdr.Get("Location"))
	}
	for path, want := range map[string][]string{
		"/console/":                        {`id="ready"`, "Ready", "connected", "1: events to match", "<svg", "4 rules loaded", "sent: 1 in the hour"},
		"/console/rules":                   {"order-thanks", "rules.yaml:2:", "live", "usage-warning", `<td class="n">1</td>`},
		"/console/playground":              {"msg_c1", `name="payload"`, "<option selected>2.14</option>"},
		"/console/dead-letters":            {"No dead letters"},
		"/console/scheduled":               {"No messages wait"},
		"/console/static/console.css":      {"body"},
		"/console/playground?event=1":      {"order.paid", "Ada"},
		"/console/dead-letters?age=banana": {"not a duration"},
	} {
		code, body := c.get(path)
		if code != http.StatusOK && !strings.Contains(path, "banana") {
			t.Errorf("%s: %d\n%s", path, code, body)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q:\n%s", path, w, body)
			}
		}
		if strings.Contains(body, h.ic.Token()) || strings.Contains(body, secret) {
			t.Errorf("%s shows a secret", path)
		}
	}
}

// deadLetter has Intercom refuse an order's message and returns its dead
// letter's id.
func (h *harness) deadLetter(id string, order int) uint64 {
	h.t.Helper()
	h.ic.FailNext(1, 400)
	h.webhook(id, map[string]any{"type": "order.paid", "order": order, "user": fmt.Sprintf("u-%d", order), "name": "Bo", "amount": 10})
	h.waitFor("the dead letter", func() bool { return len(h.dlq()) == 1 })
	return h.dlq()[0].Seq
}

func TestConsoleReplaysADeadLetter(t *testing.T) {
	h := newHarness(t, nil)
	seq := h.deadLetter("msg_c2", 2)
	c := h.console()
	_, list := c.get("/console/dead-letters?rule=order-thanks&reason=permanent&age=1h")
	if !strings.Contains(list, `value="`+itoa(seq)+`"`) {
		t.Fatalf("the list lacks dead letter %d:\n%s", seq, list)
	}
	if code, one := c.get("/console/dead-letters/" + itoa(seq)); code != 200 || !strings.Contains(one, "Thanks for order 2") || !strings.Contains(one, "400") {
		t.Fatalf("dead letter %d: %d\n%s", seq, code, one)
	}
	form := url.Values{"csrf": {c.csrf()}, "id": {itoa(seq)}}
	code, confirm, _ := c.do("POST", "/console/dead-letters/replay", form)
	if code != 200 || !strings.Contains(confirm, "Replay 1 dead letter?") || len(h.dlq()) != 1 {
		t.Fatalf("the first POST does not ask: %d\n%s", code, confirm)
	}
	form.Set("confirm", "yes")
	code, _, hdr := c.do("POST", "/console/dead-letters/replay", form)
	if code != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "replayed+1+dead+letter") {
		t.Fatalf("replay: %d to %s", code, hdr.Get("Location"))
	}
	h.waitFor("the replayed message", func() bool { return h.delivered("order-thanks", pipeline.OutcomeSent) == 1 })
	if n := len(h.dlq()); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
}

func TestConsolePurgesADeadLetter(t *testing.T) {
	h := newHarness(t, nil)
	seq := h.deadLetter("msg_c3", 3)
	c := h.console()
	form := url.Values{"csrf": {c.csrf()}, "id": {itoa(seq)}, "confirm": {"yes"}}
	if code, body, _ := c.do("POST", "/console/dead-letters/purge", form); code != http.StatusSeeOther {
		t.Fatalf("purge: %d\n%s", code, body)
	}
	if n := len(h.dlq()); n != 0 {
		t.Errorf("%d dead letters left", n)
	}
}

// TestConsoleCSRF: a POST without the page's token changes nothing.
func TestConsoleCSRF(t *testing.T) {
	h := newHarness(t, nil)
	seq := h.deadLetter("msg_c4", 4)
	c := h.console()
	for _, token := range []string{"", "forged", c.csrf() + "x"} {
		form := url.Values{"id": {itoa(seq)}, "confirm": {"yes"}}
		if token != "" {
			form.Set("csrf", token)
		}
		if code, _, _ := c.do("POST", "/console/dead-letters/purge", form); code != http.StatusForbidden {
			t.Errorf("token %q: %d", token, code)
		}
	}
	if n := len(h.dlq()); n != 1 {
		t.Errorf("%d dead letters left, want 1", n)
	}
	if code, _, _ := c.do("GET", "/console/dead-letters/purge", nil); code == http.StatusSeeOther {
		t.Error("a GET purges")
	}
}

func TestConsoleAuth(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Admin.Auth = config.AdminAuth{Bearer: "b3arer-token-for-scripts-0123456789",
			Basic: config.BasicAuth{User: "ops", Password: "correct horse battery staple"}}
	})
	c := h.console()
	for _, p := range []string{"/console/", "/console/rules", "/metrics", "/rules", "/"} {
		if code, _ := c.get(p); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d", p, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := c.get(p); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}
	c.user, c.pass = "ops", "wrong"
	if code, _ := c.get("/console/"); code != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d", code)
	}
	c.pass = "correct horse battery staple"
	if code, body := c.get("/console/"); code != 200 || strings.Contains(body, c.pass) {
		t.Errorf("basic auth: %d", code)
	}
	token := c.csrf()
	c.user, c.pass, c.bearer = "", "", "b3arer-token-for-scripts-0123456789"
	if code, _ := c.get("/metrics"); code != 200 {
		t.Errorf("bearer: %d", code)
	}
	// A token is bound to who got it.
	form := url.Values{"csrf": {token}, "payload": {"{}"}, "version": {"2.14"}}
	if code, _, _ := c.do("POST", "/console/playground", form); code != http.StatusForbidden {
		t.Errorf("another identity's CSRF token: %d", code)
	}
	form.Set("csrf", c.csrf())
	if code, _, _ := c.do("POST", "/console/playground", form); code != 200 {
		t.Errorf("the bearer's own token: %d", code)
	}
}

func TestConsoleOffLoopbackNeedsAuth(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Admin.Listen = "0.0.0.0:0" })
	c := h.console()
	c.base = "http://127.0.0.1:" + h.svc.AdminAddr()[strings.LastIndex(h.svc.AdminAddr(), ":")+1:]
	if code, _ := c.get("/console/"); code != http.StatusNotFound {
		t.Errorf("/console/ off loopback without auth: %d", code)
	}
	if code, _ := c.get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics: %d", code)
	}
	if !strings.Contains(h.logs.String(), "console off") {
		t.Error("no warning")
	}
}

func TestConsolePlayground(t *testing.T) {
	h := newHarness(t, nil)
	c := h.console()
	form := url.Values{"csrf": {c.csrf()}, "source": {"shop"}, "version": {"2.11"}, "id": {"p-1"},
		"payload": {`{"type":"order.paid","order":9,"user":"u-9","name":"<b>Ed</b>","amount":2000}`}}
	code, body, _ := c.do("POST", "/console/playground", form)
	for _, w := range []string{"order-thanks (", "order-audit (", "lead-welcome (", ": matched", `&#34;request&#34;`, "&lt;b&gt;Ed"} {
		if code != 200 || !strings.Contains(body, w) {
			t.Errorf("the playground lacks %q: %d\n%s", w, code, body)
		}
	}
	if n := len(h.ic.Messages()); n != 0 {
		t.Errorf("the playground sent %d messages", n)
	}
	form.Set("payload", "{")
	if _, body, _ := c.do("POST", "/console/playground", form); !strings.Contains(body, "invalid JSON") {
		t.Errorf("bad JSON:\n%s", body)
	}
}

const waitingRule = `rules:
  - name: nudge
    on: {sources: [crm]}
    when: event.kind == "signup"
    message: {type: inapp, from: "394051", to: {type: user, id: '{{ .event.user }}'}, body: 'Hello'}
    schedule: {delay: 24h, key: '{{ .event.user }}'}
`

func TestConsoleCancelsAWaitingMessage(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		p := filepath.Join(filepath.Dir(c.Rules.Paths[0]), "waiting.yaml")
		if err := os.WriteFile(p, []byte(waitingRule), 0o644); err != nil {
			t.Fatal(err)
		}
		c.Rules.Paths = append(c.Rules.Paths, p)
	})
	h.publish("crm.signup", map[string]any{"kind": "signup", "user": "u-w"})
	c := h.console()
	h.waitFor("the waiting message", func() bool {
		_, body := c.get("/console/scheduled")
		return strings.Contains(body, "u-w")
	})
	form := url.Values{"csrf": {c.csrf()}, "rule": {"nudge"}, "key": {"u-w"}}
	if _, body, _ := c.do("POST", "/console/scheduled/cancel", form); !strings.Contains(body, "Cancel 1 waiting message?") {
		t.Fatalf("no confirmation:\n%s", body)
	}
	form.Set("confirm", "yes")
	if code, _, hdr := c.do("POST", "/console/scheduled/cancel", form); code != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "cancelled") {
		t.Fatalf("cancel: %d %s", code, hdr.Get("Location"))
	}
	if _, body := c.get("/console/scheduled"); !strings.Contains(body, "No messages wait") {
		t.Errorf("still waiting:\n%s", body)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

const consoleRuleTests = `tests:
  - name: a paid order is thanked
    source: shop
    event: {type: order.paid, order: 5, user: u-5, name: Eve, amount: 10}
    expect:
      - {rule: order-thanks, subject: Thanks for order 5}
  - name: a wrong subject fails
    source: shop
    event: {type: order.paid, order: 6, user: u-6, name: Fay, amount: 10}
    expect:
      - {rule: order-thanks, subject: Thanks for order 7}
  - name: crm noise sends nothing
    source: crm
    event: {kind: noise, contact: c-1, name: Gil}
    expect:
      - {rule: lead-welcome}
`

// TestConsoleRuleTests: the rules page runs the tests beside the rules
// and files each case under the rule it names.
func TestConsoleRuleTests(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		if err := os.WriteFile(filepath.Join(filepath.Dir(c.Rules.Paths[0]), "rules.test.yaml"), []byte(consoleRuleTests), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	_, body := h.console().get("/console/rules")
	for _, w := range []string{"Tests: 2 passed, 1 failed", "✓ a paid order is thanked", "✗ a wrong subject fails", "Thanks for order 7", "✓ crm noise sends nothing"} {
		if !strings.Contains(body, w) {
			t.Errorf("the rules page lacks %q:\n%s", w, body)
		}
	}
}

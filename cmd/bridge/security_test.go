//go:build security

package main

// The security suite: each attack of the hostile-client review, against
// the real binary, and the fixed behaviour asserted. Run it with
//
//	go test -tags=security -count=1 -run Security ./...

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/readme"
)

// exampleSecret is the fallback secret of config.example.yaml, printed in
// the README.
const exampleSecret = "whsec_ZGV2LW9ubHktc2VjcmV0LWNoYW5nZS1tZQ=="

// secConfig replaces the config of b with src, formatted with the
// bridge's addresses and the environment's: %[1]s data dir, %[2]s
// http.listen, %[3]s admin.listen, %[4]s NATS URL, %[5]s Intercom URL,
// %[6]s its token, %[7]s the e2e secret.
func secConfig(b *e2eBridge, src string) {
	e := b.env
	e.t.Helper()
	text := fmt.Sprintf(src, filepath.Join(e.dir, "data-"+b.name), b.httpAddr, b.adminAddr, e.natsURL, e.ic.URL(), e.ic.Token(), e2eSecret)
	if err := os.WriteFile(b.config, []byte(text), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// vmRSS reads the resident set size of a process, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// rawRequest is the head of a signed-looking webhook request announcing
// length bytes: its headers pass every check that can be made before the
// body, so the bridge has to read the body to decide.
func rawRequest(t *testing.T, length int) string {
	t.Helper()
	now := time.Now()
	sig, err := webhook.SignStandard(e2eSecret, "attack", now, []byte("another body"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("POST /hooks/shop HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"+
		"Webhook-Id: attack\r\nWebhook-Timestamp: %d\r\nWebhook-Signature: %s\r\n\r\n", length, now.Unix(), sig)
}

// TestSecurityContentLengthAttack (high 1): waves of 1,000 connections
// announce a 1 MiB body and send one byte. Before the fix each got a
// buffer of the announced size: the first wave's are fresh pages, the
// next waves' reused memory the allocator zeroes, and RSS went past a GB.
// Now the bridge stays under 100 MB, keeps serving, and drops the stalled
// bodies after http.body_idle_timeout.
func TestSecurityContentLengthAttack(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("cl", "error", false)
	b.start()
	pid := b.cmd.Process.Pid
	before := vmRSS(t, pid)

	const conns, waves = 1000, 3
	head := rawRequest(t, 1<<20) + "{"
	var open []net.Conn
	closeAll := func() {
		for _, c := range open {
			c.Close()
		}
		open = nil
	}
	defer func() { closeAll() }()
	peak := before
	for wave := range waves {
		closeAll()
		for i := range conns {
			c, err := net.Dial("tcp", b.httpAddr)
			if err != nil {
				t.Fatalf("wave %d, connection %d: %v", wave, i, err)
			}
			open = append(open, c)
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatalf("wave %d, connection %d: %v", wave, i, err)
			}
		}
		time.Sleep(1500 * time.Millisecond) // let the bridge take every connection and its byte
		rss := vmRSS(t, pid)
		peak = max(peak, rss)
		t.Logf("wave %d: RSS %.1f MB with %d connections each announcing 1 MiB and sending 1 byte", wave+1, mb(rss), conns)
	}
	t.Logf("RSS %.1f MB before the attack, at most %.1f MB during it", mb(before), mb(peak))
	if peak > 100<<20 {
		t.Errorf("RSS reached %.1f MB under the attack, want under 100 MB", mb(peak))
	}

	// The bridge still takes a genuine webhook meanwhile.
	if status, body := b.webhook("genuine-1", e2eSecret, time.Now(), eventBody(1)); status != http.StatusAccepted {
		t.Errorf("a genuine webhook during the attack: %d %s", status, body)
	}

	// A stalled body is answered 408 once it has sent nothing for
	// body_idle_timeout (10 s), and its connection closed.
	open[0].SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(open[0]), nil)
	if err != nil {
		t.Fatalf("a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled body: status %d, want 408", resp.StatusCode)
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// TestSecuritySignatureBeforeTheBody (high 1): a request whose headers
// already fail authentication (stale, or no signature) is refused at once,
// without waiting for the 1 MiB it announces, and its connection closed.
func TestSecuritySignatureBeforeTheBody(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("early", "error", false)
	b.start()
	stale := strings.Replace(rawRequest(t, 1<<20), fmt.Sprint("Webhook-Timestamp: ", time.Now().Unix()),
		fmt.Sprint("Webhook-Timestamp: ", time.Now().Add(-time.Hour).Unix()), 1)
	unsigned := "POST /hooks/shop HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
	for name, head := range map[string]string{"stale": stale, "unsigned": unsigned} {
		c, err := net.Dial("tcp", b.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, head)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%s: no answer before the body: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
			t.Errorf("%s: status %d, close %v; want 401 and the connection closed", name, resp.StatusCode, resp.Close)
		}
	}
}

// TestSecurityInflightBudget (high 1): bodies that do arrive, slowly, are
// held within http.max_inflight_bytes; a request past it is answered 503
// with Retry-After and a JSON error instead of growing memory.
func TestSecurityInflightBudget(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("budget", "error", false)
	secConfig(b, `data_dir: %[1]q
nats: {url: %[4]q}
http: {listen: %[2]q, max_body_bytes: 65536, max_inflight_bytes: 262144}
admin: {listen: %[3]q}
sources: [{name: shop, webhook: {auth: {scheme: standard-webhooks, secret: %[7]q}}}]
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051"}
rules: {paths: [rules.yaml], watch: false}
`)
	b.start()
	head := rawRequest(t, 65536) + strings.Repeat(" ", 60000)
	type answer struct {
		status            int
		retryAfter, ctype string
		body              string
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
		conns   []net.Conn
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 8 {
		c, err := net.Dial("tcp", b.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, head)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // still being read: it holds its share of the budget
			}
			body, _ := io.ReadAll(resp.Body)
			mu.Lock()
			answers = append(answers, answer{resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), string(body)})
			mu.Unlock()
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	if len(answers) == 0 || len(answers) == 8 {
		t.Fatalf("%d of 8 requests answered, want those past the budget only: %+v", len(answers), answers)
	}
	for _, a := range answers {
		if a.status != http.StatusServiceUnavailable || a.retryAfter == "" || a.ctype != "application/json" || !strings.Contains(a.body, `"error"`) {
			t.Errorf("past the budget: %+v, want 503 with Retry-After and a JSON error", a)
		}
	}
	t.Logf("%d of 8 bodies of 60 KB held within a 256 KiB budget; %d answered 503", 8-len(answers), len(answers))
}

// exampleBridge runs config.example.yaml as the README and the Docker
// image do, with env added to the test's environment (without
// SHOP_WEBHOOK_SECRET unless env sets it). It returns the command, its
// combined output, and the channel closed when it exits.
func exampleBridge(t *testing.T, env ...string) (*exec.Cmd, *syncWriter, chan struct{}) {
	t.Helper()
	cfgPath, err := filepath.Abs("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e2eBinary(t), "run", "-config", cfgPath)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOP_WEBHOOK_SECRET=") && !strings.HasPrefix(kv, "INTERCOM_") && !strings.HasPrefix(kv, "BRIDGE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "BRIDGE_DATA_DIR="+t.TempDir(), "BRIDGE_ADMIN_LISTEN="+freeAddr(t))
	cmd.Env = append(cmd.Env, env...)
	out := &syncWriter{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("bridge output:\n%s", out)
		}
	})
	return cmd, out, done
}

type syncWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitPort waits for addr to accept connections, or the process to exit.
func waitPort(t *testing.T, addr string, done chan struct{}) {
	t.Helper()
	poll.For(t, 30*time.Second, addr+" to open", func() bool {
		select {
		case <-done:
			t.Fatal("the bridge exited while starting")
		default:
		}
		return dialable(addr)
	})
}

// TestSecurityExampleConfigRefusesPublishedSecret (high 2): the example
// config listens on loopback by default, where the README's secret works
// (its curl recipe is run here); told to listen on all interfaces, as the
// Docker image does, it refuses to start until SHOP_WEBHOOK_SECRET is set.
func TestSecurityExampleConfigRefusesPublishedSecret(t *testing.T) {
	t.Run("off loopback without the secret", func(t *testing.T) {
		_, out, done := exampleBridge(t, "BRIDGE_HTTP_LISTEN=0.0.0.0:"+port(freeAddr(t)))
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the bridge started with the published secret on all interfaces")
		}
		if !strings.Contains(out.String(), "SHOP_WEBHOOK_SECRET") || !strings.Contains(out.String(), "sources[0].webhook.auth.secret") {
			t.Errorf("the refusal does not name the variable to set:\n%s", out)
		}
	})
	t.Run("off loopback with a secret of its own", func(t *testing.T) {
		addr := "0.0.0.0:" + port(freeAddr(t))
		_, _, done := exampleBridge(t, "BRIDGE_HTTP_LISTEN="+addr, "SHOP_WEBHOOK_SECRET="+e2eSecret)
		waitPort(t, "127.0.0.1:"+port(addr), done)
		b := &e2eBridge{env: &e2eEnv{t: t}, httpAddr: "127.0.0.1:" + port(addr)}
		if status, body := b.webhook("own-1", exampleSecret, time.Now(), []byte(`{"type":"x"}`)); status != http.StatusUnauthorized {
			t.Errorf("the published secret: %d %s, want 401", status, body)
		}
		if status, body := b.webhook("own-2", e2eSecret, time.Now(), []byte(`{"type":"x"}`)); status != http.StatusAccepted {
			t.Errorf("its own secret: %d %s, want 202", status, body)
		}
	})
	t.Run("loopback: the README's curl recipe", func(t *testing.T) {
		addr := freeAddr(t)
		_, logs, done := exampleBridge(t, "BRIDGE_HTTP_LISTEN="+addr)
		waitPort(t, addr, done)
		script := readmeBlock(t, "The same with curl, signing by hand,")
		script = strings.ReplaceAll(script, "http://127.0.0.1:8080", "http://"+addr)
		dir := t.TempDir()
		order := `{"type":"order.paid","order_id":1001,"amount":149.5,"currency":"EUR","customer":{"id":"u-42","first_name":"Ada"}}`
		if err := os.WriteFile(filepath.Join(dir, "order.json"), []byte(order), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "HTTP/1.1 202") {
			t.Fatalf("the curl recipe: %v\n%s", err, out)
		}
		// Not only stored: the rule's message goes out (logged, in the
		// example's dry run), for the recipe's own order.
		poll.For(t, 30*time.Second, "the message of order 1002", func() bool {
			for line := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(line, "dry run: would send") && strings.Contains(line, `"delivery_key":"order-paid-thanks/1002"`) {
					return true
				}
			}
			return false
		})
	})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// readmeBlock returns the first fenced code block after the line that
// contains marker in README.md.
func readmeBlock(t *testing.T, marker string) string {
	return readme.Block(t, "../../README.md", marker, "sh")
}

// TestSecurityReplayWithFreshRequestID (medium 3): one signed request sent
// three times with new X-Request-Id values is one event: the example no
// longer takes its id from that header.
func TestSecurityReplayWithFreshRequestID(t *testing.T) {
	addr := freeAddr(t)
	_, _, done := exampleBridge(t, "BRIDGE_HTTP_LISTEN="+addr)
	waitPort(t, addr, done)
	body := []byte(`{"type":"order.paid","order_id":7,"amount":150,"currency":"EUR","customer":{"id":"u-1"}}`)
	now := time.Now()
	sig, err := webhook.SignStandard(exampleSecret, "msg-replayed", now, body)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		req, _ := http.NewRequest("POST", "http://"+addr+"/hooks/shop", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Webhook-Id", "msg-replayed")
		req.Header.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("Webhook-Signature", sig)
		req.Header.Set("X-Request-Id", fmt.Sprintf("fresh-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ans struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || ans.Duplicate != (i > 0) {
			t.Errorf("send %d: %d %+v, want 202 and duplicate %v", i, resp.StatusCode, ans, i > 0)
		}
		ids = append(ids, ans.ID)
	}
	if ids[0] != "msg-replayed" || ids[1] != ids[0] || ids[2] != ids[0] {
		t.Errorf("ids %v, want msg-replayed three times", ids)
	}
}

// TestSecurityDeliveryKeyScopedToSource (medium 4): an unauthenticated
// post to a none source with event id X no longer suppresses a signed
// event with id X from another source.
func TestSecurityDeliveryKeyScopedToSource(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("scoped", "info", false)
	rules := `rules:
  - name: notify
    message: {type: inapp, from: "394051", to: {type: user, user_id: '{{ .event.user }}'}, body: '<p>{{ .event.n }}</p>'}
`
	if err := os.WriteFile(filepath.Join(e.dir, "scoped-rules.yaml"), []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	secConfig(b, `data_dir: %[1]q
nats: {url: %[4]q}
http: {listen: %[2]q}
admin: {listen: %[3]q}
sources:
  - {name: shop, webhook: {auth: {scheme: standard-webhooks, secret: %[7]q}}}
  - {name: open, webhook: {auth: {scheme: none}}}
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051", rate_limit_per_minute: 60000}
rules: {paths: [scoped-rules.yaml], watch: false}
`)
	b.start()
	req, _ := http.NewRequest("POST", "http://"+b.httpAddr+"/hooks/open", strings.NewReader(`{"n":1,"user":"u-forged"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Webhook-Id", "evt-X")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("open source: %d", resp.StatusCode)
	}
	e.waitFor(20*time.Second, func() string { return "the open source's message" }, func() bool { return len(e.ic.Messages()) >= 1 })
	if status, body := b.webhook("evt-X", e2eSecret, time.Now(), []byte(`{"n":2,"user":"u-signed"}`)); status != http.StatusAccepted {
		t.Fatalf("signed source: %d %s", status, body)
	}
	e.waitFor(20*time.Second, func() string { return fmt.Sprintf("the signed message (%d so far)", len(e.ic.Messages())) },
		func() bool { return len(e.ic.Messages()) >= 2 })
	if b.logCount("duplicate dropped") != 0 {
		t.Errorf("a duplicate was dropped:\n%s", b.tail(20))
	}
}

// TestSecurityEmbeddedNATSListener (medium 5): the embedded server's
// listener takes no client without the configured token, so a forged
// publish is refused; off loopback without credentials the bridge does not
// start; the Docker image does not publish 4222.
func TestSecurityEmbeddedNATSListener(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("natsauth", "info", false)
	natsAddr := freeAddr(t)
	const token = "t0ken-of-the-tools-0123456789"
	secConfig(b, `data_dir: %[1]q
nats: {listen: `+strconv.Quote(natsAddr)+`, token: `+token+`}
http: {listen: %[2]q}
admin: {listen: %[3]q}
sources: [{name: billing, nats: {subjects: ["billing.>"]}}]
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051"}
rules: {paths: [rules.yaml], watch: false}
`)
	b.start()
	url := "nats://" + natsAddr
	for name, opts := range map[string][]nats.Option{"no credentials": nil, "a wrong token": {nats.Token("guess")}} {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			js, _ := jetstream.New(nc)
			_, perr := js.Publish(context.Background(), "billing.forged", []byte(`{"forged":true}`))
			nc.Close()
			t.Errorf("%s: connected (forged publish: %v)", name, perr)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("%s: refused, but not for authorization: %v", name, err)
		}
	}
	// Forged clients cannot flood the log either: one line per interval.
	for range 20 {
		if nc, err := nats.Connect(url, nats.Token("guess"), nats.NoReconnect()); err == nil {
			nc.Close()
		}
	}
	// Both lines are written at once; a flood would be more.
	poll.Until(time.Second, func() bool { return b.logCount("authentication error") >= 2 })
	if n := b.logCount("authentication error"); n < 1 || n > 2 { // two messages: without a token, with a wrong one
		t.Errorf("%d log lines about 22 forged connections, want one per message per 10 s:\n%s", n, b.tail(30))
	}
	nc, err := nats.Connect(url, nats.Token(token))
	if err != nil {
		t.Fatalf("with the token: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(context.Background(), "billing.real", []byte(`{"n":1}`)); err != nil {
		t.Errorf("a publish with the token: %v", err)
	}

	// Off loopback without credentials: refused at start.
	open := e.newBridge("natsopen", "info", false)
	secConfig(open, `data_dir: %[1]q
nats: {listen: "0.0.0.0:`+port(freeAddr(t))+`"}
http: {listen: %[2]q}
admin: {listen: %[3]q}
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051"}
rules: {paths: [rules.yaml], watch: false}
`)
	out, err := exec.Command(e.bin, "run", "-config", open.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nats.listen") || !strings.Contains(string(out), "not a loopback address") {
		t.Errorf("a non-loopback listener without credentials: %v\n%s", err, out)
	}

	// A busy port is named as such.
	busy := e.newBridge("natsbusy", "info", false)
	secConfig(busy, `data_dir: %[1]q
nats: {listen: `+strconv.Quote(natsAddr)+`, token: `+token+`}
http: {listen: %[2]q}
admin: {listen: %[3]q}
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051"}
rules: {paths: [rules.yaml], watch: false}
`)
	out, _ = exec.Command(e.bin, "run", "-config", busy.config).CombinedOutput()
	if !strings.Contains(string(out), "address already in use") {
		t.Errorf("a busy NATS port:\n%s", out)
	}

	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if strings.HasPrefix(line, "EXPOSE") && strings.Contains(line, "4222") {
			t.Errorf("the Dockerfile exposes the NATS port: %s", line)
		}
	}
	for _, want := range []string{"BRIDGE_HTTP_LISTEN=0.0.0.0:8080", "SHOP_WEBHOOK_SECRET"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("the Dockerfile does not document %s", want)
		}
	}
}

// TestSecurityStoreFull (medium 6): when the embedded store reaches
// nats.max_store, webhooks get 503, /readyz says why, the warning is
// logged once per interval with a count, and once space returns the next
// webhook is stored and the bridge is ready again, without a restart.
func TestSecurityStoreFull(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("full", "info", true)
	natsAddr := freeAddr(t)
	const token = "t0ken-of-the-tools-0123456789"
	os.WriteFile(filepath.Join(e.dir, "none.yaml"), []byte(`rules:
  - name: never
    on: {subjects: [nothing.here]}
    message: {type: inapp, from: "394051", to: {type: user, id: x}, body: hi}
`), 0o644)
	secConfig(b, `data_dir: %[1]q
nats: {listen: `+strconv.Quote(natsAddr)+`, token: `+token+`, max_store: 2097152}
http: {listen: %[2]q}
admin: {listen: %[3]q}
sources: [{name: shop, webhook: {auth: {scheme: standard-webhooks, secret: %[7]q}}}]
intercom: {base_url: %[5]q, token: %[6]q, default_admin_id: "394051"}
rules: {paths: [none.yaml], watch: false}
`)
	b.start()
	ready := func() (bool, string) {
		code, body := b.readyz()
		return code == http.StatusOK, body
	}
	if ok, body := ready(); !ok {
		t.Fatalf("not ready at start: %s", body)
	}
	payload := []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 16<<10)))
	refused, stored := 0, 0
	for i := 0; refused < 50 && i < 2000; i++ {
		status, body := b.webhook(fmt.Sprintf("fill-%d", i), e2eSecret, time.Now(), payload)
		switch status {
		case http.StatusAccepted:
			stored++
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("webhook %d: %d %s", i, status, body)
		}
	}
	if refused == 0 {
		t.Fatalf("%d webhooks stored and none refused within max_store", stored)
	}
	ok, body := ready()
	t.Logf("%d stored, then %d refused; /readyz: %s", stored, refused, body)
	if ok || !strings.Contains(body, "refuses writes") {
		t.Errorf("/readyz while the store refuses writes: %s", body)
	}
	if os.Getenv("SEC_PEEK") != "" {
		t.Logf("log:\n%s", b.tail(60))
	}
	if n := b.logCount("cannot store webhook event"); n < 1 || n > 2 {
		t.Errorf("%d log lines for %d refused webhooks, want one per 10 s", n, refused)
	}

	// Space returns: purge the events stream, as max_age would.
	nc, err := nats.Connect("nats://"+natsAddr, nats.Token(token))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), "BRIDGE_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if status, body := b.webhook("after-purge", e2eSecret, time.Now(), eventBody(1)); status != http.StatusAccepted {
		t.Fatalf("after space returned: %d %s", status, body)
	}
	if ok, body := ready(); !ok {
		t.Errorf("not ready after a webhook was stored again: %s", body)
	}
}

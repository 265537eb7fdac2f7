package main

// End-to-end fault tests: they build the bridge binary, run it against a
// real NATS server (started by the test, so that it outlives the bridge)
// and the fake Intercom, and count what arrived, what was lost and what was
// sent twice while the bridge is killed, stopped, or loses NATS.
//
// The only duplicates the bridge may produce are the messages Intercom
// accepted while their delivery key was "pending" when the process died
// (DESIGN.md §4); the kill tests (fault_test.go, behind the fault tag, as
// they take tens of seconds) bound duplicates by the keys they find pending
// in the sent ledger right after each kill.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

const (
	e2eAdminID = "394051"
	e2eSecret  = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e2eWorkers = 8
	e2eRule    = "app-notify"
)

// e2eRules sends one in-app message per event, at most once per event.n.
const e2eRules = `rules:
  - name: app-notify
    description: one in-app message per event
    message:
      type: inapp
      from: "394051"
      to: {type: user, user_id: '{{ .event.user }}'}
      body: '<p>Event {{ .event.n }} for {{ .event.user }}</p>'
    dedupe: '{{ .event.n }}'
`

// e2eUsers is how many users the fake knows: enough for the largest run.
const e2eUsers = 10000

// e2eBuild is the bridge binary, built once per test process.
var e2eBuild struct {
	once sync.Once
	path string
	err  error
}

// e2eBinary returns the path of the bridge binary, building it the first
// time. The tests that use it are skipped with -short.
func e2eBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds and runs the bridge binary")
	}
	e2eBuild.once.Do(func() {
		// go test runs the test binary from its work directory and removes
		// that directory when done: build beside it when we can.
		dir, err := filepath.Abs(filepath.Dir(os.Args[0]))
		if err != nil || !strings.Contains(dir, "go-build") {
			if dir, err = os.MkdirTemp("", "bridge-e2e-"); err != nil {
				e2eBuild.err = err
				return
			}
		}
		goCmd := "go"
		if root := os.Getenv("GOROOT"); root != "" {
			if p := filepath.Join(root, "bin", "go"); fileExists(p) {
				goCmd = p
			}
		}
		bin := filepath.Join(dir, "bridge-e2e")
		cmd := exec.Command(goCmd, "build", "-o", bin, ".")
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		e2eBuild.path = bin
	})
	if e2eBuild.err != nil {
		t.Fatal(e2eBuild.err)
	}
	return e2eBuild.path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// e2eEnv is what outlives the bridge processes of one test: NATS, the fake
// Intercom, the rules, and the test's own NATS connection.
type e2eEnv struct {
	t     *testing.T
	bin   string
	dir   string
	nats  *natstest.Server // the first of servers
	ic    *intercomtest.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	names broker.Topology

	// servers are the NATS servers: one, or the nodes of a cluster.
	servers []*natstest.Server
	// clientURL lists every server's client URL, comma-separated: the
	// test's own connections move to another node when one goes away.
	clientURL string
	// natsURL is the nats.url of the bridges: clientURL, unless a test
	// puts credentials in it.
	natsURL string
	// replicas is the bridges' nats.events.replicas.
	replicas int
}

func newE2E(t *testing.T) *e2eEnv {
	t.Helper()
	return newE2EOn(t, natstest.Start(t))
}

// newE2EOn is newE2E on NATS servers the caller started: one, or the nodes
// of a cluster, which the bridges and the test's connections all list.
func newE2EOn(t *testing.T, servers ...*natstest.Server) *e2eEnv {
	t.Helper()
	e := &e2eEnv{t: t, bin: e2eBinary(t), dir: t.TempDir(), servers: servers, nats: servers[0], replicas: 1}
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	e.clientURL = strings.Join(urls, ",")
	e.natsURL = e.clientURL
	e.ic = intercomtest.NewServer(intercomtest.WithPermissive(true))
	t.Cleanup(e.ic.Close)
	e.ic.AddAdmin(e2eAdminID, "Wash", "wash@example.com")
	// The users the events name, by user_id "u-<n>". Their Intercom ids
	// are the same strings, so that a message's recipient says which event
	// it is for.
	for i := range e2eUsers {
		u := fmt.Sprintf("u-%d", i)
		e.ic.AddContact(intercom.Contact{ID: u, Role: intercom.RecipientUser, ExternalID: u})
	}
	nc, err := nats.Connect(e.clientURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e.nc = nc
	if e.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "rules.yaml"), []byte(e2eRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// e2eBridge is one bridge: its config, and the process running it, if any.
// A restart appends to the same log file.
type e2eBridge struct {
	env       *e2eEnv
	name      string
	config    string
	log       string
	httpAddr  string
	adminAddr string
	starts    int

	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has exited
	state *os.ProcessState
}

// newBridge writes the config of a bridge; start runs it. level is the log
// level; admin turns the admin listener on.
func (e *e2eEnv) newBridge(name, level string, admin bool) *e2eBridge {
	t := e.t
	t.Helper()
	b := &e2eBridge{env: e, name: name, config: filepath.Join(e.dir, name+".yaml"), log: filepath.Join(e.dir, name+".log"),
		httpAddr: freeAddr(t)}
	if admin {
		b.adminAddr = freeAddr(t)
	}
	// A cluster that has just started elects its JetStream leader in its
	// own time, longer on a loaded machine than the default 10 s that the
	// bridge keeps retrying its streams for.
	connectTimeout := "10s"
	if e.replicas > 1 {
		connectTimeout = "60s"
	}
	src := fmt.Sprintf(`# end-to-end test config for %s
log: {level: %s}
data_dir: %q
nats: {url: %q, events: {replicas: %d}, connect_timeout: %s}
http: {listen: %q}
admin: {listen: %q}
sources:
  - {name: app, nats: {subjects: ["app.>"]}}
  - {name: shop, webhook: {auth: {scheme: standard-webhooks, secret: %q}}}
intercom: {base_url: %q, token: %q, default_admin_id: %q, rate_limit_per_minute: 60000, timeout: 5s}
rules: {paths: [rules.yaml], watch: false}
delivery: {workers: %d, backoff: {initial: 100ms, max: 1s}}
`, name, level, filepath.Join(e.dir, "data-"+name), e.natsURL, e.replicas, connectTimeout, b.httpAddr, b.adminAddr, e2eSecret,
		e.ic.URL(), e.ic.Token(), e2eAdminID, e2eWorkers)
	if err := os.WriteFile(b.config, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if e.names.Events.Name == "" {
		cfg, err := config.Load(b.config)
		if err != nil {
			t.Fatal(err)
		}
		e.names = cfg.Topology()
	}
	t.Cleanup(func() {
		if b.running() {
			b.cmd.Process.Kill()
			<-b.done
		}
		if t.Failed() {
			t.Logf("%s: last lines of %s:\n%s", b.name, b.log, b.tail(40))
		}
	})
	return b
}

// start runs the bridge and waits until its webhook port accepts
// connections.
func (b *e2eBridge) start() {
	b.env.t.Helper()
	b.launch()
	b.waitListening()
}

// launch starts the bridge's process without waiting for it, so that a
// test can start several at the same moment.
func (b *e2eBridge) launch() {
	t := b.env.t
	t.Helper()
	if b.running() {
		t.Fatalf("%s: already running", b.name)
	}
	f, err := os.OpenFile(b.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	b.starts++
	fmt.Fprintf(f, "=== e2e: start #%d at %s\n", b.starts, time.Now().Format(time.StampMilli))
	cmd := exec.Command(b.env.bin, "run", "-config", b.config)
	cmd.Dir = b.env.dir
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Start()
	f.Close() // the child has its own copy
	if err != nil {
		t.Fatal(err)
	}
	b.cmd, b.done, b.state = cmd, make(chan struct{}), nil
	done := b.done
	go func() {
		cmd.Wait()
		b.state = cmd.ProcessState
		close(done)
	}()
}

// waitListening waits until the webhook port of the bridge launch started
// accepts connections: the bridge opens it once its start is done.
func (b *e2eBridge) waitListening() {
	t := b.env.t
	t.Helper()
	opened := poll.Until(30*time.Second, func() bool {
		if !b.running() {
			t.Fatalf("%s exited while starting (%v):\n%s", b.name, b.state, b.tail(30))
		}
		return dialable(b.httpAddr)
	})
	if !opened {
		t.Fatalf("%s: the webhook port %s did not open in 30s:\n%s", b.name, b.httpAddr, b.tail(30))
	}
}

// dialable reports whether addr accepts a TCP connection.
func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (b *e2eBridge) running() bool {
	if b.done == nil {
		return false
	}
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (b *e2eBridge) kill() {
	b.env.t.Helper()
	if err := b.cmd.Process.Kill(); err != nil {
		b.env.t.Fatalf("%s: kill: %v", b.name, err)
	}
	<-b.done
}

// tail returns the last n lines of the log.
func (b *e2eBridge) tail(n int) string {
	data, err := os.ReadFile(b.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logCount counts the log lines that contain s.
func (b *e2eBridge) logCount(s string) int {
	data, _ := os.ReadFile(b.log)
	return bytes.Count(data, []byte(s))
}

// webhook posts payload to /hooks/shop, signed with secret, and returns
// the status and the answer.
func (b *e2eBridge) webhook(id, secret string, ts time.Time, payload []byte) (int, []byte) {
	b.env.t.Helper()
	resp, body, err := b.webhookAnswer(id, secret, ts, payload, 0)
	if err != nil {
		b.env.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// webhookAnswer is webhook with the whole answer, headers too, and an
// error instead of a failed test when no answer came within timeout (0: no
// limit).
func (b *e2eBridge) webhookAnswer(id, secret string, ts time.Time, payload []byte, timeout time.Duration) (*http.Response, []byte, error) {
	sig, err := webhook.SignStandard(secret, id, ts, payload)
	if err != nil {
		return nil, nil, fmt.Errorf("signing webhook %s: %w", id, err)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+b.httpAddr+"/hooks/shop", bytes.NewReader(payload))
	if err != nil {
		return nil, nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Webhook-Id", id)
	req.Header.Set("Webhook-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("Webhook-Signature", sig)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: webhook %s: %w", b.name, id, err)
	}
	defer resp.Body.Close()
	// An answer cut short is still an answer: its status is what counts.
	body, _ := io.ReadAll(resp.Body)
	return resp, body, nil
}

// readyz returns the status and the body of the bridge's /readyz.
func (b *e2eBridge) readyz() (int, string) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + b.adminAddr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Sprintf("reading /readyz: %v", err)
	}
	return resp.StatusCode, string(body)
}

// readyBody waits until the bridge's /readyz answers 200, and returns its
// body as JSON.
func (b *e2eBridge) readyBody(timeout time.Duration) map[string]any {
	t := b.env.t
	t.Helper()
	var code int
	var body string
	if !poll.Until(timeout, func() bool {
		if !b.running() {
			t.Fatalf("%s exited while starting (%v):\n%s", b.name, b.state, b.tail(30))
		}
		code, body = b.readyz()
		return code == http.StatusOK
	}) {
		t.Fatalf("%s: /readyz still %d after %v: %s", b.name, code, timeout, body)
	}
	var rd map[string]any
	if err := json.Unmarshal([]byte(body), &rd); err != nil {
		t.Fatalf("%s: /readyz %q: %v", b.name, body, err)
	}
	return rd
}

// sentMetric reads bridge_deliveries_total{outcome="sent"} from the admin
// listener.
func (b *e2eBridge) sentMetric() (int, error) {
	resp, err := http.Get("http://" + b.adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "bridge_deliveries_total{") || !strings.Contains(line, `outcome="sent"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %v", line, err)
		}
		total += int(v)
	}
	return total, sc.Err()
}

// eventBody is the payload of event n.
func eventBody(n int) []byte {
	return fmt.Appendf(nil, `{"n":%d,"user":"u-%d"}`, n, n)
}

// publisher publishes events over JetStream from its own connection,
// retrying each publish until it is acked; acked counts them.
type publisher struct {
	acked   atomic.Int64
	retries atomic.Int64
	done    chan struct{}
	err     error
}

// publish publishes events from..to-1 to app.events, one every pace (0: as
// fast as acks come back), in a goroutine. stop ends it early. Each event
// carries a Nats-Msg-Id, so that a retried publish that was stored after
// all is dropped by the stream.
func (e *e2eEnv) publish(from, to int, pace time.Duration, stop <-chan struct{}) *publisher {
	t := e.t
	t.Helper()
	nc, err := nats.Connect(e.clientURL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer nc.Close()
		start := time.Now()
		for i := from; i < to; i++ {
			if d := time.Until(start.Add(time.Duration(i-from) * pace)); d > 0 {
				time.Sleep(d)
			}
			for {
				select {
				case <-stop:
					p.err = errors.New("stopped")
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := js.Publish(ctx, "app.events", eventBody(i), jetstream.WithMsgID(fmt.Sprintf("app-%d", i)))
				cancel()
				if err == nil {
					break
				}
				p.retries.Add(1)
				time.Sleep(50 * time.Millisecond)
			}
			p.acked.Add(1)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("the publisher did not stop")
		}
	})
	return p
}

// waitFor polls cond until it holds, failing the test after timeout.
func (e *e2eEnv) waitFor(timeout time.Duration, what func() string, cond func() bool) {
	e.t.Helper()
	if !poll.Until(timeout, cond) {
		e.t.Fatalf("timed out after %v waiting for %s", timeout, what())
	}
}

// tally counts the messages the fake accepted per event n in 0..n-1: the
// events that never arrived, and the copies beyond the first.
func (e *e2eEnv) tally(n int) (lost, dups, unknown int) {
	per := make([]int, n)
	for _, m := range e.ic.Messages() {
		i, err := strconv.Atoi(strings.TrimPrefix(firstRecipient(m).ID, "u-"))
		if err != nil || i < 0 || i >= n {
			unknown++
			continue
		}
		per[i]++
	}
	for _, c := range per {
		if c == 0 {
			lost++
		} else {
			dups += c - 1
		}
	}
	return lost, dups, unknown
}

// allArrived reports whether every event in 0..n-1 has a message.
func (e *e2eEnv) allArrived(n int) bool {
	lost, _, _ := e.tally(n)
	return lost == 0
}

// settled reports whether both stages have nothing left: no event or job
// pending or awaiting an ack. A job held by a killed process stays
// awaiting its ack until the consumer's AckWait passes.
func (e *e2eEnv) settled() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return natstest.Idle(ctx, e.js, [2]string{e.names.Events.Name, e.names.MatchConsumer}, [2]string{e.names.Outbox.Name, e.names.SendConsumer})
}

// settle waits until both stages have nothing left, and logs how long that
// took and what was left when it was not at once.
func (e *e2eEnv) settle(timeout time.Duration) {
	e.t.Helper()
	start, before := time.Now(), e.pipelineState()
	e.waitFor(timeout, func() string { return "the pipeline to settle: " + e.pipelineState() }, e.settled)
	if took := time.Since(start); took > time.Second {
		e.t.Logf("the pipeline settled %v after the wait began; it had %s", took.Round(time.Millisecond), before)
	}
}

// pipelineState describes both consumers, for timeouts.
func (e *e2eEnv) pipelineState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []string
	for _, c := range [][2]string{{e.names.Events.Name, e.names.MatchConsumer}, {e.names.Outbox.Name, e.names.SendConsumer}} {
		cons, err := e.js.Consumer(ctx, c[0], c[1])
		if err != nil {
			out = append(out, c[1]+": "+err.Error())
			continue
		}
		info, err := cons.Info(ctx)
		if err != nil {
			out = append(out, c[1]+": "+err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("%s: pending %d, ack pending %d, redelivered %d", c[1], info.NumPending, info.NumAckPending, info.NumRedelivered))
	}
	return strings.Join(out, "; ")
}

// pendingKeys returns the delivery keys whose ledger entry is "pending",
// each with its owner ("<replica>#<attempt>"): right after a kill, the
// sends that may have reached Intercom unrecorded.
func (e *e2eEnv) pendingKeys() (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := e.js.KeyValue(ctx, e.names.Sent.Bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	keys := map[string]string{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case entry := <-w.Updates():
			if entry == nil { // the initial values are all in
				return keys, nil
			}
			var v struct {
				State string `json:"state"`
				Key   string `json:"key"`
				Owner string `json:"owner"`
			}
			if err := json.Unmarshal(entry.Value(), &v); err != nil {
				return nil, fmt.Errorf("ledger entry %s: %v", entry.Key(), err)
			}
			if v.State == "pending" {
				keys[v.Key] = v.Owner
			}
		}
	}
}

func (e *e2eEnv) progress(n int) func() string {
	return func() string {
		lost, dups, unknown := e.tally(n)
		return fmt.Sprintf("%d/%d events to arrive (%d messages, %d duplicates, %d unknown; %d requests); %s",
			n-lost, n, len(e.ic.Messages()), dups, unknown, len(e.ic.Requests()), e.pipelineState())
	}
}

// TestE2EWebhookToIntercom: a signed webhook over HTTP becomes one message
// with the exact body; the sender retrying it (same webhook-id) changes
// nothing.
func TestE2EWebhookToIntercom(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("bridge", "warn", true)
	b.start()

	payload := []byte(`{"n":7,"user":"ada&co"}`)
	var statuses []int
	for i := range 3 {
		status, body := b.webhook("msg_e2e_1", e2eSecret, time.Now(), payload)
		statuses = append(statuses, status)
		if status != http.StatusAccepted {
			t.Fatalf("webhook %d: status %d: %s", i+1, status, body)
		}
		var ans struct {
			ID        string `json:"id"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("webhook %d: answer %q: %v", i+1, body, err)
		}
		if ans.ID != "msg_e2e_1" || ans.Duplicate != (i > 0) {
			t.Errorf("webhook %d: answer %s, want id msg_e2e_1 and duplicate %v", i+1, body, i > 0)
		}
	}
	e.waitFor(20*time.Second, func() string { return "the message" }, func() bool { return len(e.ic.Messages()) >= 1 })
	e.settle(20 * time.Second)

	msgs := e.ic.Messages()
	t.Logf("webhook statuses %v; %d message(s), %d request(s) at the fake", statuses, len(msgs), len(e.ic.Requests()))
	if len(msgs) != 1 {
		t.Fatalf("the fake accepted %d messages, want 1: %+v", len(msgs), msgs)
	}
	want := intercom.Message{
		MessageType: intercom.MessageTypeInApp,
		Body:        "<p>Event 7 for ada&amp;co</p>",
		From:        intercom.From{Type: "admin", ID: e2eAdminID},
		To:          []intercom.Recipient{e.user(t, "ada&co")},
	}
	if !reflect.DeepEqual(msgs[0], want) {
		t.Errorf("message\n got %+v\nwant %+v", msgs[0], want)
	}
	// The body on the wire, field by field: nothing more, nothing less.
	reqs := e.ic.Requests()
	var raw map[string]any
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &raw); err != nil {
		t.Fatal(err)
	}
	wantRaw := map[string]any{
		"message_type": "inapp",
		"body":         "<p>Event 7 for ada&amp;co</p>",
		"from":         map[string]any{"type": "admin", "id": float64(394051)}, // a number, as Intercom's SDKs send it
		"to":           map[string]any{"type": "user", "id": e.user(t, "ada&co").ID},
	}
	if !reflect.DeepEqual(raw, wantRaw) {
		t.Errorf("request body %s, want %v", reqs[len(reqs)-1].Body, wantRaw)
	}
}

// TestE2ESigtermDuringBurst: SIGTERM mid-burst stops the bridge cleanly
// (exit 0 within 30 s); after a restart every event arrives once.
func TestE2ESigtermDuringBurst(t *testing.T) {
	const n = 500
	e := newE2E(t)
	e.ic.SetDelay(5 * time.Millisecond)
	b := e.newBridge("bridge", "warn", true)
	b.start()

	stop := make(chan struct{})
	defer close(stop)
	pub := e.publish(0, n, 0, stop)
	e.waitFor(30*time.Second, e.progress(n), func() bool { return len(e.ic.Messages()) >= 100 })

	atSignal := len(e.ic.Messages())
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case <-b.done:
	case <-timer.C:
		t.Fatalf("still running 30s after SIGTERM:\n%s", b.tail(30))
	}
	stopTook := time.Since(sent)
	t.Logf("SIGTERM with %d/%d messages at the fake (%d published): exited %v after %v, %d messages at the fake then",
		atSignal, n, pub.acked.Load(), b.state, stopTook.Round(time.Millisecond), len(e.ic.Messages()))
	if code := b.state.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	if atSignal >= n {
		t.Errorf("the burst was over before the SIGTERM: the test proves nothing")
	}
	pending, err := e.pendingKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Errorf("keys left pending by a graceful stop: %v", pending)
	}

	restart := time.Now()
	b.start()
	e.waitFor(30*time.Second, func() string { return fmt.Sprintf("the publisher: %d acked", pub.acked.Load()) },
		func() bool { return pub.acked.Load() == n })
	e.waitFor(90*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
	allIn := time.Since(restart)
	e.settle(90 * time.Second)
	lost, dups, unknown := e.tally(n)
	t.Logf("lost %d, duplicates %d; all arrived %v after the restart; %d publish retries", lost, dups, allIn.Round(time.Millisecond), pub.retries.Load())
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d: a graceful stop must lose and repeat nothing", lost, dups, unknown)
	}
}

// natsRestartRun publishes n events and restarts the NATS server (down
// for about down) once a third are published; the bridge is not restarted
// and must reconnect by itself. It waits for every event, settles, and
// tallies.
func (e *e2eEnv) natsRestartRun(t *testing.T, n int, down, wait time.Duration) (b *e2eBridge, lost, dups, unknown int) {
	t.Helper()
	e.ic.SetDelay(5 * time.Millisecond)
	b = e.newBridge("bridge", "warn", true)
	b.start()
	stop := make(chan struct{})
	defer close(stop)
	begin := time.Now()
	pub := e.publish(0, n, 4*time.Millisecond, stop)
	e.waitFor(wait, e.progress(n), func() bool { return pub.acked.Load() >= int64(n/3) })

	atRestart := len(e.ic.Messages())
	restartAt := time.Now()
	e.nats.Restart(down)
	t.Logf("NATS restarted at %v (down ~%v) with %d published, %d messages at the fake",
		restartAt.Sub(begin).Round(time.Millisecond), time.Since(restartAt).Round(time.Millisecond), pub.acked.Load(), atRestart)
	e.waitFor(wait, func() string { return fmt.Sprintf("the publisher: %d acked", pub.acked.Load()) },
		func() bool { return pub.acked.Load() == int64(n) })
	e.waitFor(wait, e.progress(n), func() bool { return e.allArrived(n) })
	allIn := time.Since(restartAt)
	e.settle(wait)
	if !b.running() {
		t.Fatalf("the bridge exited (%v): it must ride out a NATS restart", b.state)
	}
	lost, dups, unknown = e.tally(n)
	t.Logf("lost=%d duplicated=%d bound=0; unknown=%d; all arrived %v after the restart; %d publish retries; %d uncertain resends logged",
		lost, dups, unknown, allIn.Round(time.Millisecond), pub.retries.Load(), b.logCount("sending again (on_uncertain: resend)"))
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d after a NATS restart", lost, dups, unknown)
	}
	return b, lost, dups, unknown
}

// TestE2ENATSRestart: NATS restarts while events flow; the bridge
// reconnects by itself and nothing is lost or sent twice.
func TestE2ENATSRestart(t *testing.T) {
	newE2E(t).natsRestartRun(t, 500, 500*time.Millisecond, 90*time.Second)
}

// TestE2ETwoProcesses: two bridges on the same NATS share the work, and
// each event is sent once.
func TestE2ETwoProcesses(t *testing.T) {
	const n = 400
	e := newE2E(t)
	b1 := e.newBridge("bridge1", "warn", true)
	b2 := e.newBridge("bridge2", "warn", true)
	b1.start()
	b2.start()

	stop := make(chan struct{})
	defer close(stop)
	pub := e.publish(0, n, time.Millisecond, stop)
	e.waitFor(30*time.Second, func() string { return fmt.Sprintf("the publisher: %d acked", pub.acked.Load()) },
		func() bool { return pub.acked.Load() == n })
	e.waitFor(60*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
	e.settle(60 * time.Second)

	lost, dups, unknown := e.tally(n)
	s1, err1 := b1.sentMetric()
	s2, err2 := b2.sentMetric()
	t.Logf("lost %d, duplicates %d; %d messages at the fake; bridge1 sent %d, bridge2 sent %d (metrics)", lost, dups, len(e.ic.Messages()), s1, s2)
	if len(e.ic.Messages()) != n || lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("%d messages for %d events: lost %d, duplicates %d, unknown %d", len(e.ic.Messages()), n, lost, dups, unknown)
	}
	if err := errors.Join(err1, err2); err != nil {
		t.Errorf("metrics: %v", err)
	} else if s1+s2 != n {
		t.Errorf("the bridges say they sent %d + %d, want %d in all", s1, s2, n)
	}
}

// TestE2ELogHasNoSecrets: at debug level, after webhooks (good and badly
// signed) and a send, the log holds neither the token nor the webhook
// secret, nor the NATS password in nats.url.
func TestE2ELogHasNoSecrets(t *testing.T) {
	const natsPassword = "e2e-nats-Pa55word"
	e := newE2E(t)
	// The test server has no auth, so it takes any user and password.
	e.natsURL = strings.Replace(e.nats.ClientURL(), "nats://", "nats://bridge-user:"+natsPassword+"@", 1)
	b := e.newBridge("bridge", "debug", true)
	b.start()

	payload := []byte(`{"n":1,"user":"u-1"}`)
	if status, body := b.webhook("msg_secret_1", e2eSecret, time.Now(), payload); status != http.StatusAccepted {
		t.Fatalf("status %d: %s", status, body)
	}
	// Failures are where secrets leak: a wrong key, a stale timestamp.
	if status, _ := b.webhook("msg_secret_2", "whsec_"+strings.Repeat("A", 32), time.Now(), payload); status != http.StatusUnauthorized {
		t.Errorf("wrong key: status %d, want 401", status)
	}
	if status, _ := b.webhook("msg_secret_3", e2eSecret, time.Now().Add(-time.Hour), payload); status != http.StatusUnauthorized {
		t.Errorf("stale timestamp: status %d, want 401", status)
	}
	e.waitFor(20*time.Second, func() string { return "the message" }, func() bool { return len(e.ic.Messages()) >= 1 })
	e.settle(20 * time.Second)
	// A graceful stop, so that shutdown is logged too.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		t.Fatal("still running 30s after SIGTERM")
	}

	data, err := os.ReadFile(b.log)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(data, []byte("\n"))
	t.Logf("log: %d lines, %d bytes, %d at debug level", lines, len(data), bytes.Count(data, []byte(`"level":"debug"`)))
	if !bytes.Contains(data, []byte(`"message":"sent"`)) {
		t.Errorf("the log has no \"sent\" line: is it the bridge's log?\n%s", b.tail(20))
	}
	for name, s := range map[string]string{
		"the Intercom token":       e.ic.Token(),
		"the webhook secret":       e2eSecret,
		"the webhook secret's key": strings.TrimPrefix(e2eSecret, "whsec_"),
		"the Authorization header": "Bearer " + e.ic.Token(),
		"the NATS password":        natsPassword,
	} {
		if i := bytes.Index(data, []byte(s)); i >= 0 {
			start := bytes.LastIndexByte(data[:i], '\n') + 1
			end := i + bytes.IndexByte(data[i:], '\n')
			if end < i {
				end = len(data)
			}
			t.Errorf("the log contains %s: %s", name, data[start:end])
		}
	}
}

// user is the recipient of the user with external id externalID, as the
// permissive fake created it when the bridge looked it up.
func (e *e2eEnv) user(t *testing.T, externalID string) intercom.Recipient {
	t.Helper()
	for _, c := range e.ic.Contacts() {
		if c.ExternalID == externalID && c.Role == intercom.RecipientUser {
			return c.Recipient()
		}
	}
	t.Fatalf("the fake has no user with external id %q", externalID)
	return intercom.Recipient{}
}

// firstRecipient is the message's first recipient, or none.
func firstRecipient(m intercom.Message) intercom.Recipient {
	if len(m.To) == 0 {
		return intercom.Recipient{}
	}
	return m.To[0]
}

// TestE2ESIGHUPReloadsRules: with rules.watch off, SIGHUP to the process
// reloads the rule files, and the process keeps running.
func TestE2ESIGHUPReloadsRules(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("bridge", "info", false)
	b.start()
	changed := strings.Replace(e2eRules, "<p>Event", "<p>Your event", 1)
	if err := os.WriteFile(filepath.Join(e.dir, "rules.yaml"), []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, func() string { return "the reload on SIGHUP" }, func() bool {
		return b.logCount("reload asked for (SIGHUP)") == 1 && b.logCount(`"trigger":"request"`) == 1 && b.logCount(`"rules reloaded"`) == 1
	})
	if !b.running() {
		t.Fatalf("the bridge exited on SIGHUP: %v", b.state)
	}
}

// TestE2ERenderTestRunParity: one event of a webhook source, through
// bridge render, bridge test and the running service, meets the same rule
// with the same subject and gives the same body.
func TestE2ERenderTestRunParity(t *testing.T) {
	e := newE2E(t)
	b := e.newBridge("bridge", "warn", false)
	rule := `rules:
  - name: by-subject
    on: {sources: [shop], subjects: ["bridge.in.shop"]}
    message:
      type: inapp
      to: {type: user, user_id: '{{ .event.user }}'}
      body: '<p>{{ .subject }}: event {{ .event.n }}</p>'
`
	want := "<p>bridge.in.shop: event 5</p>"
	cases := `tests:
  - name: a shop event
    source: shop
    event: {n: 5, user: u-5}
    expect: [{rule: by-subject, body: "` + want + `"}]
`
	writeFile(t, filepath.Join(e.dir, "rules.yaml"), rule)
	writeFile(t, filepath.Join(e.dir, "tests", "shop.test.yaml"), cases)
	payload := eventBody(5)
	writeFile(t, filepath.Join(e.dir, "event.json"), string(payload))
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(e.bin, args...)
		cmd.Dir = e.dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bridge %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	var rendered []struct {
		Rule    string `json:"rule"`
		Request struct {
			Body string `json:"body"`
		} `json:"request"`
	}
	if err := json.Unmarshal([]byte(cli("render", "-config", b.config, "-event", "event.json", "-source", "shop")), &rendered); err != nil {
		t.Fatal(err)
	}
	if len(rendered) != 1 || rendered[0].Rule != "by-subject" || rendered[0].Request.Body != want {
		t.Errorf("render: %+v, want by-subject with body %q", rendered, want)
	}
	if out := cli("test", "-config", b.config, "rules.yaml", "tests/shop.test.yaml"); !strings.Contains(out, "1 passed, 0 failed") {
		t.Errorf("test:\n%s", out)
	}

	b.start()
	if status, body := b.webhook("msg_parity", e2eSecret, time.Now(), payload); status != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", status, body)
	}
	e.waitFor(20*time.Second, func() string { return "the message" }, func() bool { return len(e.ic.Messages()) >= 1 })
	if got := e.ic.Messages()[0].Body; got != want {
		t.Errorf("run sent body %q, want %q as render and test", got, want)
	}
}

//go:build fault

package main

// Fault tests: the e2e harness (e2e_test.go) driven harder. Each test runs
// the real bridge binary against a real NATS server and the fake Intercom,
// injects one kind of fault (SIGKILL, a NATS restart, Intercom answering
// 503, 429 or too slowly), and counts per event what arrived at the fake:
// nothing may be lost, and the only duplicates allowed are the sends whose
// outcome the bridge could not know (a key left "pending" by a kill, or a
// request that timed out after the fake accepted it).
//
//	go test -tags=fault -race -run Fault -v ./cmd/bridge/ -timeout 20m

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// faultSettings are the intercom and delivery settings of a fault test's
// bridge, written over the lines newBridge put in its config.
type faultSettings struct {
	baseURL     string        // default: the fake's URL
	rateLimit   int           // intercom.rate_limit_per_minute
	timeout     time.Duration // intercom.timeout
	maxAttempts int
	backoffInit time.Duration
	backoffMax  time.Duration
	onUncertain string // resend | dead_letter
}

// faultBridge writes a bridge's config as newBridge does, then replaces its
// intercom and delivery lines with s, and checks that the config loads with
// those values.
func (e *e2eEnv) faultBridge(name string, s faultSettings) *e2eBridge {
	t := e.t
	t.Helper()
	b := e.newBridge(name, "warn", true)
	if s.baseURL == "" {
		s.baseURL = e.ic.URL()
	}
	data, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	intercomLine := fmt.Sprintf("intercom: {base_url: %q, token: %q, default_admin_id: %q, rate_limit_per_minute: %d, timeout: %s}",
		s.baseURL, e.ic.Token(), e2eAdminID, s.rateLimit, s.timeout)
	deliveryLine := fmt.Sprintf("delivery: {workers: %d, max_attempts: %d, backoff: {initial: %s, max: %s}, on_uncertain: %s}",
		e2eWorkers, s.maxAttempts, s.backoffInit, s.backoffMax, s.onUncertain)
	var replaced int
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "intercom:"):
			lines[i] = intercomLine
			replaced++
		case strings.HasPrefix(l, "delivery:"):
			lines[i] = deliveryLine
			replaced++
		}
	}
	if replaced != 2 {
		t.Fatalf("%s: expected one intercom: and one delivery: line in the config newBridge wrote:\n%s", b.config, data)
	}
	if err := os.WriteFile(b.config, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(b.config)
	if err != nil {
		t.Fatalf("%s: %v", b.config, err)
	}
	if cfg.Intercom.Timeout.D() != s.timeout || cfg.Intercom.RateLimitPerMinute != s.rateLimit ||
		cfg.Delivery.MaxAttempts != s.maxAttempts || cfg.Delivery.OnUncertain != s.onUncertain || cfg.Intercom.BaseURL != s.baseURL {
		t.Fatalf("%s: the config did not take the fault settings: %+v %+v", b.config, cfg.Intercom, cfg.Delivery)
	}
	return b
}

// faultDeadLetters lists the dead-letter stream of b's config, over the
// test's own NATS connection.
func (e *e2eEnv) faultDeadLetters(b *e2eBridge) []dlq.Entry {
	t := e.t
	t.Helper()
	cfg, err := config.Load(b.config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dec, err := cfg.Decoder()
	if err != nil {
		t.Fatal(err)
	}
	q, err := dlq.Open(ctx, e.js, cfg.Topology(), dec)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := q.List(ctx, dlq.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// faultDLQSummary describes dead letters by reason, for logs.
func faultDLQSummary(entries []dlq.Entry) string {
	if len(entries) == 0 {
		return "none"
	}
	by := map[string]int{}
	for _, en := range entries {
		by[en.Reason]++
	}
	var parts []string
	for r, n := range by {
		parts = append(parts, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// faultWaitPublished waits for the publisher to have every event acked.
func (e *e2eEnv) faultWaitPublished(p *publisher, n int, timeout time.Duration) {
	e.t.Helper()
	e.waitFor(timeout, func() string { return fmt.Sprintf("the publisher: %d/%d acked", p.acked.Load(), n) },
		func() bool { return p.acked.Load() == int64(n) })
}

// faultFront stands in front of the fake Intercom: it answers 503 to
// everything while down is set, can drop the X-RateLimit-* headers, and
// holds back the answer of every
// delayEvery-th POST /messages for delay after the fake has handled (and so
// recorded, and perhaps accepted) it.
type faultFront struct {
	ic  http.Handler
	srv *httptest.Server

	down       atomic.Bool
	delayEvery int64
	delay      time.Duration

	// stripRateLimit drops the X-RateLimit-* headers from every answer but
	// a 429, as a proxy might.
	stripRateLimit bool

	posts       atomic.Int64 // POST /messages passed to the fake
	unavailable atomic.Int64 // requests answered 503 by the front

	mu       sync.Mutex
	delayed  []int // event n of each delayed request the fake accepted
	rejected int   // delayed requests the fake did not accept
}

func newFaultFront(t *testing.T, ic http.Handler) *faultFront {
	f := &faultFront{ic: ic}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultFront) URL() string { return f.srv.URL }

func (f *faultFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.down.Load() {
		f.unavailable.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "front-503")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"type":"error.list","request_id":"front-503","errors":[{"code":"service_unavailable","message":"Service Unavailable"}]}`)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	f.ic.ServeHTTP(rec, r)
	if r.Method == http.MethodPost && r.URL.Path == "/messages" {
		k := f.posts.Add(1)
		n := faultEventN(body)
		accepted := rec.Code == http.StatusOK
		if f.delayEvery > 0 && k%f.delayEvery == 0 {
			f.mu.Lock()
			if accepted {
				f.delayed = append(f.delayed, n)
			} else {
				f.rejected++
			}
			f.mu.Unlock()
			timer := time.NewTimer(f.delay)
			select {
			case <-timer.C:
			case <-r.Context().Done(): // the client gave up: nobody will read the answer
				timer.Stop()
			}
		}
	}
	for k, v := range rec.Header() {
		if f.stripRateLimit && rec.Code != http.StatusTooManyRequests && strings.HasPrefix(http.CanonicalHeaderKey(k), "X-Ratelimit-") {
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// faultEventN is the event number of a message body (its recipient
// "u-<n>"), or -1.
func faultEventN(body []byte) int {
	var m intercom.Message
	if json.Unmarshal(body, &m) != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimPrefix(firstRecipient(m).ID, "u-"))
	if err != nil {
		return -1
	}
	return n
}

// faultCounts returns what the front recorded.
func (f *faultFront) faultCounts() (delayed []int, rejected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.delayed), f.rejected
}

// faultUncertainFailures reads b's log for the sends that failed with an
// uncertain outcome ("send failed; will retry" with uncertain true), and
// returns how many times each delivery key did, and the errors.
func faultUncertainFailures(t *testing.T, b *e2eBridge) (map[string]int, map[string]int) {
	t.Helper()
	data, err := os.ReadFile(b.log)
	if err != nil {
		t.Fatal(err)
	}
	keys, errs := map[string]int{}, map[string]int{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"send failed; will retry"`)) {
			continue
		}
		var l struct {
			Key       string `json:"delivery_key"`
			Error     string `json:"error"`
			Uncertain bool   `json:"uncertain"`
		}
		if json.Unmarshal(line, &l) != nil || !l.Uncertain {
			continue
		}
		keys[l.Key]++
		errs[l.Error]++
	}
	return keys, errs
}

// faultPerEvent counts the messages the fake accepted for each event n.
func (e *e2eEnv) faultPerEvent(n int) map[int]int {
	per := map[int]int{}
	for _, m := range e.ic.Messages() {
		if i, err := strconv.Atoi(strings.TrimPrefix(firstRecipient(m).ID, "u-")); err == nil && i >= 0 && i < n {
			per[i]++
		}
	}
	return per
}

// faultStatuses counts the fake's answers by status.
func (e *e2eEnv) faultStatuses() map[int]int {
	by := map[int]int{}
	for _, r := range e.ic.Requests() {
		by[r.StatusCode]++
	}
	return by
}

// fault is one fault of a run: once the fake has received at messages,
// inject runs. It returns the delivery keys it found pending in the ledger
// at the fault, with their owners: the sends whose outcome the fault may
// have hidden, which bound the duplicates (nil for a fault that hides
// none).
type fault struct {
	name   string
	at     int
	inject func() map[string]string
}

// faultRun is what a run with faults measured.
type faultRun struct {
	pending   map[string]bool // delivery keys pending in the ledger at a fault
	bound     int             // their number, summed over the faults: the most duplicates allowed
	begin     time.Time
	injected  []injected    // one per fault, in order
	lastFault time.Duration // since the start
	allIn     time.Duration // since the start, when every event had arrived
}

// injected is the moment of one fault of a run.
type injected struct {
	at        time.Time
	published int // events acked by the stream before it (0..published-1)
}

// runFaults publishes n events, one every pace, to the bridges running,
// injects each fault in turn, then waits for every event and for both
// stages to settle. Work a fault interrupted comes back after the
// consumers' ack waits.
func (e *e2eEnv) runFaults(t *testing.T, n int, pace time.Duration, faults []fault, wait time.Duration) faultRun {
	t.Helper()
	r := faultRun{pending: map[string]bool{}, begin: time.Now()}
	stop := make(chan struct{})
	defer close(stop)
	pub := e.publish(0, n, pace, stop)
	for _, f := range faults {
		e.waitFor(wait, e.progress(n), func() bool { return len(e.ic.Messages()) >= f.at })
		r.injected = append(r.injected, injected{at: time.Now(), published: int(pub.acked.Load())})
		keys := f.inject()
		r.lastFault = time.Since(r.begin)
		r.bound += len(keys)
		for k := range keys {
			r.pending[k] = true
		}
		t.Logf("%s at %v: fake had %d messages, %d published; %d keys pending in the ledger",
			f.name, r.lastFault.Round(time.Millisecond), len(e.ic.Messages()), pub.acked.Load(), len(keys))
	}
	e.faultWaitPublished(pub, n, wait)
	t.Logf("published %d events in %v (%d publish retries)", n, time.Since(r.begin).Round(time.Millisecond), pub.retries.Load())
	e.waitFor(wait, e.progress(n), func() bool { return e.allArrived(n) })
	r.allIn = time.Since(r.begin)
	e.settle(wait)
	t.Logf("all %d arrived %v after the start (%v after the last fault); %d messages, %d requests at the fake",
		n, r.allIn.Round(time.Millisecond), (r.allIn - r.lastFault).Round(time.Millisecond), len(e.ic.Messages()), len(e.ic.Requests()))
	return r
}

// checkFaultRun fails t for an event lost or a message to an unknown
// recipient, and for a duplicate the run's faults do not explain: there
// may be no more than the keys pending at the faults, each duplicated
// event's key must be one of them, and each duplicate must have been
// logged as an uncertain resend by one of bridges.
func (e *e2eEnv) checkFaultRun(t *testing.T, n int, r faultRun, bridges ...*e2eBridge) (lost, dups int) {
	t.Helper()
	lost, dups, unknown := e.tally(n)
	resends := 0
	for _, b := range bridges {
		resends += b.logCount("sending again (on_uncertain: resend)")
	}
	t.Logf("lost=%d duplicated=%d bound=%d (keys pending at the %d faults); unknown=%d; %d uncertain resends logged",
		lost, dups, r.bound, len(r.injected), unknown, resends)
	if lost != 0 || unknown != 0 {
		t.Errorf("lost %d events; %d messages for unknown recipients", lost, unknown)
	}
	if dups > r.bound {
		t.Errorf("%d duplicates, more than the %d keys pending at the faults", dups, r.bound)
	}
	if dups > resends {
		t.Errorf("%d duplicates but only %d uncertain resends logged", dups, resends)
	}
	var unexplained []int
	for i, c := range e.faultPerEvent(n) {
		if c > 1 && !r.pending[fmt.Sprintf("%s/%d", e2eRule, i)] {
			unexplained = append(unexplained, i)
		}
	}
	slices.Sort(unexplained)
	if len(unexplained) > 0 {
		t.Errorf("events sent twice whose key was not pending at any fault: %v", unexplained)
	}
	return lost, dups
}

// killRun is what a run with kills of one bridge measured.
type killRun struct {
	faultRun
	bridge *e2eBridge
}

// runWithKills runs one bridge and n events at a steady pace; it SIGKILLs
// the bridge when the fake has received each count in killAt, reads the
// keys left pending, and restarts it.
func (e *e2eEnv) runWithKills(t *testing.T, n int, killAt []int, wait time.Duration) killRun {
	t.Helper()
	e.ic.SetDelay(5 * time.Millisecond) // sends are in flight when a kill lands
	b := e.newBridge("bridge", "warn", true)
	b.start()
	var faults []fault
	for i, at := range killAt {
		faults = append(faults, fault{name: fmt.Sprintf("kill %d", i+1), at: at, inject: func() map[string]string {
			b.kill()
			keys := e.pendingAfterFault(wait)
			restart := time.Now()
			b.start()
			t.Logf("restart %d: webhook port open after %v", i+1, time.Since(restart).Round(time.Millisecond))
			return keys
		}})
	}
	return killRun{faultRun: e.runFaults(t, n, 3*time.Millisecond, faults, wait), bridge: b}
}

// pendingAfterFault reads the keys pending in the ledger, retrying while
// NATS does not answer (a node that went away, a leader being elected).
func (e *e2eEnv) pendingAfterFault(timeout time.Duration) map[string]string {
	e.t.Helper()
	var keys map[string]string
	var err error
	if !poll.Until(timeout, func() bool { keys, err = e.pendingKeys(); return err == nil }) {
		e.t.Fatalf("reading the ledger after a fault: %v", err)
	}
	return keys
}

// TestFaultKillNineTwice: SIGKILL the bridge twice while 1,000 NATS events
// flow; nothing is lost, and the only duplicates are sends whose key was
// pending at a kill.
func TestFaultKillNineTwice(t *testing.T) {
	const n = 1000
	e := newE2E(t)
	r := e.runWithKills(t, n, []int{300, 700}, 120*time.Second)
	_, dups := e.checkFaultRun(t, n, r.faultRun, r.bridge)
	if workerBound := 2 * e2eWorkers * 2; dups > workerBound {
		t.Errorf("%d duplicates: more than the coarse bound 2 x %d workers x 2 kills = %d", dups, e2eWorkers, workerBound)
	}
}

// TestFaultKillNineFiveTimes: 10,000 NATS events at a steady pace; the
// bridge is SIGKILLed five times, at 15%, 30%, 45%, 60% and 75% of the
// messages, and restarted each time. Nothing is lost; the duplicates are at
// most the keys found pending in the ledger right after the kills.
func TestFaultKillNineFiveTimes(t *testing.T) {
	const n = 10000
	e := newE2E(t)
	var killAt []int
	for _, pct := range []int{15, 30, 45, 60, 75} {
		killAt = append(killAt, n*pct/100)
	}
	r := e.runWithKills(t, n, killAt, 240*time.Second)
	e.checkFaultRun(t, n, r.faultRun, r.bridge)
	dlq := e.faultDeadLetters(r.bridge)
	t.Logf("dead letters: %s", faultDLQSummary(dlq))
	if len(dlq) != 0 {
		t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
	}
}

// TestFaultNATSRestart: 3,000 events; the NATS server goes away for about
// a second mid-run and comes back on the same port and store. The bridge,
// not restarted, reconnects; nothing is lost or sent twice.
func TestFaultNATSRestart(t *testing.T) {
	e := newE2E(t)
	b, _, _, _ := e.natsRestartRun(t, 3000, time.Second, 180*time.Second)
	t.Logf("%d \"delivery interrupted\", %d \"cannot record the sent key\" logged",
		b.logCount("delivery interrupted"), b.logCount("cannot record the sent key"))
	if dlq := e.faultDeadLetters(b); len(dlq) != 0 {
		t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
	}
}

// TestFaultIntercomDown30s: Intercom answers 503 to everything for 30
// seconds while 2,000 events flow. With max_attempts 50 and a short
// backoff nothing is dead-lettered; every message arrives afterwards, once.
// A 503 means Intercom did not create the message, so its retries are not
// uncertain and are not duplicates.
func TestFaultIntercomDown30s(t *testing.T) {
	const (
		n      = 2000
		outage = 30 * time.Second
	)
	e := newE2E(t)
	front := newFaultFront(t, e.ic)
	b := e.faultBridge("bridge", faultSettings{baseURL: front.URL(), rateLimit: 60000, timeout: 5 * time.Second,
		maxAttempts: 50, backoffInit: 200 * time.Millisecond, backoffMax: 2 * time.Second, onUncertain: "resend"})
	b.start()

	stop := make(chan struct{})
	defer close(stop)
	begin := time.Now()
	pub := e.publish(0, n, 15*time.Millisecond, stop) // about 30 s of publishing
	e.waitFor(60*time.Second, e.progress(n), func() bool { return len(e.ic.Messages()) >= n/5 })

	atDown := len(e.ic.Messages())
	front.down.Store(true)
	downAt := time.Now()
	t.Logf("Intercom down at %v with %d messages at the fake, %d published", downAt.Sub(begin).Round(time.Millisecond), atDown, pub.acked.Load())
	// Hold the outage for its length, failing early only if the bridge dies.
	for time.Since(downAt) < outage {
		if !b.running() {
			t.Fatalf("the bridge exited during the outage (%v):\n%s", b.state, b.tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	front.down.Store(false)
	upAt := time.Now()
	during := len(e.ic.Messages()) - atDown
	t.Logf("Intercom up again after %v: %d requests answered 503, %d messages accepted meanwhile, %d published",
		upAt.Sub(downAt).Round(time.Millisecond), front.unavailable.Load(), during, pub.acked.Load())

	e.faultWaitPublished(pub, n, 60*time.Second)
	e.waitFor(180*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
	allIn := time.Since(upAt)
	e.settle(120 * time.Second)

	lost, dups, unknown := e.tally(n)
	const bound = 0
	dlq := e.faultDeadLetters(b)
	t.Logf("lost=%d duplicated=%d bound=%d; unknown=%d; all arrived %v after Intercom came back; %d answered 503; %d uncertain resends, %d \"send failed; will retry\" logged; dead letters: %s",
		lost, dups, bound, unknown, allIn.Round(time.Millisecond), front.unavailable.Load(),
		b.logCount("sending again (on_uncertain: resend)"), b.logCount("send failed; will retry"), faultDLQSummary(dlq))
	if lost != 0 || dups > bound || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d after a 30 s outage", lost, dups, unknown)
	}
	if during != 0 {
		t.Errorf("%d messages accepted while the front answered 503 to everything", during)
	}
	if front.unavailable.Load() == 0 {
		t.Errorf("no request was answered 503: the test proves nothing")
	}
	if len(dlq) != 0 {
		t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
	}
}

// TestFault429Storm: the fake admits 500 requests per 10-second window (50
// a second) while the bridge is told it may send 100,000 a minute. A 429 is certain-not-sent: every
// message arrives once, nothing is dead-lettered.
//
// The bridge's pacer follows X-RateLimit-Remaining and -Reset on every
// answer, so with the fake alone it never gets a 429. Two ways to make it:
//   - shared: another integration of the same app spends the same limit
//     (10 clients sending GET /me every 50 ms), so what the bridge last
//     heard is stale: a few 429s;
//   - stripped: a proxy drops X-RateLimit-* from every answer but the 429s,
//     so the bridge learns the limit only by hitting it: a 429 storm, until
//     a 429's X-RateLimit-Limit tells the bridge what the window admits.
//
// The windows are Intercom's 10 seconds: the bridge reads X-RateLimit-Limit
// as the budget of a window of that length.
func TestFault429Storm(t *testing.T) {
	const (
		n     = 1000
		limit = 500 // per 10 s window
	)
	run := func(t *testing.T, shared, strip bool) {
		e := newE2E(t)
		e.ic.SetWindowLimit(limit, 10*time.Second)
		front := newFaultFront(t, e.ic)
		front.stripRateLimit = strip
		b := e.faultBridge("bridge", faultSettings{baseURL: front.URL(), rateLimit: 100000, timeout: 5 * time.Second,
			maxAttempts: 12, backoffInit: 100 * time.Millisecond, backoffMax: time.Second, onUncertain: "resend"})
		b.start()

		neighbourStop := make(chan struct{})
		var neighbours sync.WaitGroup
		if shared {
			for range 10 {
				neighbours.Go(func() {
					for {
						select {
						case <-neighbourStop:
							return
						case <-time.After(50 * time.Millisecond):
						}
						req, _ := http.NewRequest(http.MethodGet, e.ic.URL()+"/me", nil)
						req.Header.Set("Authorization", "Bearer "+e.ic.Token())
						req.Header.Set("Accept", "application/json")
						if resp, err := http.DefaultClient.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
				})
			}
		}
		stopNeighbours := sync.OnceFunc(func() { close(neighbourStop); neighbours.Wait() })
		defer stopNeighbours()

		stop := make(chan struct{})
		defer close(stop)
		begin := time.Now()
		pub := e.publish(0, n, 2*time.Millisecond, stop)
		e.faultWaitPublished(pub, n, 60*time.Second)
		e.waitFor(180*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
		allIn := time.Since(begin)
		stopNeighbours()
		e.settle(120 * time.Second)

		lost, dups, unknown := e.tally(n)
		const bound = 0
		// The bridge's requests: its messages and the look-ups of their
		// recipients, which spend the same limit.
		var posts, posts429, me, me429 int
		for _, r := range e.ic.Requests() {
			switch {
			case r.Path != "/me":
				posts++
				if r.StatusCode == http.StatusTooManyRequests {
					posts429++
				}
			default:
				me++
				if r.StatusCode == http.StatusTooManyRequests {
					me429++
				}
			}
		}
		dlq := e.faultDeadLetters(b)
		t.Logf("lost=%d duplicated=%d bound=%d; unknown=%d; 429s at the fake: %d of the bridge's %d requests (messages and look-ups), %d of the neighbours' %d GET /me; all arrived in %v (the fake admits %d/s); %d uncertain resends logged; dead letters: %s",
			lost, dups, bound, unknown, posts429, posts, me429, me, allIn.Round(time.Millisecond), limit/10,
			b.logCount("sending again (on_uncertain: resend)"), faultDLQSummary(dlq))
		if lost != 0 || dups > bound || unknown != 0 {
			t.Errorf("lost %d, duplicates %d, unknown %d in a 429 storm", lost, dups, unknown)
		}
		if strip && posts429 == 0 {
			t.Errorf("the fake answered no request of the bridge's with 429: the test proves nothing")
		}
		if len(dlq) != 0 {
			t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
		}
	}
	t.Run("shared", func(t *testing.T) { run(t, true, false) })
	t.Run("stripped", func(t *testing.T) { run(t, false, true) })
}

// TestFaultIntercomTimeouts: every 10th request is answered 1.5 s late,
// after the fake accepted it, while the bridge's intercom.timeout is
// 500 ms: the bridge cannot know the message was taken. With on_uncertain
// resend it sends those again, and the only duplicates are theirs; with
// dead_letter nothing is sent twice and exactly those go to the dead-letter
// stream, with reason "uncertain".
//
// A request the front did not delay may still time out on a loaded machine;
// the bridge logs it ("send failed; will retry", uncertain), and such keys
// are added to what is allowed, and logged.
func TestFaultIntercomTimeouts(t *testing.T) {
	const (
		n       = 500
		every   = 10
		delay   = 1500 * time.Millisecond
		timeout = 500 * time.Millisecond
	)
	key := func(i int) string { return fmt.Sprintf("%s/%d", e2eRule, i) }
	run := func(t *testing.T, onUncertain string) (e *e2eEnv, b *e2eBridge, front *faultFront) {
		e = newE2E(t)
		front = newFaultFront(t, e.ic)
		front.delayEvery, front.delay = every, delay
		b = e.faultBridge("bridge", faultSettings{baseURL: front.URL(), rateLimit: 60000, timeout: timeout,
			maxAttempts: 12, backoffInit: 100 * time.Millisecond, backoffMax: time.Second, onUncertain: onUncertain})
		b.start()
		stop := make(chan struct{})
		defer close(stop)
		pub := e.publish(0, n, 2*time.Millisecond, stop)
		e.faultWaitPublished(pub, n, 60*time.Second)
		e.waitFor(180*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
		e.settle(120 * time.Second)
		return e, b, front
	}
	// spontaneous returns the keys that failed uncertain without having been
	// delayed by the front.
	spontaneous := func(uncertain map[string]int, delayed []int) map[string]int {
		out := map[string]int{}
		for k, c := range uncertain {
			out[k] = c
		}
		for _, i := range delayed {
			if out[key(i)] > 0 {
				out[key(i)]--
			}
		}
		for k, c := range out {
			if c == 0 {
				delete(out, k)
			}
		}
		return out
	}

	t.Run("resend", func(t *testing.T) {
		e, b, front := run(t, "resend")
		lost, dups, unknown := e.tally(n)
		delayed, rejected := front.faultCounts()
		uncertain, errs := faultUncertainFailures(t, b)
		extra := spontaneous(uncertain, delayed)
		extraN := 0
		for _, c := range extra {
			extraN += c
		}
		bound := len(delayed) + extraN
		var unexplained []int
		for i, c := range e.faultPerEvent(n) {
			if c > 1 && uncertain[key(i)] == 0 {
				unexplained = append(unexplained, i)
			}
		}
		slices.Sort(unexplained)
		dlq := e.faultDeadLetters(b)
		t.Logf("lost=%d duplicated=%d bound=%d (%d delayed requests the fake accepted + %d other uncertain failures %v; %d delayed not accepted); unknown=%d; %d POSTs; %d uncertain resends logged; uncertain errors %v; dead letters: %s",
			lost, dups, bound, len(delayed), extraN, extra, rejected, unknown, front.posts.Load(),
			b.logCount("sending again (on_uncertain: resend)"), errs, faultDLQSummary(dlq))
		if lost != 0 || unknown != 0 {
			t.Errorf("lost %d, unknown %d", lost, unknown)
		}
		if dups > bound {
			t.Errorf("%d duplicates, more than the %d requests that timed out", dups, bound)
		}
		if len(unexplained) > 0 {
			t.Errorf("events sent twice without an uncertain failure logged: %v", unexplained)
		}
		if len(delayed) == 0 {
			t.Errorf("no request was delayed: the test proves nothing")
		}
		if len(dlq) != 0 {
			t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
		}
	})

	t.Run("dead_letter", func(t *testing.T) {
		e, b, front := run(t, "dead_letter")
		lost, dups, unknown := e.tally(n)
		delayed, rejected := front.faultCounts()
		uncertain, errs := faultUncertainFailures(t, b)
		extra := spontaneous(uncertain, delayed)
		dlq := e.faultDeadLetters(b)
		const bound = 0
		t.Logf("lost=%d duplicated=%d bound=%d; unknown=%d; %d delayed requests the fake accepted (%d not accepted), %d other uncertain failures %v; uncertain errors %v; %d POSTs; dead letters: %d (%s)",
			lost, dups, bound, unknown, len(delayed), rejected, len(extra), extra, errs, front.posts.Load(), len(dlq), faultDLQSummary(dlq))
		if lost != 0 || dups > bound || unknown != 0 {
			t.Errorf("lost %d, duplicates %d, unknown %d with on_uncertain: dead_letter", lost, dups, unknown)
		}
		if len(delayed) == 0 {
			t.Errorf("no request was delayed: the test proves nothing")
		}
		got := map[string]bool{}
		for _, en := range dlq {
			if en.Reason != pipeline.ReasonUncertain {
				t.Errorf("dead letter %d: reason %q (%s), want %q", en.Seq, en.Reason, en.Error, pipeline.ReasonUncertain)
			}
			if got[en.Key] {
				t.Errorf("dead letter %d: key %s dead-lettered twice", en.Seq, en.Key)
			}
			got[en.Key] = true
			if uncertain[en.Key] == 0 {
				t.Errorf("dead letter %d: key %s (%s) had no uncertain failure logged", en.Seq, en.Key, en.Error)
			}
		}
		var missing []string
		for _, i := range delayed {
			if !got[key(i)] {
				missing = append(missing, key(i))
			}
		}
		for k := range extra {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%d requests that timed out are not dead-lettered as uncertain: %v", len(missing), missing)
		}
	})
}

// TestFaultPacerWaitLongerThanAckWait: 2,000 events at
// rate_limit_per_minute 600 (100 requests per 10 s window) with 32 workers:
// every job waits for the pacer far longer than the outbox's AckWait, queued
// or in hand. No fault at all, so no duplicate may appear and nothing is
// sent "again".
func TestFaultPacerWaitLongerThanAckWait(t *testing.T) {
	const n = 2000
	e := newE2E(t)
	b := e.faultBridge("bridge", faultSettings{rateLimit: 600, timeout: time.Second,
		maxAttempts: 12, backoffInit: 100 * time.Millisecond, backoffMax: time.Second, onUncertain: "resend"})
	b.start()
	stop := make(chan struct{})
	defer close(stop)
	begin := time.Now()
	pub := e.publish(0, n, 0, stop)
	e.faultWaitPublished(pub, n, 60*time.Second)
	e.waitFor(10*time.Minute, e.progress(n), func() bool { return e.allArrived(n) })
	allIn := time.Since(begin)
	e.settle(120 * time.Second)

	lost, dups, unknown := e.tally(n)
	dlq := e.faultDeadLetters(b)
	resends := b.logCount("sending again (on_uncertain: resend)")
	t.Logf("lost=%d duplicated=%d unknown=%d; all arrived in %v (%.0f/min); %d uncertain resends; dead letters: %s",
		lost, dups, unknown, allIn.Round(time.Millisecond), float64(n)/allIn.Minutes(), resends, faultDLQSummary(dlq))
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d with the pacer waiting past AckWait and no fault", lost, dups, unknown)
	}
	if resends != 0 {
		t.Errorf("%d uncertain resends with no fault", resends)
	}
	if len(dlq) != 0 {
		t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
	}
}

// TestFaultIntercomSlowerThanAckWait: two replicas, and Intercom answers
// every message 5 s after taking it, longer than both stages' AckWait
// (4 s) and within intercom.timeout. What each replica holds, events it
// makes a first attempt for and jobs in the outbox, is kept alive: no
// event or job is handed out twice, and nothing is sent twice or "again".
func TestFaultIntercomSlowerThanAckWait(t *testing.T) {
	const n = 100
	e := newE2E(t)
	front := newFaultFront(t, e.ic)
	front.delayEvery, front.delay = 1, 5*time.Second
	settings := faultSettings{baseURL: front.URL(), rateLimit: 60000, timeout: 10 * time.Second,
		maxAttempts: 12, backoffInit: 100 * time.Millisecond, backoffMax: time.Second, onUncertain: "resend"}
	bs := []*e2eBridge{e.faultBridge("replica1", settings), e.faultBridge("replica2", settings)}
	for _, b := range bs {
		b.start()
	}
	stop := make(chan struct{})
	defer close(stop)
	pub := e.publish(0, n, 0, stop)
	e.faultWaitPublished(pub, n, 60*time.Second)
	e.waitFor(5*time.Minute, e.progress(n), func() bool { return e.allArrived(n) })
	e.settle(120 * time.Second)

	lost, dups, unknown := e.tally(n)
	resends := 0
	for _, b := range bs {
		resends += b.logCount("sending again (on_uncertain: resend)")
	}
	dlq := e.faultDeadLetters(bs[0])
	delivered := map[string]uint64{}
	for stream, consumer := range map[string]string{e.names.Events.Name: e.names.MatchConsumer, e.names.Outbox.Name: e.names.SendConsumer} {
		c, err := e.js.Consumer(context.Background(), stream, consumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.AckWait != 4*time.Second {
			t.Errorf("%s: AckWait %v, want 4s", consumer, info.Config.AckWait)
		}
		delivered[consumer] = info.Delivered.Consumer
		// The outbox puts jobs back (a key held elsewhere, the pacer), so
		// only the events stream's deliveries are counted.
		if stream == e.names.Events.Name {
			if stored := natstest.Msgs(t, e.js, stream); info.Delivered.Consumer != stored {
				t.Errorf("%s: %d deliveries of %d events: some were handed out again", consumer, info.Delivered.Consumer, stored)
			}
		}
	}
	t.Logf("lost=%d duplicated=%d unknown=%d; %d POSTs; deliveries %v; %d uncertain resends; dead letters: %s",
		lost, dups, unknown, front.posts.Load(), delivered, resends, faultDLQSummary(dlq))
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d with Intercom slower than AckWait and no fault", lost, dups, unknown)
	}
	if resends != 0 {
		t.Errorf("%d uncertain resends with no fault", resends)
	}
	if posts := front.posts.Load(); posts != n {
		t.Errorf("%d requests for %d events", posts, n)
	}
	if len(dlq) != 0 {
		t.Errorf("%d dead letters (%s), want none", len(dlq), faultDLQSummary(dlq))
	}
}

// TestFaultReplayFailingAgain: a message Intercom refuses is dead-lettered;
// `bridge dlq replay` puts it back, Intercom refuses it again, and the new
// dead letter is listed (not dropped as a duplicate of the first); a third
// replay, with Intercom accepting, delivers it once and leaves the stream
// empty.
func TestFaultReplayFailingAgain(t *testing.T) {
	e := newE2E(t)
	b := e.faultBridge("bridge", faultSettings{rateLimit: 60000, timeout: 5 * time.Second,
		maxAttempts: 3, backoffInit: 100 * time.Millisecond, backoffMax: time.Second, onUncertain: "resend"})
	b.start()
	dlqCmd := func(sub string) string {
		t.Helper()
		out, err := exec.Command(e.bin, "dlq", sub, "-config", b.config).CombinedOutput()
		if err != nil {
			t.Fatalf("bridge dlq %s: %v\n%s", sub, err, out)
		}
		return string(out)
	}
	listed := func() []dlq.Entry { return e.faultDeadLetters(b) }

	e.ic.FailNext(1, http.StatusUnprocessableEntity)
	stop := make(chan struct{})
	defer close(stop)
	e.faultWaitPublished(e.publish(0, 1, 0, stop), 1, 30*time.Second)
	e.waitFor(60*time.Second, func() string { return "the first dead letter" }, func() bool { return len(listed()) == 1 })
	first := listed()[0]

	e.ic.FailNext(1, http.StatusUnprocessableEntity)
	t.Log(strings.TrimSpace(dlqCmd("replay")))
	e.waitFor(60*time.Second, func() string { return "the dead letter of the replay" }, func() bool {
		l := listed()
		return len(l) == 1 && l[0].Seq != first.Seq
	})
	if out := dlqCmd("list"); !strings.Contains(out, "app-notify") {
		t.Errorf("bridge dlq list after a replay that failed again shows no entry:\n%s", out)
	}
	if got := len(e.ic.Messages()); got != 0 {
		t.Fatalf("%d messages accepted while Intercom refused them", got)
	}

	t.Log(strings.TrimSpace(dlqCmd("replay")))
	e.waitFor(60*time.Second, e.progress(1), func() bool { return e.allArrived(1) })
	e.settle(60 * time.Second)
	if lost, dups, unknown := e.tally(1); lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d", lost, dups, unknown)
	}
	if l := listed(); len(l) != 0 {
		t.Errorf("%d dead letters left after the replay that worked: %s", len(l), faultDLQSummary(l))
	}
}

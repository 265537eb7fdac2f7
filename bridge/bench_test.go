package bridge

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/rules"
)

// benchConfig writes n rules (rule i matches events of kind "k<i>") and a
// config on the embedded server with a capture source "app" and an open
// webhook source "hook".
func benchConfig(b *testing.B, n int, icURL, token string) *config.Config {
	return benchConfigTo(b, n, "{type: user, id: '{{ .event.user }}'}", icURL, token)
}

// benchConfigTo is benchConfig with the rules' recipient to.
func benchConfigTo(b *testing.B, n int, to, icURL, token string) *config.Config {
	b.Helper()
	dir := b.TempDir()
	var rules strings.Builder
	rules.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&rules, `  - name: r%d
    on: {sources: [app, hook]}
    when: event.kind == "k%d"
    message:
      type: inapp
      from: "394051"
      to: %s
      body: 'Hello {{ .event.user }}, event {{ .event.n }}'
    dedupe: '{{ .event.n }}'
`, i, i, to)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(rules.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	src := fmt.Sprintf(`
log: {level: error}
data_dir: data
http: {listen: "127.0.0.1:0"}
admin: {listen: ""}
sources:
  - {name: app, nats: {subjects: ["app.>"]}}
  - {name: hook, webhook: {auth: {scheme: none}}}
intercom: {base_url: "%s", token: "%s", rate_limit_per_minute: 100000000}
rules: {paths: [rules.yaml]}
delivery: {workers: 32}
`, icURL, token)
	cfg, err := config.Parse(filepath.Join(dir, "bridge.yaml"), []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// publishEvents stores n events on app.events; every matchEvery-th event
// matches rule r<(i/matchEvery)%rules>, the others match nothing.
func publishEvents(b *testing.B, js jetstream.JetStream, n, matchEvery, rules int) {
	b.Helper()
	var futures []jetstream.PubAckFuture
	for i := range n {
		kind := "none"
		if i%matchEvery == 0 {
			kind = fmt.Sprintf("k%d", (i/matchEvery)%rules)
		}
		f, err := js.PublishAsync("app.events", fmt.Appendf(nil, `{"n":%d,"kind":"%s","user":"u-%d"}`, i, kind, i))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
		if len(futures) == 4096 {
			waitAcks(b, futures)
			futures = futures[:0]
		}
	}
	waitAcks(b, futures)
}

func waitAcks(b *testing.B, futures []jetstream.PubAckFuture) {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
}

// BenchmarkStage1 measures matching: 100 rules, 10 % of events matching,
// on the embedded server (run with -benchtime=100000x).
func BenchmarkStage1(b *testing.B) {
	cfg := benchConfig(b, 100, "http://127.0.0.1:1", "t")
	ctx := context.Background()
	br, err := broker.Open(ctx, cfg.BrokerOptions(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	for _, sc := range cfg.Topology().Streams() {
		if _, err := br.EnsureStream(ctx, sc); err != nil {
			b.Fatal(err)
		}
	}
	set, err := LoadRules(cfg)
	if err != nil {
		b.Fatal(err)
	}
	publishEvents(b, br.JS, b.N, 10, 100)
	m := pipeline.NewMetrics(prometheus.NewRegistry())
	b.ResetTimer()
	start := time.Now()
	decoder, err := cfg.Decoder()
	if err != nil {
		b.Fatal(err)
	}
	names := cfg.Topology()
	mt, err := pipeline.StartMatcher(ctx, br.JS, pipeline.MatcherOptions{Topology: names, Decoder: decoder,
		Rules: func() *rules.Set { return set }, Log: zerolog.Nop(), Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	waitDrained(b, br.JS, names.Events.Name, names.MatchConsumer)
	elapsed := time.Since(start)
	b.StopTimer()
	mt.Stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

func waitDrained(b *testing.B, js jetstream.JetStream, stream, consumer string) {
	b.Helper()
	for !natstest.Idle(context.Background(), js, [2]string{stream, consumer}) {
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkBurst delivers a burst end to end: b.N events stored before the
// bridge starts, half of them matching, sent to the fake Intercom with no
// latency, ledger included (run with -benchtime=50000x).
func BenchmarkBurst(b *testing.B) {
	ic := intercomtest.NewServer(intercomtest.WithPermissive(true), intercomtest.WithRecordLimit(1))
	defer ic.Close()
	ic.AddAdmin("394051", "Wash", "w@example.com")
	ic.SetWindowLimit(benchNoLimit, intercomtest.DefaultWindow)
	cfg := benchConfig(b, 10, ic.URL(), ic.Token())
	ctx := context.Background()
	br, err := broker.Open(ctx, cfg.BrokerOptions(), zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := br.EnsureStream(ctx, cfg.Topology().Events); err != nil {
		b.Fatal(err)
	}
	publishEvents(b, br.JS, b.N, 2, 10)
	br.Close()

	b.ResetTimer()
	start := time.Now()
	svc, err := Start(ctx, cfg, zerolog.Nop(), Options{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Stop(ctx)
	want := (b.N + 1) / 2
	for sent(svc) < want {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(want)/elapsed.Seconds(), "sends/s")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchmarkSendWithLookups sends b.N messages to users named by user_id,
// at Intercom-Version 2.14, to the fake Intercom with no latency: "cold",
// every message to a user not yet looked up; "warm", to 100 users whose
// look-ups are cached (run with -benchtime=2000x). It reports messages/s
// and the look-ups made per message.
func BenchmarkSendWithLookups(b *testing.B) {
	for _, mode := range []struct {
		name  string
		users int // distinct users; 0: one per message
	}{{"cold", 0}, {"warm", 100}} {
		b.Run(mode.name, func(b *testing.B) {
			ic := intercomtest.NewServer(intercomtest.WithRecordLimit(1))
			defer ic.Close()
			ic.AddAdmin("394051", "Wash", "w@example.com")
			ic.SetWindowLimit(benchNoLimit, intercomtest.DefaultWindow)
			users := cmp.Or(mode.users, b.N)
			for i := range users {
				u := fmt.Sprintf("u-%d", i)
				ic.AddContact(intercom.Contact{Role: intercom.RecipientUser, ExternalID: u})
			}
			cfg := benchConfigTo(b, 1, "{type: user, user_id: '{{ .event.user }}'}", ic.URL(), ic.Token())
			ctx := context.Background()
			svc, err := Start(ctx, cfg, zerolog.Nop(), Options{Version: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Stop(ctx)
			publish := func(from, to int) {
				var futures []jetstream.PubAckFuture
				for i := from; i < to; i++ {
					f, err := svc.Broker().JS.PublishAsync("app.events", fmt.Appendf(nil, `{"n":%d,"kind":"k0","user":"u-%d"}`, i, i%users))
					if err != nil {
						b.Fatal(err)
					}
					futures = append(futures, f)
				}
				waitAcks(b, futures)
			}
			warmup := mode.users // one message per user, before the clock starts
			publish(0, warmup)
			for sentBy(svc, 1) < warmup {
				time.Sleep(5 * time.Millisecond)
			}
			lookups := svc.pipeline.ContactLookups.WithLabelValues(pipeline.LookupMiss)
			lookupsBefore := testutil.ToFloat64(lookups)

			b.ResetTimer()
			start := time.Now()
			publish(warmup, warmup+b.N)
			for sentBy(svc, 1) < warmup+b.N {
				time.Sleep(5 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric((testutil.ToFloat64(lookups)-lookupsBefore)/float64(b.N), "lookups/msg")
		})
	}
}

// benchNoLimit is a rate limit for the fake Intercom that nothing reaches:
// the client paces to the limit the fake states.
const benchNoLimit = 1 << 30

func sent(svc *Service) int { return sentBy(svc, 10) }

// sentBy is how many messages the rules r0..r<rules-1> sent.
func sentBy(svc *Service, rules int) int {
	total := 0
	for i := range rules {
		total += int(testutil.ToFloat64(svc.pipeline.Deliveries.WithLabelValues(fmt.Sprintf("r%d", i), pipeline.OutcomeSent)))
	}
	return total
}

// BenchmarkWebhookToIntercom sends matching webhooks at 200/s and reports
// the latency from the request to the fake Intercom receiving the message
// (run with -benchtime=2000x).
func BenchmarkWebhookToIntercom(b *testing.B) {
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	ic := intercomtest.NewServer(intercomtest.WithPermissive(true), intercomtest.WithRecordLimit(1),
		intercomtest.WithRequestHook(func(r intercomtest.Request) {
			if r.Message != nil {
				mu.Lock()
				arrived[firstRecipient(*r.Message).ID] = r.Time
				mu.Unlock()
			}
		}))
	defer ic.Close()
	ic.AddAdmin("394051", "Wash", "w@example.com")
	ic.SetWindowLimit(benchNoLimit, intercomtest.DefaultWindow)
	cfg := benchConfig(b, 10, ic.URL(), ic.Token())
	ctx := context.Background()
	svc, err := Start(ctx, cfg, zerolog.Nop(), Options{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Stop(ctx)
	client := &http.Client{}
	url := "http://" + svc.WebhookAddr() + "/hooks/hook"
	sentAt := make([]time.Time, b.N)
	tick := time.NewTicker(time.Second / 200)
	defer tick.Stop()
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"n":%d,"kind":"k1","user":"u-%d"}`, i, i)
			sentAt[i] = time.Now()
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	for {
		mu.Lock()
		n := len(arrived)
		mu.Unlock()
		if n >= b.N {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	lat := make([]time.Duration, 0, b.N)
	for i := range b.N {
		lat = append(lat, arrived[fmt.Sprintf("u-%d", i)].Sub(sentAt[i]))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkConsolePages measures each console page's server time (the
// handler, from the request to the last byte, without the network) with
// 1,000 rules, a test case per rule, 1,000 stored events and 20 dead
// letters; the median is reported as median-ms. The rules page runs the
// tests once per rule set and keeps the results; its first view, and how
// long the tests take to show, are measured once (rules-first).
//
//	go test -run '^$' -bench ConsolePages -benchtime 50x ./bridge/
func BenchmarkConsolePages(b *testing.B) {
	const n = 1000
	ic := intercomtest.NewServer(intercomtest.WithPermissive(true))
	defer ic.Close()
	ic.AddAdmin("394051", "Wash", "w@example.com")
	cfg := benchConfig(b, n, ic.URL(), ic.Token())
	cfg.Admin.Listen = "127.0.0.1:0"
	var tests strings.Builder
	tests.WriteString("tests:\n")
	for i := range n {
		fmt.Fprintf(&tests, "  - name: r%d sends\n    source: app\n    event: {kind: k%d, user: u-%d, n: %d}\n    expect:\n      - {rule: r%d, type: inapp}\n", i, i, i, i, i)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg.Rules.Paths[0]), "rules.test.yaml"), []byte(tests.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	svc, err := Start(ctx, cfg, zerolog.Nop(), Options{Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Stop(ctx)
	ic.FailNext(20, 400)
	publishEvents(b, svc.Broker().JS, n, 1, n)
	for dl := 0.0; dl < 20; dl = testutil.ToFloat64(svc.PipelineMetrics().DeadLetters.WithLabelValues(pipeline.ReasonPermanent)) {
		time.Sleep(10 * time.Millisecond)
	}
	h := svc.admin.Handler
	get := func(path string) time.Duration {
		req, _ := http.NewRequest("GET", path, nil)
		w := &discardWriter{header: http.Header{}}
		start := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(start)
		if w.code != 0 && w.code != 200 {
			b.Fatalf("%s: %d", path, w.code)
		}
		return d
	}
	// The first view starts the rule tests and waits for them up to a
	// limit; tests-ready is how long they take to show.
	start := time.Now()
	first := get("/console/rules")
	for {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/console/rules", nil))
		if strings.Contains(w.Body.String(), fmt.Sprintf("Tests: %d passed, 0 failed", n)) {
			break
		}
		if !strings.Contains(w.Body.String(), "tests-running") {
			b.Fatalf("the rule tests did not all pass:\n%.3000s", w.Body.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ready := time.Since(start)
	b.Run("rules-first", func(b *testing.B) {
		b.ReportMetric(float64(first.Microseconds())/1000, "ms")
		b.ReportMetric(float64(ready.Microseconds())/1000, "tests-ready-ms")
	})
	for _, p := range []struct{ name, path string }{
		{"status", "/console/"}, {"rules", "/console/rules"}, {"playground", "/console/playground"},
		{"playground-event", "/console/playground?event=1"}, {"dead-letters", "/console/dead-letters"},
		{"dead-letter", "/console/dead-letters/1"}, {"scheduled", "/console/scheduled"},
	} {
		b.Run(p.name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			for b.Loop() {
				times = append(times, get(p.path))
			}
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }

package backtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/rules"
)

// BenchmarkBacktest stores b.N events in a real NATS server, then times
// the backtest of a rule set against itself over them:
//
//	go test -run '^$' -bench Backtest -benchtime=1000000x ./bridge/backtest/
//
// "examples" are the example rules, on a mix of events of a week: orders
// (a third of them large enough for a thank-you), telemetry (throttled
// per workspace), leads, trials, and events no rule listens to. "rules=1000"
// are 1,000 rules, each on a subject of its own, on events spread over
// those subjects and as many that no rule listens on.
func BenchmarkBacktest(b *testing.B) {
	examples, err := rules.Load([]string{"../../examples/rules"}, rules.Options{DefaultAdminID: "1"})
	if err != nil {
		b.Fatal(err)
	}
	thousand := thousandRules(b)
	for _, bc := range []struct {
		name  string
		set   *rules.Set
		event func(i int) *event.Envelope
	}{
		{"examples", examples, exampleEvent},
		{"rules=1000", thousand, thousandEvent},
	} {
		b.Run(bc.name, func(b *testing.B) {
			js, top := benchStream(b)
			storeEvents(b, js, top, b.N, bc.event)
			resetPeakRSS(b)
			b.ResetTimer()
			cpu0 := cpuTime()
			start := time.Now()
			rep, err := Run(context.Background(), js, Options{Topology: top, Decoder: &event.Decoder{Stream: top.Events.Name, In: top.SourceSubject("")},
				Deployed: bc.set, Candidate: bc.set, Policy: pipeline.Policy{MaxAttempts: 3, OnUncertain: "resend"}, Samples: 3})
			elapsed, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if rep.Events != b.N {
				b.Fatalf("read %d events of %d", rep.Events, b.N)
			}
			matched, sent := 0, 0
			for _, r := range rep.Rules {
				matched += r.After.Matched
				sent += r.After.Sent
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(peakRSS(b)/(1<<20), "peak-RSS-MB")
			// The process's CPU (the NATS server in it included): what the
			// rate would be with the cores to itself.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
			b.ReportMetric(float64(matched)/float64(b.N), "matched/event")
			b.ReportMetric(float64(sent)/float64(b.N), "sent/event")
		})
	}
}

var benchT0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// at spreads n events over a week.
func at(i int) time.Time { return benchT0.Add(time.Duration(i) * 7 * 24 * time.Hour / 1_000_000) }

func exampleEvent(i int) *event.Envelope {
	env := &event.Envelope{ID: "ev-" + strconv.Itoa(i), Time: at(i)}
	switch i % 10 {
	case 0: // an order, a third of them over 100
		env.Source, env.Subject = "shop", "bridge.in.shop"
		env.Data = json.RawMessage(fmt.Sprintf(`{"type":"order.paid","order_id":%d,"amount":%d,"currency":"EUR","customer":{"id":"u-%d","first_name":"Ada"}}`,
			i, i%150+1, i%50_000))
	case 1: // a new lead
		env.Source, env.Subject = "crm", "crm.lead.created"
		env.Data = json.RawMessage(fmt.Sprintf(`{"email":"lead-%d@example.com","name":"Grace"}`, i))
	case 2: // a trial ending, owners of 10,000 accounts
		env.Source, env.Subject = "billing", "billing.trial.ending"
		env.Data = json.RawMessage(fmt.Sprintf(`{"account_id":%d,"days_left":%d,"ends_at":"2026-03-20T00:00:00Z","plan":{"name":"team","tier":"pro"},"owner":{"email":"o-%d@example.com","name":"Lin"}}`,
			i%10_000, i%7, i%10_000))
	case 3, 4, 5, 6, 7: // telemetry of 1,000 workspaces, one in ten near its quota
		env.Source, env.Subject = "telemetry", "telemetry.usage"
		env.Data = json.RawMessage(fmt.Sprintf(`{"workspace":"w-%d","used":%d,"quota":1000,"user":{"intercom_id":"ic-%d"}}`,
			i%1000, 500+i%500, i%1000))
	default: // something no rule listens to
		env.Source, env.Subject = "web", "web.page.viewed"
		env.Data = json.RawMessage(fmt.Sprintf(`{"path":"/pricing","visitor":%d}`, i))
	}
	return env
}

func thousandRules(b *testing.B) *rules.Set {
	var sb strings.Builder
	sb.WriteString("rules:\n")
	for i := range 1000 {
		fmt.Fprintf(&sb, `  - name: rule-%d
    on: {subjects: ["app.k%d"]}
    when: event.amount > 50
    message: {type: inapp, from: "1", to: {type: user, user_id: 'u-{{ .event.user }}'}, body: '<p>Hi {{ .event.name | default "there" }}, {{ .event.amount }}</p>'}
    dedupe: '{{ .event.user }}'
    throttle: {key: '{{ .event.user }}', per: 1h}
`, i, i)
	}
	set, err := rules.Parse([]rules.File{{Name: "thousand.yaml", Data: []byte(sb.String())}}, rules.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

// thousandEvent is on one of 2,000 subjects, half of them a rule's, from
// one of 1,000 users.
func thousandEvent(i int) *event.Envelope {
	return &event.Envelope{ID: "ev-" + strconv.Itoa(i), Source: "app", Subject: fmt.Sprintf("app.k%d", i%2000), Time: at(i),
		Data: json.RawMessage(fmt.Sprintf(`{"user":%d,"amount":%d,"name":"Ada"}`, i%1000, i%100))}
}

// benchStream is a NATS server with the bridge's streams.
func benchStream(b *testing.B) (jetstream.JetStream, broker.Topology) {
	js := natstest.JetStream(b)
	top := broker.NewTopology(broker.TopologyOptions{Prefix: "bridge", Replicas: 1, EventsMaxAge: 7 * 24 * time.Hour,
		Duplicates: time.Minute, DedupeWindow: 7 * 24 * time.Hour})
	if _, err := js.CreateStream(context.Background(), top.Events); err != nil {
		b.Fatal(err)
	}
	return js, top
}

// storeEvents stores n envelopes as the webhooks do, without their
// Nats-Msg-Id: a million ids would fill the duplicate window's memory,
// which the backtest does not read.
func storeEvents(b *testing.B, js jetstream.JetStream, top broker.Topology, n int, mk func(int) *event.Envelope) {
	for i := range n {
		env := mk(i)
		m, err := env.Msg(top.SourceSubject(env.Source))
		if err != nil {
			b.Fatal(err)
		}
		m.Header.Del(nats.MsgIdHdr)
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 || i == n-1 { // within the client's limit of acks outstanding
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("storing the events took too long")
			}
		}
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetPeakRSS restarts the kernel's count of the process's peak
// resident memory (VmHWM), so that it covers the backtest alone.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS: %v", err)
	}
}

// peakRSS is VmHWM in bytes: the process's peak resident memory, the NATS
// server in it included.
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
)

// "bridge-load compare -intake" measures webhook intake instead: each
// contender takes -events POSTs from -concurrency senders, each signed
// (standard-webhooks, a unique webhook-id) and answered only once stored
// in the NATS server:
//
//   - bridge: its webhook source, signatures checked and ids deduplicated;
//     no event matches a rule, so stage 1 reads and acks every one and
//     nothing is sent;
//   - engine: -engine, told by intakeEnv where to listen and where to
//     store, such as bench/benthos-intake.sh;
//   - ceiling: the ceiling subcommand with -listen, a bare HTTP server
//     that stores each body with a JetStream publish and answers 200.
//
// A run is timed from the first POST to the last answer; its CPU is the
// contender's and the NATS server's over that time.

// intakeStream holds what the engine and the ceiling store: one stream per
// run, <intakeStream>_<run> on intake.<run>.
const intakeStream = "INTAKE"

// runIntake runs contender k's intake once, as the run name, its files in
// dir.
func (c *comparison) runIntake(ctx context.Context, k contender, round int, name, dir string) (*compareRun, error) {
	p := newPhase(0, c.o.events, 0, c.o.rules) // nothing matches: intake only
	d := &webhookDriver{runID: name, client: newHTTPClient(c.o.concurrency)}
	var proc *child
	var profile func() // as the POSTs start; nil: none
	stored := func(ctx context.Context) (uint64, error) { return c.streamMsgs(ctx, intakeStream+"_"+name) }
	switch k.mode {
	case "bridge", "intake":
		o := *c.o
		o.state = stateConfig{natsURL: c.nats.url, prefix: name}
		var prepare func(string) error
		if k.mode == "intake" {
			prepare = func(cfgPath string) error { return prependLine(cfgPath, "role: intake") }
		}
		bp, err := startBridge(ctx, k.bin, dir, &o, c.fake.url, c.fake.token, prepare)
		if err != nil {
			return nil, err
		}
		defer c.stopChild(bp.child)
		proc, d.url, d.secret = bp.child, bp.webhookURL, bp.secret
		var wait func()
		profile, _, wait = c.profiler(ctx, bp.adminURL, name)
		defer wait() // before the stop: the profile ends first
		events := broker.NewTopology(broker.TopologyOptions{Prefix: name}).Events.Name
		stored = func(ctx context.Context) (uint64, error) { return c.streamMsgs(ctx, events) }
	default: // engine, ceiling
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		subject := "intake." + name
		if _, err := c.js.CreateStream(ctx, jetstream.StreamConfig{Name: intakeStream + "_" + name, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
			return nil, fmt.Errorf("stream %s_%s: %w", intakeStream, name, err)
		}
		bin, args, env := c.exe, []string{"ceiling", "-nats", c.nats.url, "-listen", addr, "-subject", subject}, []string(nil)
		if k.mode == "engine" {
			bin, args, env = k.bin, nil, []string{"NATS_URL=" + c.nats.url, "LISTEN=" + addr, "INTAKE_SUBJECT=" + subject,
				fmt.Sprintf("IN_FLIGHT=%d", c.o.concurrency)}
		}
		ch, err := startChild("the "+k.mode, bin, args, env, filepath.Join(dir, k.mode+".log"))
		if err != nil {
			return nil, err
		}
		defer c.stopChild(ch)
		if err := waitListening(ctx, ch, addr, time.Minute); err != nil {
			return nil, err
		}
		proc, d.url = ch, "http://"+addr+"/hook"
		var wait func()
		profile, _, wait = c.profiler(ctx, "", name)
		defer wait()
	}

	own0, srv0, err := c.sample(proc)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	p.start = t0
	if profile != nil {
		profile()
	}
	d.drive(ctx, p, 0, c.o.concurrency, c.o.rules)
	elapsed := time.Since(t0)
	own1, srv1, err := c.sample(proc)
	if err != nil {
		return nil, err
	}
	r := &compareRun{Contender: k.name, Round: round, TimedOut: ctx.Err() != nil}
	accepted := p.nAccepted.Load()
	r.setRates(accepted, elapsed, own0, srv0, own1, srv1)
	var h histogram
	for i := range p.sent {
		if a := p.accepted[i].Load(); a != 0 {
			h.Record(time.Duration(a - p.sent[i].Load()))
		}
	}
	r.P50Ms, r.P99Ms = ms(h.Percentile(50)), ms(h.Percentile(99))
	// Answered means stored: every accepted POST is in the stream, once.
	n, err := stored(ctx)
	if err != nil {
		return nil, err
	}
	r.Sends, r.Lost = int64(n), c.o.events-int(accepted)
	if int64(n) != accepted {
		return nil, fmt.Errorf("%d POSTs accepted, %d events stored", accepted, n)
	}
	r.LoadAvg = loadAverage()
	return r, nil
}

// streamMsgs is the number of messages in stream.
func (c *comparison) streamMsgs(ctx context.Context, stream string) (uint64, error) {
	s, err := c.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return info.State.Msgs, nil
}

// stopChild stops ch, reporting a failure to stop.
func (c *comparison) stopChild(ch interface{ stop() error }) {
	if err := ch.stop(); err != nil {
		fmt.Fprintf(c.stderr, "bridge-load compare: %v\n", err)
	}
}

// waitListening waits until something accepts connections on addr.
func waitListening(ctx context.Context, ch *child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-ch.exited:
			return fmt.Errorf("%s exited at start: %v\n%s", ch.name, ch.exitErr, ch.logTail(20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not listening on %s after %s\n%s", ch.name, addr, timeout, ch.logTail(20))
		}
	}
}

// serveIntake is the ceiling of intake: it stores each POSTed body in the
// stream with a JetStream publish and answers 200 once stored, 503 if not.
func serveIntake(ctx context.Context, nc *nats.Conn, listen, subject string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: listen, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := js.Publish(r.Context(), subject, body); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	})
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// compareIntake runs every contender's intake, interleaved, and prints
// the medians.
func (c *comparison) compareIntake(ctx context.Context, bin string, stdout io.Writer) ([]*compareRun, error) {
	o, co := c.o, c.co
	// The intake role stores and answers, as the engine and the ceiling
	// do; the whole bridge also matches every event it stores, on the
	// same two cores.
	contenders := []contender{{"bridge, signed webhooks", "w", "bridge", bin}, {"bridge, role intake, signed webhooks", "wi", "intake", bin}}
	if co.baseline != "" {
		contenders = append(contenders, contender{"baseline, signed webhooks", "pw", "bridge", co.baseline})
	}
	if co.engine != "" {
		contenders = append(contenders, contender{"engine " + filepath.Base(co.engine), "e", "engine", co.engine})
	}
	contenders = append(contenders, contender{"ceiling (POST, publish, 200)", "x", "ceiling", ""})
	fmt.Fprintf(c.stderr, "bridge-load compare: webhook intake, %d events from %d senders per run, %d rounds, load average %s\n",
		o.events, o.concurrency, co.rounds, loadAverage())
	loadStart := loadAverage()
	runs, err := c.eachRound(ctx, contenders, c.runIntake,
		func(k contender, r *compareRun) string {
			return fmt.Sprintf("%-32s %8.0f req/s  p50 %.2f ms  p99 %.2f ms  %.3f / %.3f CPU s per 10k  %5.1f MB  (%d stored, %d not accepted; load %s)",
				k.name, r.EventsPerSec, r.P50Ms, r.P99Ms, r.CPUPer10k, r.CPUPer10kAll, r.PeakRSSMB, r.Sends, r.Lost, r.LoadAvg)
		})
	if err != nil {
		return runs, err
	}
	printIntake(stdout, o, contenders, runs, loadStart, loadAverage())
	return runs, nil
}

// printIntake prints the medians per contender as a Markdown table.
func printIntake(w io.Writer, o *options, contenders []contender, runs []*compareRun, loadStart, loadEnd string) {
	type row struct{ rate, p50, p99, cpu, cpuAll, rss float64 }
	med := map[string]row{}
	for _, k := range contenders {
		var rate, p50, p99, cpu, cpuAll, rss []float64
		for _, r := range runs {
			if r.Contender == k.name {
				rate, p50, p99 = append(rate, r.EventsPerSec), append(p50, r.P50Ms), append(p99, r.P99Ms)
				cpu, cpuAll, rss = append(cpu, r.CPUPer10k), append(cpuAll, r.CPUPer10kAll), append(rss, r.PeakRSSMB)
			}
		}
		med[k.name] = row{median(rate), median(p50), median(p99), median(cpu), median(cpuAll), median(rss)}
	}
	ceil := med[contenders[len(contenders)-1].name]
	fmt.Fprintf(w, "\nwebhook intake: %d POSTs per run from %d senders, answered once stored; medians of %d interleaved rounds; load average %s at the start, %s at the end\n\n",
		o.events, o.concurrency, len(runs)/len(contenders), loadStart, loadEnd)
	fmt.Fprintln(w, "| contender | req/s | p50 / p99 | CPU s per 10k (process / + nats-server) | peak RSS | req/s vs ceiling | CPU (+ nats-server) vs ceiling |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range contenders {
		m := med[k.name]
		fmt.Fprintf(w, "| %s | %s | %.2f / %.2f ms | %.3f / %.3f | %.0f MB | %.2fx | %.1fx |\n",
			k.name, thousands(m.rate), m.p50, m.p99, m.cpu, m.cpuAll, m.rss, m.rate/ceil.rate, m.cpuAll/ceil.cpuAll)
	}
	for _, k := range contenders {
		if k.mode != "engine" {
			continue
		}
		fmt.Fprintln(w)
		for _, b := range contenders[:2] {
			m, e := med[b.name], med[k.name]
			fmt.Fprintf(w, "%s / %s: %.2fx req/s, %.2fx CPU per request (+ nats-server)\n", b.name, k.name, m.rate/e.rate, m.cpuAll/e.cpuAll)
		}
	}
}

// prependLine puts line at the top of the file at path.
func prependLine(path, line string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(line+"\n"), b...), 0o600)
}

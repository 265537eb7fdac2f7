// Command bridge-load drives a bridge with events and measures what comes
// out at a fake Intercom: throughput in and out, end-to-end latency
// (accepted by the bridge -> received by Intercom), duplicates, losses,
// 429s, and the bridge process's CPU and memory.
//
// By default it builds ./cmd/bridge, starts it as a subprocess on a temp
// config (embedded NATS, a webhook source "hook", a NATS capture source
// "app" on app.>, -rules rules) pointed at a fake Intercom it serves
// in-process, then sends -events events over -via at -rate events/s.
// With -sweep it runs one fixed-rate step per offered load and plots the
// latency against the load as an SVG picture.
//
// It runs the bridge as a separate process, so that it measures what a
// user runs; of the bridge's packages it imports only webhook (to sign
// what it sends) and the fake Intercom.
//
//	go run ./cmd/bridge-load -events 10000 -via nats -rate 0
//	go run ./cmd/bridge-load -via webhook -rate 200 -events 4000 -match 1
//	go run ./cmd/bridge-load -sweep 200,500,1000,2000,5000 -duration 20s -plot docs/latency.svg
//
// "bridge-load soak" sends a million messages and reports how the bridge's
// memory and the state it keeps grow with them (see soak.go).
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the flags.
type options struct {
	events      int
	duration    time.Duration
	rate        float64
	via         string
	match       float64
	rules       int
	concurrency int
	workers     int
	rateLimit   int
	icLatency   time.Duration
	icLimit     int
	timeout     time.Duration
	warmup      time.Duration
	idle        time.Duration
	bridgePath  string
	target      string
	natsURL     string
	secret      string
	subject     string
	wait        time.Duration
	pid         int
	first       int64
	sweep       []float64
	plot        string
	jsonPath    string
	keep        bool
	quiet       bool
	backlog     int         // soak: the bound of phase.maxBacklog
	state       stateConfig // set by soak and compare; the flags of a load run leave the defaults
	sources     string      // set by compare: the bridge's sources: list (see bridgeConfig)
	pprof       bool        // set by compare -cpuprofile: admin.pprof on
}

func newFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bridge-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bridge-load [flags]\n       bridge-load soak [flags]\n\nDrives a bridge with events and reports throughput, latency to a fake Intercom, CPU and memory.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseOptions parses args; when it returns ok false, the command ends
// with code (-h: 0, a bad flag: 2).
func parseOptions(args []string, stderr io.Writer) (o *options, code int, ok bool) {
	o = &options{}
	fs := newFlagSet(stderr)
	fs.IntVar(&o.events, "events", 10000, "`number` of events to send (per sweep step)")
	fs.DurationVar(&o.duration, "duration", 0, "with a -rate or -sweep: send for this long per step instead of -events")
	fs.Float64Var(&o.rate, "rate", 0, "offered load, `events/s` (0: as fast as the bridge takes them)")
	fs.StringVar(&o.via, "via", "nats", "how events go in: nats (JetStream publish to app.events) or webhook (signed POSTs)")
	fs.Float64Var(&o.match, "match", 0.1, "share of events that match a rule, 0..1")
	fs.IntVar(&o.rules, "rules", 100, "`number` of rules; rule i matches event.kind == \"k<i>\"")
	fs.IntVar(&o.concurrency, "concurrency", 64, "webhook senders")
	fs.IntVar(&o.workers, "workers", 32, "the bridge's delivery.workers")
	fs.IntVar(&o.rateLimit, "rate-limit", 10000, "the bridge's intercom.rate_limit_per_minute")
	fs.DurationVar(&o.icLatency, "intercom-latency", 0, "the fake Intercom's answer delay")
	fs.IntVar(&o.icLimit, "intercom-limit", 0, "the fake Intercom's limit in requests per 10 s window, answering 429 beyond it (0: none)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a run (or a sweep step) after this long")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "wait this long after the bridge is ready before measuring it idle")
	fs.DurationVar(&o.idle, "idle", 2*time.Second, "measure the idle bridge's CPU over this long")
	fs.StringVar(&o.bridgePath, "bridge", "", "the bridge binary `path` (default: go build ./cmd/bridge into a temp dir)")
	fs.StringVar(&o.target, "target", "", "drive a running bridge instead: its webhook `URL`, e.g. http://127.0.0.1:8080/hooks/shop")
	fs.StringVar(&o.natsURL, "nats", "", "drive a running bridge instead: its NATS `URL`")
	fs.StringVar(&o.secret, "secret", "", "with -target: the source's standard-webhooks secret (empty: unsigned)")
	fs.StringVar(&o.subject, "subject", "app.events", "the NATS subject events are published to")
	fs.DurationVar(&o.wait, "wait", 15*time.Second, "with -target or -nats: time to point the bridge at the fake Intercom before the load starts")
	fs.IntVar(&o.pid, "pid", 0, "with -target or -nats: the bridge's process id, to sample its CPU and memory")
	fs.Int64Var(&o.first, "first", 0, "the first event's n (against a running bridge, use a new range per run: its ledger drops dedupe keys it has sent)")
	sweep := fs.String("sweep", "", "comma-separated offered loads, `events/s`: one fixed-rate run each, then a plot")
	fs.StringVar(&o.plot, "plot", "latency.svg", "with -sweep: the SVG `file` to write")
	fs.StringVar(&o.jsonPath, "json", "", "also write the report as JSON to `file`")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (config, rules, data, bridge log)")
	fs.BoolVar(&o.quiet, "q", false, "no progress lines")
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	bad := func(format string, args ...any) (*options, int, bool) {
		fmt.Fprintf(stderr, "bridge-load: "+format+"\n", args...)
		return nil, 2, false
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *sweep != "" {
		for _, s := range strings.Split(*sweep, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || r <= 0 {
				return bad("-sweep: %q is not a positive rate", s)
			}
			o.sweep = append(o.sweep, r)
		}
	}
	switch {
	case o.via != "nats" && o.via != "webhook":
		return bad("-via must be nats or webhook, not %q", o.via)
	case o.events <= 0 && (o.duration <= 0 || (o.rate == 0 && o.sweep == nil)):
		return bad("-events must be positive (or give -duration with -rate or -sweep)")
	case o.match < 0 || o.match > 1:
		return bad("-match must be between 0 and 1")
	case o.rules < 1:
		return bad("-rules must be at least 1")
	case o.rate < 0:
		return bad("-rate must not be negative")
	case o.concurrency < 1 || o.workers < 1 || o.rateLimit < 1:
		return bad("-concurrency, -workers and -rate-limit must be positive")
	case o.via == "webhook" && o.natsURL != "" && o.target == "":
		return bad("-via webhook against a running bridge needs -target")
	case o.via == "nats" && o.target != "" && o.natsURL == "":
		return bad("-via nats against a running bridge needs -nats")
	case o.sweep != nil && !strings.EqualFold(filepath.Ext(o.plot), ".svg"):
		return bad("-plot: the plot is an SVG picture; name it *.svg, not %q", o.plot)
	}
	return o, 0, true
}

// parseFlags parses args; when it returns ok false, the command ends with
// code (-h: 0, a bad flag: 2).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// sleepCtx waits for d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is main without os.Exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "soak":
			return soak(ctx, args[1:], stdout, stderr)
		case "compare":
			return compare(ctx, args[1:], stdout, stderr)
		case "serve-nats":
			return serveNATS(ctx, args[1:], stderr)
		case "ceiling":
			return ceiling(ctx, args[1:], stderr)
		}
	}
	o, code, ok := parseOptions(args, stderr)
	if !ok {
		return code
	}
	reports, err := execute(ctx, o, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-load: %v\n", err)
		return 1
	}
	for _, r := range reports {
		if r.Lost > 0 || r.TimedOut {
			return 1
		}
	}
	return 0
}

// env is the bridge under load.
type env struct {
	pid        int        // 0: not sampled
	nc         *nats.Conn // -via nats
	natsURL    string
	webhookURL string
	secret     string
	// watch, when set, runs alongside a phase until stop is closed (soak's
	// sampler).
	watch func(p *phase, stop <-chan struct{})
}

// execute starts the fake Intercom and the bridge, runs the load (or the
// sweep), and prints and writes the reports.
func execute(ctx context.Context, o *options, stdout, stderr io.Writer) ([]*report, error) {
	fake, rec := newFake(o)
	defer fake.Close()

	var e env
	if o.target != "" || o.natsURL != "" {
		e = env{pid: o.pid, natsURL: o.natsURL, webhookURL: o.target, secret: o.secret}
		fmt.Fprintf(stderr, "bridge-load: fake Intercom up; point the bridge at it, with rules matching event.kind == \"k0\".. and sending to the Intercom id '{{ .event.user }}':\n")
		fmt.Fprintf(stderr, "  intercom.base_url: %s\n  intercom.token:    %s\n  admin id:          %s\n", fake.URL(), fake.Token(), adminID)
		fmt.Fprintf(stderr, "bridge-load: starting in %s\n", o.wait)
		select {
		case <-time.After(o.wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		dir, err := os.MkdirTemp("", "bridge-load-")
		if err != nil {
			return nil, err
		}
		if o.keep {
			fmt.Fprintf(stderr, "bridge-load: keeping %s\n", dir)
		} else {
			defer os.RemoveAll(dir)
		}
		bin := o.bridgePath
		if bin == "" {
			if bin, err = buildBridge(ctx, dir, stderr); err != nil {
				return nil, err
			}
		}
		bp, err := startBridge(ctx, bin, dir, o, fake.URL(), fake.Token(), nil)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := bp.stop(); err != nil {
				fmt.Fprintf(stderr, "bridge-load: %v\n", err)
			}
		}()
		e = env{pid: bp.pid(), natsURL: bp.natsURL, webhookURL: bp.webhookURL, secret: bp.secret}
		fmt.Fprintf(stderr, "bridge-load: bridge ready (pid %d), %d rules, webhooks %s, NATS %s\n", e.pid, o.rules, e.webhookURL, e.natsURL)
	}

	if o.via == "nats" {
		nc, err := nats.Connect(e.natsURL, nats.Name("bridge-load"))
		if err != nil {
			return nil, fmt.Errorf("nats %s: %w", e.natsURL, err)
		}
		defer nc.Close()
		e.nc = nc
	}

	idle, err := measureIdle(ctx, e.pid, o.warmup, o.idle)
	if err != nil {
		return nil, err
	}

	rates := o.sweep
	if rates == nil {
		rates = []float64{o.rate}
	}
	var reports []*report
	base := o.first
	runID := randomID()
	for _, rate := range rates {
		n := o.events
		if o.duration > 0 && rate > 0 {
			n = max(int(rate*o.duration.Seconds()), 1)
		}
		r, err := runPhase(ctx, o, e, rec, runID, base, n, rate, stderr)
		if err != nil {
			return reports, err
		}
		base += int64(n)
		r.Idle = idle
		reports = append(reports, r)
		r.print(stdout)
		if ctx.Err() != nil {
			break
		}
	}
	if s := rec.stray.Load(); s > 0 {
		fmt.Fprintf(stderr, "bridge-load: %d messages reached the fake for no event of the run in progress\n", s)
	}

	var out any = reports[0]
	if o.sweep != nil {
		pts := make([]sweepPoint, len(reports))
		for i, r := range reports {
			pts[i] = sweepPoint{Rate: r.OfferedRate, P50: r.Latency.P50, P99: r.Latency.P99}
		}
		printSweep(stdout, reports)
		if err := writeLatencyPlot(o.plot, pts, 900, 560); err != nil {
			return reports, fmt.Errorf("plot: %w", err)
		}
		fmt.Fprintf(stderr, "bridge-load: wrote %s (%s)\n", o.plot, plotSummary(pts))
		out = struct {
			Steps []*report `json:"steps"`
			Plot  string    `json:"plot"`
		}{reports, o.plot}
	}
	if o.jsonPath != "" {
		if err := writeJSON(o.jsonPath, out); err != nil {
			return reports, err
		}
	}
	return reports, nil
}

// writeJSON writes v, indented, to path.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// newFake serves the fake Intercom, its requests handed to rec.
func newFake(o *options) (*intercomtest.Server, *recorder) {
	rec := &recorder{}
	fake := intercomtest.NewServer(
		intercomtest.WithPermissive(true),
		intercomtest.WithRecordLimit(1),
		intercomtest.WithRequestHook(rec.hook),
	)
	fake.AddAdmin(adminID, "Load Test", "load@example.com")
	if o.icLatency > 0 {
		fake.SetDelay(o.icLatency)
	}
	// Without -ic-limit the fake states a limit nothing reaches: the
	// bridge paces to the limit Intercom states.
	fake.SetWindowLimit(cmp.Or(o.icLimit, 1<<30), intercomtest.DefaultWindow)
	return fake, rec
}

func randomID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// measureIdle waits out the warm-up, then measures the bridge's CPU over
// the idle window and its RSS at the end of it.
func measureIdle(ctx context.Context, pid int, warmup, idle time.Duration) (idleStats, error) {
	if pid == 0 {
		return idleStats{}, nil
	}
	if err := sleepCtx(ctx, warmup); err != nil {
		return idleStats{}, err
	}
	s0, err := readProc(pid)
	if err != nil {
		return idleStats{}, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, idle); err != nil {
		return idleStats{}, err
	}
	s1, err := readProc(pid)
	if err != nil {
		return idleStats{}, err
	}
	return idleStats{
		RSSMB:      mb(s1.RSS),
		CPUPercent: 100 * (s1.CPU - s0.CPU).Seconds() / time.Since(t0).Seconds(),
	}, nil
}

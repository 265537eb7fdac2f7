package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/config"
)

// "bridge-load compare" stores -events events once in an external NATS
// server (serve-nats, a process of its own) and delivers them, over
// -rounds interleaved rounds, with each contender in turn:
//
//   - capture: the bridge, the events in its events stream as a capture
//     source's (copied there before it starts);
//   - bind: the bridge, reading the stream LOAD with a bind source;
//   - ceiling: the ceiling subcommand on LOAD (see ceiling.go);
//
// with -baseline, capture and bind again with another bridge binary (an
// earlier commit's); and with -engine, another program on LOAD, such as
// bench/benthos.sh (see engineEnv). Every contender sends to the same fake Intercom,
// with the bridge's pacing lifted. A run is timed from the first message
// at the fake to the last matching one; its CPU is the contender's process
// and the NATS server's over that time, from /proc.
//
//	go run ./cmd/bridge-load compare -events 100000 -rounds 3
//
// With -intake it measures webhook intake instead (see intake.go).

// compareOptions are the flags of compare.
type compareOptions struct {
	load     *options // the bridge's settings: -rules, -match, -workers, -bridge, -timeout, -keep
	rounds   int
	inFlight int
	baseline string
	engine   string
	jsonPath string
	// profileDir, when set, receives a CPU profile of each bridge run
	// (<run>.pprof), taken over profileFor from its first message.
	profileDir string
	profileFor time.Duration
	intake     bool // webhook intake instead (see intake.go)
}

// loadStream holds the stored events that bind and the ceiling read.
const (
	loadStream  = "LOAD"
	loadSubject = "load.events"
)

func parseCompareOptions(args []string, stderr io.Writer) (*compareOptions, int, bool) {
	fs := flag.NewFlagSet("bridge-load compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bridge-load compare [flags]\n\nDelivers the same stored events with the bridge in capture mode, in bind mode, and a minimal consumer (the ceiling), interleaved, and prints events/s, CPU and memory of each.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	o := &options{rateLimit: 100_000_000, via: "nats"}
	co := &compareOptions{load: o}
	fs.IntVar(&o.events, "events", 100000, "`number` of events stored")
	fs.Float64Var(&o.match, "match", 0.5, "share of events that match a rule, 0..1")
	fs.IntVar(&o.rules, "rules", 10, "`number` of rules; rule i matches event.kind == \"k<i>\"")
	fs.IntVar(&o.workers, "workers", 32, "the bridge's delivery.workers, and the ceiling's messages in flight")
	fs.StringVar(&o.bridgePath, "bridge", "", "the bridge binary `path` (default: go build ./cmd/bridge into a temp dir)")
	fs.StringVar(&co.baseline, "baseline", "", "another bridge binary `path` to run in both modes too (an earlier commit's)")
	fs.StringVar(&co.engine, "engine", "", "an executable `path` to run as a contender too, such as bench/benthos.sh (see BENCHMARKS.md)")
	fs.IntVar(&co.rounds, "rounds", 3, "rounds; each runs every contender once, in an order rotated by one and reversed every other round")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a run after this long")
	fs.StringVar(&co.jsonPath, "json", "", "also write every run as JSON to `file`")
	fs.StringVar(&co.profileDir, "cpuprofile", "", "write CPU profiles of each run into `dir`, over -profile-for from its first message: the bridge's (<run>.pprof; turns admin.pprof on) and the NATS server's (<run>-nats.pprof); and, if no message reaches the fake for a second, the bridge's goroutines (<run>-pause.txt) and the server's consumers (<run>-consumers.json)")
	fs.DurationVar(&co.profileFor, "profile-for", 3*time.Second, "how long each -cpuprofile profile lasts")
	fs.BoolVar(&co.intake, "intake", false, "measure webhook intake instead: -events signed POSTs from -concurrency senders, answered once stored (see intake.go)")
	fs.IntVar(&o.concurrency, "concurrency", 64, "with -intake: concurrent webhook senders")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (configs, logs, the NATS store)")
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "bridge-load compare: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return nil, 2, false
	case o.events < 1 || o.rules < 1 || o.workers < 1 || co.rounds < 1 || o.concurrency < 1:
		fmt.Fprintln(stderr, "bridge-load compare: -events, -rules, -workers, -rounds and -concurrency must be positive")
		return nil, 2, false
	case o.match <= 0 || o.match > 1:
		fmt.Fprintln(stderr, "bridge-load compare: -match must be above 0 and at most 1")
		return nil, 2, false
	}
	co.inFlight = o.workers
	o.pprof = co.profileDir != ""
	return co, 0, true
}

func compare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	co, code, ok := parseCompareOptions(args, stderr)
	if !ok {
		return code
	}
	runs, err := runCompare(ctx, co, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-load compare: %v\n", err)
		return 1
	}
	if co.jsonPath != "" {
		if err := writeJSON(co.jsonPath, runs); err != nil {
			fmt.Fprintf(stderr, "bridge-load compare: %v\n", err)
			return 1
		}
	}
	for _, r := range runs {
		if r.Lost > 0 || r.Duplicates > 0 || r.TimedOut {
			return 1
		}
	}
	return 0
}

// contender is one way of delivering the stored events.
type contender struct {
	name string // as the table shows it
	tag  string // starts the NATS prefix and consumer names of its runs
	mode string // capture, bind, engine or ceiling
	bin  string // the bridge binary, or the engine's; "" for the ceiling
}

// compareRun is one contender's run.
type compareRun struct {
	Contender    string  `json:"contender"`
	Round        int     `json:"round"`
	EventsPerSec float64 `json:"events_per_sec"`
	CPUPer10k    float64 `json:"cpu_s_per_10k"`          // the contender's process
	CPUPer10kAll float64 `json:"cpu_s_per_10k_and_nats"` // and the NATS server's
	PeakRSSMB    float64 `json:"peak_rss_mb"`            // the contender's VmHWM
	FirstAfter   float64 `json:"first_message_after_s"`  // from its start
	LongestPause float64 `json:"longest_pause_s"`        // with no new message at the fake, after the first (5 ms steps)
	P50Ms        float64 `json:"p50_ms,omitempty"`       // -intake: POST to answer
	P99Ms        float64 `json:"p99_ms,omitempty"`
	Sends        int64   `json:"sends"`
	Duplicates   int64   `json:"duplicates"`
	Lost         int     `json:"lost"`
	TimedOut     bool    `json:"timed_out"`
	Warnings     int     `json:"warnings,omitempty"`      // a bridge's log lines at warn or above
	FirstWarning string  `json:"first_warning,omitempty"` // the first one's message
	LoadAvg      string  `json:"load_average"`            // /proc/loadavg at the end
}

// roundOrder is the order in which a round runs n contenders: rotated by
// one each round, so that no contender always runs first, and reversed
// every other round, so that none always runs after the same one (a run's
// clean-up, its streams deleted, goes on in the NATS server during the
// next run).
func roundOrder(n, round int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = (i + round - 1) % n
	}
	if round%2 == 0 {
		slices.Reverse(order)
	}
	return order
}

// warned is what a run's line says of its log's warnings: nothing when
// there are none.
func (r *compareRun) warned() string {
	if r.Warnings == 0 {
		return ""
	}
	return fmt.Sprintf("; %d warnings in its log, the first: %s", r.Warnings, r.FirstWarning)
}

// comparison is what every run of a compare shares.
type comparison struct {
	o      *options
	co     *compareOptions
	dir    string
	exe    string // this command, for the ceiling
	nats   *natsProc
	js     jetstream.JetStream
	fake   fakeIntercom
	rec    *recorder
	stderr io.Writer
}

// fakeIntercom is what the runs need of the fake.
type fakeIntercom struct{ url, token string }

func runCompare(ctx context.Context, co *compareOptions, stdout, stderr io.Writer) ([]*compareRun, error) {
	o := co.load
	fake, rec := newFake(o)
	defer fake.Close()
	dir, err := os.MkdirTemp("", "bridge-compare-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(stderr, "bridge-load compare: keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bin := o.bridgePath
	if bin == "" {
		if bin, err = buildBridge(ctx, dir, stderr); err != nil {
			return nil, err
		}
	}
	ns, err := startNATS(ctx, dir, co.profileDir != "")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := ns.stop(); err != nil {
			fmt.Fprintf(stderr, "bridge-load compare: %v\n", err)
		}
	}()
	nc, err := nats.Connect(ns.url, nats.Name("bridge-load compare"))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", ns.url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	c := &comparison{o: o, co: co, dir: dir, exe: exe, nats: ns, js: js, fake: fakeIntercom{fake.URL(), fake.Token()}, rec: rec, stderr: stderr}

	if co.intake {
		return c.compareIntake(ctx, bin, stdout)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: loadStream, Subjects: []string{loadSubject}, Storage: jetstream.FileStorage}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", loadStream, err)
	}
	if err := c.storeEvents(ctx, nc, loadSubject); err != nil {
		return nil, err
	}
	contenders := []contender{{"bridge, capture mode", "c", "capture", bin}, {"bridge, bind mode", "b", "bind", bin}}
	if co.baseline != "" {
		contenders = append(contenders, contender{"baseline, capture mode", "pc", "capture", co.baseline}, contender{"baseline, bind mode", "pb", "bind", co.baseline})
	}
	if co.engine != "" {
		contenders = append(contenders, contender{"engine " + filepath.Base(co.engine), "e", "engine", co.engine})
	}
	contenders = append(contenders, contender{"ceiling + ledger (pending, POST, sent, ack)", "f", "floor", ""},
		contender{"ceiling (consume, filter, POST, ack)", "x", "ceiling", ""})

	fmt.Fprintf(stderr, "bridge-load compare: %d events stored in %s (%g%% matching, %d rules), %d rounds, load average %s\n",
		o.events, loadStream, o.match*100, o.rules, co.rounds, loadAverage())
	loadStart := loadAverage()
	runs, err := c.eachRound(ctx, contenders, c.run,
		func(k contender, r *compareRun) string {
			return fmt.Sprintf("%-38s %8.0f events/s  %.3f / %.3f CPU s per 10k  %5.1f MB  (first message after %.2f s, longest pause %.2f s; %d sent, %d lost, %d duplicates; load %s)%s",
				k.name, r.EventsPerSec, r.CPUPer10k, r.CPUPer10kAll, r.PeakRSSMB, r.FirstAfter, r.LongestPause, r.Sends, r.Lost, r.Duplicates, r.LoadAvg, r.warned())
		})
	if err != nil {
		return runs, err
	}
	printComparison(stdout, o, contenders, runs, loadStart, loadAverage())
	return runs, nil
}

// runFunc runs contender k once in a round, as the run name (its NATS
// prefix and durable), its files in dir.
type runFunc func(ctx context.Context, k contender, round int, name, dir string) (*compareRun, error)

// eachRound runs every contender once a round, in roundOrder, each run in a
// directory of its own and followed by the clean-up of what it left in the
// NATS server, and prints each run's line as describe words it.
func (c *comparison) eachRound(ctx context.Context, contenders []contender, run runFunc, describe func(contender, *compareRun) string) ([]*compareRun, error) {
	var runs []*compareRun
	for round := 1; round <= c.co.rounds; round++ {
		for _, i := range roundOrder(len(contenders), round) {
			k := contenders[i]
			name := fmt.Sprintf("%s%d", k.tag, round)
			dir := filepath.Join(c.dir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return runs, err
			}
			r, err := run(ctx, k, round, name, dir)
			c.cleanUp(ctx) // once the run has stopped its processes
			if err != nil {
				return runs, fmt.Errorf("%s, round %d: %w", k.name, round, err)
			}
			fmt.Fprintf(c.stderr, "bridge-load compare: round %d  %s\n", round, describe(k, r))
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// storeEvents publishes the events, numbered from 0, to subject and waits
// until JetStream has stored every one.
func (c *comparison) storeEvents(ctx context.Context, nc *nats.Conn, subject string) error {
	p := newPhase(0, c.o.events, c.o.match, c.o.rules)
	if err := driveNATS(ctx, p, nc, subject, 0, c.o.rules); err != nil {
		return fmt.Errorf("store the events: %w", err)
	}
	if n := p.nAccepted.Load(); n != int64(c.o.events) {
		return fmt.Errorf("store the events: %d of %d stored", n, c.o.events)
	}
	return nil
}

// run delivers the stored events with k once, as the run name, its files
// in dir.
func (c *comparison) run(ctx context.Context, k contender, round int, name, dir string) (*compareRun, error) {
	p := newPhase(0, c.o.events, c.o.match, c.o.rules)
	now := time.Now()
	for i := range p.matching {
		p.accept(i, now) // every event is stored already
	}
	c.rec.cur.Store(p)
	defer c.rec.cur.CompareAndSwap(p, nil)

	start := time.Now()
	var proc *child
	var profile, paused func() // at the first message, and when the run stops moving; nil: none
	switch k.mode {
	case "ceiling", "floor", "engine":
		bin, args, env := c.exe, []string{"ceiling", "-nats", c.nats.url, "-stream", loadStream, "-durable", name,
			"-intercom", c.fake.url, "-token", c.fake.token, "-inflight", fmt.Sprint(c.co.inFlight)}, []string(nil)
		if k.mode == "floor" {
			args = append(args, "-ledger")
		}
		if k.mode == "engine" {
			bin, args, env = k.bin, nil, c.engineEnv(name)
		}
		ch, err := startChild("the "+k.mode, bin, args, env, filepath.Join(dir, k.mode+".log"))
		if err != nil {
			return nil, err
		}
		proc = ch
		defer func() {
			if err := ch.stop(); err != nil {
				fmt.Fprintf(c.stderr, "bridge-load compare: %v\n", err)
			}
		}()
		var wait func()
		profile, _, wait = c.profiler(ctx, "", name)
		defer wait()
	default:
		o := *c.o
		o.state = stateConfig{natsURL: c.nats.url, prefix: name}
		prepare := func(string) error { start = time.Now(); return nil }
		if k.mode == "capture" {
			subject := "captured." + name
			o.sources = fmt.Sprintf("\n  - {name: app, nats: {subjects: [%q]}}", subject)
			prepare = func(cfgPath string) error {
				err := c.captured(ctx, cfgPath, subject)
				start = time.Now() // the copies into the events stream are not the bridge's time
				return err
			}
		} else {
			o.sources = fmt.Sprintf("\n  - {name: app, nats: {stream: %s, subjects: [%q]}}", loadStream, loadSubject)
		}
		bp, err := startBridge(ctx, k.bin, dir, &o, c.fake.url, c.fake.token, prepare)
		if err != nil {
			return nil, err
		}
		proc = bp.child
		defer func() {
			if err := bp.stop(); err != nil {
				fmt.Fprintf(c.stderr, "bridge-load compare: %v\n", err)
			}
		}()
		var wait func()
		profile, paused, wait = c.profiler(ctx, bp.adminURL, name)
		defer wait() // before the stop: the profile ends first
	}
	r, err := c.measure(ctx, p, proc, start, profile, paused)
	if err != nil {
		return nil, err
	}
	r.Contender, r.Round = k.name, round
	if k.mode == "capture" || k.mode == "bind" {
		r.Warnings, r.FirstWarning = proc.warnings()
	}
	return r, nil
}

// engineEnv is what an -engine program is told, in its environment: where
// the stored events are, the durable consumer to create on them (a new
// name each run), and where to POST the in-app message of each event whose
// kind is not "none". It must deliver until SIGTERM, and exec the engine
// so that the process measured is the engine's.
func (c *comparison) engineEnv(durable string) []string {
	return []string{
		"NATS_URL=" + c.nats.url, "LOAD_STREAM=" + loadStream, "LOAD_SUBJECT=" + loadSubject, "LOAD_DURABLE=" + durable,
		"INTERCOM_URL=" + c.fake.url, "INTERCOM_TOKEN=" + c.fake.token, "INTERCOM_ADMIN=" + adminID,
		fmt.Sprintf("IN_FLIGHT=%d", c.co.inFlight),
	}
}

// captured creates the events stream of the bridge configured in cfgPath,
// as the bridge itself would, and copies the stored events into it under
// the capture source's subject, so that the bridge starts on a backlog as
// a bind source does.
func (c *comparison) captured(ctx context.Context, cfgPath, subject string) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return fmt.Errorf("the bridge's config: %w", err)
	}
	if _, err := c.js.CreateStream(ctx, cfg.Topology().Events); err != nil {
		return fmt.Errorf("the events stream: %w", err)
	}
	nc, err := nats.Connect(c.nats.url, nats.Name("bridge-load compare capture"))
	if err != nil {
		return err
	}
	defer nc.Close()
	return c.storeEvents(ctx, nc, subject)
}

// pauseDump is how long a run goes without a new message at the fake
// before measure takes the bridge's goroutines (-cpuprofile): under load a
// message arrives every fraction of a millisecond.
const pauseDump = time.Second

// measure waits until every matching event's message has reached the
// fake, sampling proc and the NATS server at the first message and at the
// last; it calls profile (when not nil) at the first message, and paused
// (when not nil) once no new message has come for pauseDump.
func (c *comparison) measure(ctx context.Context, p *phase, proc *child, start time.Time, profile, paused func()) (*compareRun, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	var own0, srv0 procSample
	var t0 time.Time
	var pause pauseWatch
	r := &compareRun{}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				r.TimedOut = true
				r.Lost = int(p.nAcceptedMatching.Load() - p.distinct.Load())
				return r, nil
			}
			return nil, ctx.Err()
		case <-proc.exited:
			return nil, fmt.Errorf("%s exited: %v\n%s", proc.name, proc.exitErr, proc.logTail(20))
		case <-tick.C:
		}
		if t0.IsZero() && p.distinct.Load() > 0 {
			var err error
			if own0, srv0, err = c.sample(proc); err != nil {
				return nil, err
			}
			t0 = time.Now()
			r.FirstAfter = t0.Sub(start).Seconds()
			if profile != nil {
				profile()
			}
		}
		if !t0.IsZero() && pause.observe(p.distinct.Load(), time.Now()) > pauseDump && paused != nil {
			paused()
			paused = nil
		}
		r.LongestPause = pause.longest.Seconds()
		if !p.done() {
			continue
		}
		own1, srv1, err := c.sample(proc)
		if err != nil {
			return nil, err
		}
		r.setRates(int64(c.o.events), time.Since(t0), own0, srv0, own1, srv1)
		time.Sleep(settle) // duplicates still on their way
		r.Sends, r.Duplicates = p.sends.Load(), p.duplicates.Load()
		r.LoadAvg = loadAverage()
		return r, nil
	}
}

// pauseWatch follows a count of messages that only grows, sampled now and
// then, for the longest time it stood still.
type pauseWatch struct {
	seen    int64
	moved   time.Time // when seen was last seen to grow; zero: not yet sampled
	longest time.Duration
}

// observe takes the count n at now and returns how long it has stood
// still since it last grew (0 if it just did).
func (w *pauseWatch) observe(n int64, now time.Time) time.Duration {
	if w.moved.IsZero() || n != w.seen {
		if !w.moved.IsZero() {
			w.longest = max(w.longest, now.Sub(w.moved))
		}
		w.seen, w.moved = n, now
		return 0
	}
	return now.Sub(w.moved)
}

// sample reads the /proc figures of proc and of the NATS server.
func (c *comparison) sample(proc *child) (own, srv procSample, err error) {
	if own, err = readProc(proc.pid()); err == nil {
		srv, err = readProc(c.nats.pid())
	}
	return own, srv, err
}

// setRates sets r's rate, CPU per 10k events (the contender's, and with the
// NATS server's) and peak RSS for n events over elapsed, from samples taken
// at its start and its end.
func (r *compareRun) setRates(n int64, elapsed time.Duration, own0, srv0, own1, srv1 procSample) {
	per10k := 10000 / float64(max(n, 1))
	ownCPU := (own1.CPU - own0.CPU).Seconds()
	r.EventsPerSec = float64(n) / elapsed.Seconds()
	r.CPUPer10k = ownCPU * per10k
	r.CPUPer10kAll = (ownCPU + (srv1.CPU - srv0.CPU).Seconds()) * per10k
	r.PeakRSSMB = mb(own1.HWM)
}

// profiler returns, with -cpuprofile, start, which profiles run name from
// then on: the bridge whose admin listener is at adminURL and the NATS
// server; paused, which writes the bridge's goroutines as they are then
// (for a run that has stopped moving); and wait, which waits for all to be
// written. adminURL "" (a ceiling, an engine) profiles the NATS server
// alone, and paused is nil. Without -cpuprofile, start and paused are nil
// and wait does nothing.
func (c *comparison) profiler(ctx context.Context, adminURL, name string) (start, paused, wait func()) {
	if c.co.profileDir == "" {
		return nil, nil, func() {}
	}
	var wg sync.WaitGroup
	seconds := max(1, int(c.co.profileFor.Seconds()))
	start = func() {
		if adminURL != "" {
			wg.Go(func() {
				url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", adminURL, seconds)
				c.profile(ctx, url, filepath.Join(c.co.profileDir, name+".pprof"))
			})
		}
		wg.Go(func() {
			url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.nats.profURL, seconds)
			c.profile(ctx, url, filepath.Join(c.co.profileDir, name+"-nats.pprof"))
		})
	}
	if adminURL != "" {
		paused = func() {
			wg.Go(func() {
				c.profile(ctx, adminURL+"/debug/pprof/goroutine?debug=2", filepath.Join(c.co.profileDir, name+"-pause.txt"))
			})
			wg.Go(func() { c.consumers(ctx, filepath.Join(c.co.profileDir, name+"-consumers.json")) })
		}
	}
	return start, paused, wg.Wait
}

// consumers writes into path what the NATS server says of every consumer
// it has, as JSON: whether a paused run's consumers had pull requests
// waiting (num_waiting), messages to deliver (num_pending) and messages
// unacked (num_ack_pending).
func (c *comparison) consumers(ctx context.Context, path string) {
	var infos []*jetstream.ConsumerInfo
	err := func() error {
		for name := range c.js.StreamNames(ctx).Name() {
			s, err := c.js.Stream(ctx, name)
			if err != nil {
				return err
			}
			list := s.ListConsumers(ctx)
			for info := range list.Info() {
				infos = append(infos, info)
			}
			if err := list.Err(); err != nil {
				return err
			}
		}
		b, err := json.MarshalIndent(infos, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(path, b, 0o644)
	}()
	if err != nil {
		fmt.Fprintf(c.stderr, "bridge-load compare: consumers: %v\n", err)
	}
}

// profile writes what a pprof handler answers at url into path.
func (c *comparison) profile(ctx context.Context, url, path string) {
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}()
	if err != nil {
		fmt.Fprintf(c.stderr, "bridge-load compare: profile: %v\n", err)
	}
}

// cleanUp removes what a run left in the NATS server, the stream LOAD and
// its events aside: the bridge's streams and buckets, and the consumers on
// LOAD, so that every run starts from the same server.
func (c *comparison) cleanUp(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var names []string
	for name := range c.js.StreamNames(ctx).Name() {
		if name != loadStream {
			names = append(names, name)
		}
	}
	for _, name := range names {
		if err := c.js.DeleteStream(ctx, name); err != nil {
			fmt.Fprintf(c.stderr, "bridge-load compare: delete stream %s: %v\n", name, err)
		}
	}
	load, err := c.js.Stream(ctx, loadStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return // -intake: none
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "bridge-load compare: stream %s: %v\n", loadStream, err)
		return
	}
	var consumers []string
	for name := range load.ConsumerNames(ctx).Name() {
		consumers = append(consumers, name)
	}
	for _, name := range consumers {
		if err := load.DeleteConsumer(ctx, name); err != nil {
			fmt.Fprintf(c.stderr, "bridge-load compare: delete consumer %s: %v\n", name, err)
		}
	}
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// printComparison prints the medians per contender as a Markdown table,
// with the ratios the bridge is judged by.
func printComparison(w io.Writer, o *options, contenders []contender, runs []*compareRun, loadStart, loadEnd string) {
	type row struct {
		rate, cpu, cpuAll, rss float64
	}
	med := map[string]row{}
	for _, k := range contenders {
		var rate, cpu, cpuAll, rss []float64
		for _, r := range runs {
			if r.Contender == k.name {
				rate, cpu, cpuAll, rss = append(rate, r.EventsPerSec), append(cpu, r.CPUPer10k), append(cpuAll, r.CPUPer10kAll), append(rss, r.PeakRSSMB)
			}
		}
		med[k.name] = row{median(rate), median(cpu), median(cpuAll), median(rss)}
	}
	ceil := med[contenders[len(contenders)-1].name]
	fmt.Fprintf(w, "\n%d stored events, %g%% matching, %d rules, %d in flight; medians of %d interleaved rounds; load average %s at the start, %s at the end\n\n",
		o.events, o.match*100, o.rules, o.workers, len(runs)/len(contenders), loadStart, loadEnd)
	fmt.Fprintln(w, "| contender | events/s | CPU s per 10k (process / + nats-server) | peak RSS | events/s vs ceiling | CPU (+ nats-server) vs ceiling |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range contenders {
		m := med[k.name]
		fmt.Fprintf(w, "| %s | %s | %.3f / %.3f | %.0f MB | %.2fx | %.1fx |\n", k.name, thousands(m.rate), m.cpu, m.cpuAll, m.rss, m.rate/ceil.rate, m.cpuAll/ceil.cpuAll)
	}
	for _, prefix := range []string{"bridge", "baseline"} {
		capture, bind := med[prefix+", capture mode"], med[prefix+", bind mode"]
		if capture.rate > 0 && bind.rate > 0 {
			fmt.Fprintf(w, "\n%s: bind / capture %.2fx events/s, %.2fx CPU per event (+ nats-server); round by round %s",
				prefix, bind.rate/capture.rate, bind.cpuAll/capture.cpuAll, roundRatios(runs, prefix+", bind mode", prefix+", capture mode"))
		}
	}
	if b, a := med["baseline, bind mode"], med["bridge, bind mode"]; b.rate > 0 {
		fmt.Fprintf(w, "\nbridge / baseline: bind %.2fx events/s, capture %.2fx", a.rate/b.rate, med["bridge, capture mode"].rate/med["baseline, capture mode"].rate)
	}
	for _, k := range contenders {
		if e := med[k.name]; k.mode == "engine" && e.rate > 0 {
			capture, bind := med["bridge, capture mode"], med["bridge, bind mode"]
			fmt.Fprintf(w, "\nbridge / %s: capture %.2fx events/s at %.2fx CPU per event (+ nats-server), bind %.2fx at %.2fx",
				k.name, capture.rate/e.rate, capture.cpuAll/e.cpuAll, bind.rate/e.rate, bind.cpuAll/e.cpuAll)
		}
	}
	fmt.Fprintln(w)
}

// roundRatios is a's events/s over b's in each round, and their median:
// the medians of a noisy machine can hide how much the rounds disagree.
func roundRatios(runs []*compareRun, a, b string) string {
	rates := map[string]map[int]float64{a: {}, b: {}}
	rounds := 0
	for _, r := range runs {
		if m, ok := rates[r.Contender]; ok {
			m[r.Round] = r.EventsPerSec
		}
		rounds = max(rounds, r.Round)
	}
	var ratios []float64
	var parts []string
	for round := 1; round <= rounds; round++ {
		if x, y := rates[a][round], rates[b][round]; x > 0 && y > 0 {
			ratios = append(ratios, x/y)
			parts = append(parts, fmt.Sprintf("%.2f", x/y))
		}
	}
	return fmt.Sprintf("%s (median %.2f)", strings.Join(parts, ", "), median(ratios))
}

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// thousands formats n rounded, with commas: 14,408.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

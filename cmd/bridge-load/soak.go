package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
)

// A soak sends many messages through one bridge as fast as it takes them
// and watches what stays behind: the bridge's RSS and Go heap, the sent
// ledger and the streams, and the NATS store on disk. What the dedupe
// windows hold grows with every message, so the report is the growth per
// million messages, with the embedded NATS server (the state is in the
// bridge's process) or an external one (it is not).
//
//	go run ./cmd/bridge-load soak -nats embedded
//	go run ./cmd/bridge-load soak -nats external -messages 200000 -csv soak.csv

// soakOptions are soak's flags; load holds those a load run has too.
type soakOptions struct {
	load     *options
	messages int
	mode     string // embedded or external
	every    int
	sample   time.Duration
	settle   time.Duration
	csvPath  string
}

func parseSoakOptions(args []string, stderr io.Writer) (so *soakOptions, code int, ok bool) {
	o := &options{match: 1, rateLimit: 100_000_000, subject: "app.events", warmup: 3 * time.Second}
	so = &soakOptions{load: o}
	fs := flag.NewFlagSet("bridge-load soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bridge-load soak [flags]\n\nSends -messages messages through a bridge as fast as it takes them, every event matching, and reports the bridge's RSS and heap, the ledger, the streams and the NATS store per -every messages, and their growth per million.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.IntVar(&so.messages, "messages", 1_000_000, "`number` of messages to send (one event each)")
	fs.StringVar(&so.mode, "nats", "embedded", "embedded (the bridge runs NATS) or external (a NATS server in a process of its own)")
	fs.IntVar(&so.every, "every", 100_000, "a table row per this many `messages`")
	fs.DurationVar(&so.sample, "sample", 2*time.Second, "sample the bridge this often")
	fs.DurationVar(&so.settle, "settle", 10*time.Second, "after the last message, wait this long before the last sample")
	fs.StringVar(&so.csvPath, "csv", "", "also write every sample to `file` as CSV")
	fs.IntVar(&o.backlog, "backlog", 2000, "send no further while this many `messages` are accepted and not yet at Intercom, so that the samples show what stays, not a queue (0: no bound)")
	fs.StringVar(&o.via, "via", "webhook", "how events go in: webhook (signed POSTs: both Nats-Msg-Id windows) or nats (JetStream publish to app.events)")
	fs.IntVar(&o.rules, "rules", 10, "`number` of rules")
	fs.IntVar(&o.concurrency, "concurrency", 64, "webhook senders")
	fs.IntVar(&o.workers, "workers", 32, "the bridge's delivery.workers")
	fs.DurationVar(&o.state.dedupeWindow, "dedupe-window", 7*24*time.Hour, "the bridge's delivery.dedupe_window")
	fs.DurationVar(&o.state.duplicates, "duplicates", 10*time.Minute, "the bridge's nats.events.duplicates")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "give up after this long")
	fs.StringVar(&o.bridgePath, "bridge", "", "the bridge binary `path` (default: go build ./cmd/bridge into a temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir (config, data, logs)")
	fs.BoolVar(&o.quiet, "q", false, "no progress lines")
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	bad := func(format string, args ...any) (*soakOptions, int, bool) {
		fmt.Fprintf(stderr, "bridge-load soak: "+format+"\n", args...)
		return nil, 2, false
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	case so.mode != "embedded" && so.mode != "external":
		return bad("-nats must be embedded or external, not %q", so.mode)
	case o.via != "nats" && o.via != "webhook":
		return bad("-via must be nats or webhook, not %q", o.via)
	case so.messages < 1 || so.every < 1:
		return bad("-messages and -every must be positive")
	case so.sample <= 0:
		return bad("-sample must be positive")
	case o.backlog < 0:
		return bad("-backlog must not be negative")
	case o.rules < 1 || o.concurrency < 1 || o.workers < 1:
		return bad("-rules, -concurrency and -workers must be positive")
	case o.state.dedupeWindow <= 0 || o.state.duplicates <= 0:
		return bad("-dedupe-window and -duplicates must be positive")
	}
	o.events = so.messages
	// A store large enough that a soak never fills it.
	o.state.maxStore = 64 << 30
	return so, 0, true
}

// soakSample is the bridge and its state at one moment; the CSV has one
// row of them per sample.
type soakSample struct {
	Elapsed   time.Duration // since the load started
	Sent      int64         // messages the fake received so far
	RSS       int64         // the bridge's VmRSS
	HeapInuse int64         // go_memstats_heap_inuse_bytes
	HeapAlloc int64         // go_memstats_heap_alloc_bytes
	// HeapLive is the heap the last GC found live: its next goal over
	// 1+GOGC/100. It moves only with what is kept, where heap in use and
	// alloc also saw up and down with the garbage of each cycle.
	HeapLive    int64
	LedgerKeys  int64 // bridge_ledger_keys
	LedgerBytes int64 // bridge_ledger_bytes
	EventsBytes int64 // bridge_stream_bytes of the events stream
	OutboxBytes int64 // bridge_stream_bytes of the outbox
	Disk        int64 // the NATS store, allocated on disk
	NATSRSS     int64 // the external server's VmRSS; 0 when embedded
}

var soakCSVHeader = []string{"elapsed_s", "sent", "rss_bytes", "heap_inuse_bytes", "heap_alloc_bytes", "heap_live_bytes",
	"ledger_keys", "ledger_bytes", "events_bytes", "outbox_bytes", "store_disk_bytes", "nats_rss_bytes"}

func (s soakSample) csvRow() []string {
	row := []string{strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 1, 64)}
	for _, v := range []int64{s.Sent, s.RSS, s.HeapInuse, s.HeapAlloc, s.HeapLive, s.LedgerKeys, s.LedgerBytes,
		s.EventsBytes, s.OutboxBytes, s.Disk, s.NATSRSS} {
		row = append(row, strconv.FormatInt(v, 10))
	}
	return row
}

// sampler takes soakSamples.
type sampler struct {
	pid, natsPID int // natsPID 0: embedded
	metricsURL   string
	store        string // the NATS store dir
	events       string // the events stream's name
	outbox       string
	client       *http.Client
}

func (s *sampler) take(elapsed time.Duration, sent int64) (soakSample, error) {
	ps, err := readProc(s.pid)
	if err != nil {
		return soakSample{}, fmt.Errorf("bridge process: %w", err)
	}
	m, err := s.metrics()
	if err != nil {
		return soakSample{}, err
	}
	disk, err := diskUsage(s.store)
	if err != nil {
		return soakSample{}, fmt.Errorf("NATS store: %w", err)
	}
	out := soakSample{
		Elapsed: elapsed, Sent: sent, RSS: ps.RSS, Disk: disk,
		HeapInuse:   int64(m["go_memstats_heap_inuse_bytes"]),
		HeapAlloc:   int64(m["go_memstats_heap_alloc_bytes"]),
		HeapLive:    liveHeap(m),
		LedgerKeys:  int64(m["bridge_ledger_keys"]),
		LedgerBytes: int64(m["bridge_ledger_bytes"]),
		EventsBytes: int64(m[`bridge_stream_bytes{stream="`+s.events+`"}`]),
		OutboxBytes: int64(m[`bridge_stream_bytes{stream="`+s.outbox+`"}`]),
	}
	if s.natsPID != 0 {
		ns, err := readProc(s.natsPID)
		if err != nil {
			return soakSample{}, fmt.Errorf("NATS server process: %w", err)
		}
		out.NATSRSS = ns.RSS
	}
	return out, nil
}

func (s *sampler) metrics() (map[string]float64, error) {
	resp, err := s.client.Get(s.metricsURL)
	if err != nil {
		return nil, fmt.Errorf("bridge metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bridge metrics: %s", resp.Status)
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("bridge metrics: %w", err)
	}
	return m, nil
}

// liveHeap estimates the live heap from the GC's goal, which is the live
// heap of the last cycle times 1+GOGC/100 (plus the small stacks and
// globals, counted in with it).
func liveHeap(m map[string]float64) int64 {
	gogc, ok := m["go_gc_gogc_percent"]
	if !ok || gogc <= 0 {
		gogc = 100
	}
	return int64(m["go_memstats_next_gc_bytes"] / (1 + gogc/100))
}

// parseMetrics reads the Prometheus text format into series -> value, a
// series named as written (name{label="value",...}). Comments are skipped.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the series after the last space (no
		// timestamps in what the bridge serves).
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("no value in %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", line, err)
		}
		m[strings.TrimSpace(line[:i])] = v
	}
	return m, sc.Err()
}

// diskUsage is what the files under dir take on disk (their allocated
// blocks, as du counts), 0 for a dir that does not exist yet.
func diskUsage(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a compacted block)
			}
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += info.Size()
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return n, err
}

// soakReport is what a soak found.
type soakReport struct {
	Mode, Via            string
	Messages, Rules      int
	Backlog              int
	DedupeWindow, DupWin time.Duration
	Start                soakSample   // idle, before the load
	Rows                 []soakSample // the first sample past each -every messages
	End                  soakSample   // after the load and -settle
	PeakRSS              int64
	SendsPerSec          float64
	Lost, Duplicates     int64
	TimedOut             bool
	// Bytes per message sent, the least-squares slope over the samples
	// taken while sending (GC cycles make single samples noisy).
	RSSPerMsg, HeapPerMsg, LivePerMsg, DiskPerMsg, NATSRSSPerMsg float64
}

// rowsEvery picks, for each multiple of every, the first sample at or past
// it; samples are in the order taken.
func rowsEvery(samples []soakSample, every int64) []soakSample {
	var rows []soakSample
	next := every
	for _, s := range samples {
		if s.Sent < next {
			continue
		}
		rows = append(rows, s)
		for next <= s.Sent {
			next += every
		}
	}
	return rows
}

// slope is the least-squares slope of ys over xs; 0 with fewer than two
// distinct xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 || len(xs) != len(ys) {
		return 0
	}
	var sx, sy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
	}
	mx, my := sx/n, sy/n
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}

// perMessage is field's growth in bytes per message sent over the samples
// with messages sent.
func perMessage(samples []soakSample, field func(soakSample) int64) float64 {
	var xs, ys []float64
	for _, s := range samples {
		if s.Sent > 0 {
			xs = append(xs, float64(s.Sent))
			ys = append(ys, float64(field(s)))
		}
	}
	return slope(xs, ys)
}

func soak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	so, code, ok := parseSoakOptions(args, stderr)
	if !ok {
		return code
	}
	r, samples, err := runSoak(ctx, so, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge-load soak: %v\n", err)
		return 1
	}
	r.print(stdout)
	if so.csvPath != "" {
		if err := writeSoakCSV(so.csvPath, samples); err != nil {
			fmt.Fprintf(stderr, "bridge-load soak: %v\n", err)
			return 1
		}
	}
	if r.Lost > 0 || r.TimedOut {
		return 1
	}
	return 0
}

// runSoak starts the fake Intercom, the external NATS server if asked,
// and the bridge, and sends the messages while sampling.
func runSoak(ctx context.Context, so *soakOptions, stderr io.Writer) (*soakReport, []soakSample, error) {
	o := so.load
	fake, rec := newFake(o)
	defer fake.Close()
	dir, err := os.MkdirTemp("", "bridge-soak-")
	if err != nil {
		return nil, nil, err
	}
	if o.keep {
		fmt.Fprintf(stderr, "bridge-load soak: keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.bridgePath
	if bin == "" {
		if bin, err = buildBridge(ctx, dir, stderr); err != nil {
			return nil, nil, err
		}
	}
	smp := &sampler{store: filepath.Join(dir, "data"), client: &http.Client{Timeout: 10 * time.Second},
		events: "BRIDGE_EVENTS", outbox: "BRIDGE_OUTBOX"}
	if so.mode == "external" {
		ns, err := startNATS(ctx, dir, false)
		if err != nil {
			return nil, nil, err
		}
		defer func() {
			if err := ns.stop(); err != nil {
				fmt.Fprintf(stderr, "bridge-load soak: %v\n", err)
			}
		}()
		o.state.natsURL, smp.store, smp.natsPID = ns.url, ns.store, ns.pid()
	}
	bp, err := startBridge(ctx, bin, dir, o, fake.URL(), fake.Token(), nil)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err := bp.stop(); err != nil {
			fmt.Fprintf(stderr, "bridge-load soak: %v\n", err)
		}
	}()
	smp.pid, smp.metricsURL = bp.pid(), bp.adminURL+"/metrics"
	fmt.Fprintf(stderr, "bridge-load soak: bridge ready (pid %d), NATS %s (%s), %d messages via %s\n",
		bp.pid(), bp.natsURL, so.mode, so.messages, o.via)
	e := env{pid: bp.pid(), natsURL: bp.natsURL, webhookURL: bp.webhookURL, secret: bp.secret}
	if o.via == "nats" {
		nc, err := nats.Connect(e.natsURL, nats.Name("bridge-load"))
		if err != nil {
			return nil, nil, fmt.Errorf("nats %s: %w", e.natsURL, err)
		}
		defer nc.Close()
		e.nc = nc
	}

	// Wait for the bridge's gauges (updated every 2 s) to be there.
	if err := sleepCtx(ctx, max(o.warmup, 3*time.Second)); err != nil {
		return nil, nil, err
	}
	start, err := smp.take(0, 0)
	if err != nil {
		return nil, nil, err
	}
	quiet := o.quiet
	var (
		mu      sync.Mutex
		samples = []soakSample{start}
		peak    = start.RSS
	)
	e.watch = func(p *phase, stop <-chan struct{}) {
		t := time.NewTicker(so.sample)
		defer t.Stop()
		next := int64(so.every)
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			s, err := smp.take(time.Since(p.start), p.sends.Load())
			if err != nil {
				fmt.Fprintf(stderr, "bridge-load soak: sample: %v\n", err)
				continue
			}
			mu.Lock()
			samples = append(samples, s)
			peak = max(peak, s.RSS)
			mu.Unlock()
			if !quiet && s.Sent >= next {
				fmt.Fprintf(stderr, "[%4.0fs] sent %d  RSS %.1f MB  heap in use %.1f MB, live %.1f MB  ledger %d keys\n",
					s.Elapsed.Seconds(), s.Sent, mb(s.RSS), mb(s.HeapInuse), mb(s.HeapLive), s.LedgerKeys)
				for next <= s.Sent {
					next += int64(so.every)
				}
			}
		}
	}
	o.quiet = true // the samples are the progress lines
	lr, err := runPhase(ctx, o, e, rec, randomID(), 0, so.messages, 0, stderr)
	o.quiet = quiet
	if err != nil {
		return nil, nil, err
	}
	if err := sleepCtx(ctx, so.settle); err != nil {
		return nil, nil, err
	}
	end, err := smp.take(time.Duration(lr.Elapsed*float64(time.Second))+so.settle, lr.Sends)
	if err != nil {
		return nil, nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	r := &soakReport{
		Mode: so.mode, Via: o.via, Messages: so.messages, Rules: o.rules, Backlog: o.backlog,
		DedupeWindow: o.state.dedupeWindow, DupWin: o.state.duplicates,
		Start: start, End: end, PeakRSS: max(peak, end.RSS),
		SendsPerSec: lr.SendsPerSecOut, Lost: int64(lr.Lost), Duplicates: lr.Duplicates, TimedOut: lr.TimedOut,
		Rows: rowsEvery(samples, int64(so.every)),
	}
	r.fit(samples)
	samples = append(samples, end)
	return r, samples, nil
}

// fit sets the growth per message from the samples.
func (r *soakReport) fit(samples []soakSample) {
	r.RSSPerMsg = perMessage(samples, func(s soakSample) int64 { return s.RSS })
	r.HeapPerMsg = perMessage(samples, func(s soakSample) int64 { return s.HeapInuse })
	r.LivePerMsg = perMessage(samples, func(s soakSample) int64 { return s.HeapLive })
	r.DiskPerMsg = perMessage(samples, func(s soakSample) int64 { return s.Disk })
	r.NATSRSSPerMsg = perMessage(samples, func(s soakSample) int64 { return s.NATSRSS })
}

func (r *soakReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nbridge-load soak: %d messages via %s (backlog at most %d), NATS %s, %d rules, dedupe_window %s, nats.events.duplicates %s\n",
		r.Messages, r.Via, r.Backlog, r.Mode, r.Rules, r.DedupeWindow, r.DupWin)
	external := r.Mode == "external"
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "sent\telapsed s\tRSS MB\theap in use MB\tlive heap MB\tledger keys\tledger MB\tevents MB\tstore on disk MB\t"
	if external {
		head += "NATS server RSS MB\t"
	}
	fmt.Fprintln(tw, head)
	rows := r.Rows
	if len(rows) > 0 && rows[len(rows)-1].Sent == r.End.Sent {
		rows = rows[:len(rows)-1] // the end says it again, settled
	}
	for _, s := range append(append([]soakSample{r.Start}, rows...), r.End) {
		fmt.Fprintf(tw, "%d\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t%.1f\t%.1f\t", s.Sent, s.Elapsed.Seconds(), mb(s.RSS),
			mb(s.HeapInuse), mb(s.HeapLive), s.LedgerKeys, mb(s.LedgerBytes), mb(s.EventsBytes), mb(s.Disk))
		if external {
			fmt.Fprintf(tw, "%.1f\t", mb(s.NATSRSS))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	n := float64(r.End.Sent)
	perMillion := func(start, end int64, fitted float64) string {
		if n == 0 {
			return "no messages sent"
		}
		d := float64(end - start)
		return fmt.Sprintf("%.1f -> %.1f MB: %+.1f MB per million (%.0f B/message; fitted %.0f B/message)",
			mb(start), mb(end), d/n*1e6/(1<<20), d/n, fitted)
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("messages", "%d sent at %.0f/s, %d lost, %d duplicates", r.End.Sent, r.SendsPerSec, r.Lost, r.Duplicates)
	row("bridge RSS", "%s; peak %.1f MB", perMillion(r.Start.RSS, r.End.RSS, r.RSSPerMsg), mb(r.PeakRSS))
	row("bridge heap in use", "%s", perMillion(r.Start.HeapInuse, r.End.HeapInuse, r.HeapPerMsg))
	row("bridge live heap", "%s", perMillion(r.Start.HeapLive, r.End.HeapLive, r.LivePerMsg))
	if r.End.LedgerKeys > 0 {
		row("sent ledger", "%d keys, %.1f MB (%.0f B/key)", r.End.LedgerKeys, mb(r.End.LedgerBytes), float64(r.End.LedgerBytes)/float64(r.End.LedgerKeys))
	}
	row("NATS store on disk", "%s", perMillion(r.Start.Disk, r.End.Disk, r.DiskPerMsg))
	if external {
		row("NATS server RSS", "%s", perMillion(r.Start.NATSRSS, r.End.NATSRSS, r.NATSRSSPerMsg))
	}
	if r.TimedOut {
		row("TIMED OUT", "before every message reached the fake")
	}
	tw.Flush()
}

func writeSoakCSV(path string, samples []soakSample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("csv: %w", err)
	}
	w := csv.NewWriter(f)
	w.Write(soakCSVHeader)
	for _, s := range samples {
		w.Write(s.csvRow())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("csv %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("csv %s: %w", path, err)
	}
	return nil
}

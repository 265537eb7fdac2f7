package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/internal/natstest"
)

func TestHistogramPercentiles(t *testing.T) {
	t.Parallel()
	h := &histogram{}
	// 1 ms .. 10,000 ms, shuffled: the p-th percentile is p * 100 ms.
	vals := rand.Perm(10000)
	for _, v := range vals {
		h.Record(time.Duration(v+1) * time.Millisecond)
	}
	if h.Count() != 10000 {
		t.Fatalf("count %d", h.Count())
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{
		{0, time.Millisecond}, {50, 5000 * time.Millisecond}, {90, 9000 * time.Millisecond},
		{99, 9900 * time.Millisecond}, {99.9, 9990 * time.Millisecond}, {100, 10000 * time.Millisecond},
	} {
		got := h.Percentile(c.p)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/subCount {
			t.Errorf("p%g = %v, want %v within %.2f%%", c.p, got, c.want, 100.0/subCount)
		}
	}
	if h.Max() != 10*time.Second {
		t.Errorf("max %v, want exactly 10s", h.Max())
	}

	// Small values are exact; a value never lands in a bucket below itself.
	small := &histogram{}
	for _, v := range []int64{3, 3, 3, 7, 100} {
		small.Record(time.Duration(v))
	}
	if got := small.Percentile(50); got != 3 {
		t.Errorf("p50 of small values = %d, want 3", got)
	}
	if got := small.Percentile(80); got != 7 {
		t.Errorf("p80 of small values = %d, want 7", got)
	}
	for range 100000 {
		v := rand.Int64N(1 << 50)
		b := bucketOf(v)
		if hi := bucketHigh(b); hi < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d in bucket %d [%d, %d]", v, b, bucketHigh(b-1)+1, hi)
		}
	}
	if empty := (&histogram{}); empty.Percentile(99) != 0 {
		t.Error("empty histogram: want 0")
	}
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses; utime 250, stime 150 ticks.
	stat := "4242 (bridge (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 150 0 0 20 0 9 0 1000 123456789 6789 18446744073709551615\n"
	cpu, err := parseStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if cpu != 4*time.Second {
		t.Errorf("cpu %v, want 4s", cpu)
	}
	if _, err := parseStat("4242 (bridge) S 1 2"); err == nil {
		t.Error("short stat: want an error")
	}

	status := `Name:	bridge
Umask:	0022
State:	S (sleeping)
Tgid:	4242
VmPeak:	 1829220 kB
VmSize:	 1829220 kB
VmHWM:	   98304 kB
VmRSS:	   40960 kB
RssAnon:	   30000 kB
Threads:	9
`
	rss, hwm, err := parseStatus(status)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 40<<20 || hwm != 96<<20 {
		t.Errorf("rss %d, hwm %d; want %d, %d", rss, hwm, 40<<20, 96<<20)
	}
	if _, _, err := parseStatus("Name:\tx\nVmRSS:\t1 kB\n"); err == nil {
		t.Error("no VmHWM: want an error")
	}

	// And this process's own files parse.
	if s, err := readProc(os.Getpid()); err != nil || s.RSS <= 0 || s.HWM < s.RSS {
		t.Errorf("readProc(self) = %+v, %v", s, err)
	}
}

// svgDoc is the part of the plot's SVG the test reads.
type svgDoc struct {
	Width  int      `xml:"width,attr"`
	Height int      `xml:"height,attr"`
	Texts  []string `xml:"text"`
	Series []struct {
		Class    string `xml:"class,attr"`
		Stroke   string `xml:"stroke,attr"`
		Polyline struct {
			Points string `xml:"points,attr"`
		} `xml:"polyline"`
		Circles []struct {
			CX float64 `xml:"cx,attr"`
			CY float64 `xml:"cy,attr"`
		} `xml:"circle"`
	} `xml:"g"`
}

func TestPlotSVG(t *testing.T) {
	t.Parallel()
	pts := []sweepPoint{{200, 1.5, 6}, {500, 2, 9}, {1000, 3, 20}, {2000, 8, 90}, {5000, 40, 900}}
	const w, h = 640, 400
	path := filepath.Join(t.TempDir(), "latency.svg")
	if err := writeLatencyPlot(path, pts, w, h); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc svgDoc
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("not valid XML: %v\n%s", err, data)
	}
	if doc.Width != w || doc.Height != h {
		t.Errorf("size %dx%d, want %dx%d", doc.Width, doc.Height, w, h)
	}
	for _, label := range []string{"200", "5000", "1", "1000", "ms", "offered load (events/s)"} {
		if !slices.Contains(doc.Texts, label) {
			t.Errorf("no label %q in %q", label, doc.Texts)
		}
	}

	c := newChart(pts, w, h)
	tests := []struct {
		class, colour string
		v             func(sweepPoint) float64
	}{
		{"p50", colP50, func(p sweepPoint) float64 { return p.P50 }},
		{"p99", colP99, func(p sweepPoint) float64 { return p.P99 }},
	}
	if len(doc.Series) != len(tests) {
		t.Fatalf("%d series, want %d", len(doc.Series), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.class, func(t *testing.T) {
			s := doc.Series[i]
			if s.Class != tt.class || s.Stroke != tt.colour {
				t.Errorf("series %d is %s in %s, want %s in %s", i, s.Class, s.Stroke, tt.class, tt.colour)
			}
			var want []string
			for _, p := range pts {
				x, y := c.px(p.Rate, tt.v(p))
				want = append(want, fmt.Sprintf("%.1f,%.1f", x, y))
			}
			if got := strings.Fields(s.Polyline.Points); !slices.Equal(got, want) {
				t.Errorf("line through %v, want %v", got, want)
			}
			if len(s.Circles) != len(pts) {
				t.Fatalf("%d markers, want %d", len(s.Circles), len(pts))
			}
			// Latency rises with the load: each marker is higher (smaller y).
			for k := 1; k < len(s.Circles); k++ {
				if s.Circles[k].CX <= s.Circles[k-1].CX || s.Circles[k].CY >= s.Circles[k-1].CY {
					t.Errorf("marker %d at (%g,%g) is not right of and above (%g,%g)", k,
						s.Circles[k].CX, s.Circles[k].CY, s.Circles[k-1].CX, s.Circles[k-1].CY)
				}
			}
		})
	}
}

func TestPlotWriteError(t *testing.T) {
	t.Parallel()
	err := writeLatencyPlot(filepath.Join(t.TempDir(), "none", "latency.svg"), nil, 100, 100)
	if err == nil || !strings.Contains(err.Error(), "writing the plot") {
		t.Errorf("err = %v, want the write to fail with context", err)
	}
}

func TestMatchShare(t *testing.T) {
	t.Parallel()
	p := newPhase(0, 300, 0.5, 2)
	n := 0
	for i, m := range p.matching {
		if m {
			n++
			if got := string(p.payload(i, 2)); got != `{"n":`+strconv.Itoa(i)+`,"kind":"k`+strconv.Itoa(i%2)+`","user":"u-`+strconv.Itoa(i)+`"}` {
				t.Errorf("payload %d: %s", i, got)
			}
		}
	}
	if n != 150 {
		t.Errorf("%d matching, want 150", n)
	}
	p = newPhase(1000, 10000, 0.1, 100)
	n = 0
	for _, m := range p.matching {
		if m {
			n++
		}
	}
	if n != 1000 {
		t.Errorf("%d matching, want 1000", n)
	}
	var v map[string]any
	if err := json.Unmarshal(p.payload(0, 100), &v); err != nil || v["user"] != "u-1000" {
		t.Errorf("payload: %v %v", v, err)
	}
}

// TestEndToEnd builds the bridge and runs the command against it: 300
// events over NATS as fast as they go, 2 rules, half of them matching; and
// the same over webhooks.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the bridge")
	}
	bin := bridgeBinary(t)
	for _, via := range []string{"nats", "webhook"} {
		t.Run(via, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			runOK(t, "-bridge", bin, "-via", via, "-events", "300", "-rate", "0", "-rules", "2",
				"-match", "0.5", "-warmup", "200ms", "-idle", "200ms", "-timeout", "2m", "-json", out)
			r := readJSON[report](t, out)
			if r.Accepted != 300 || r.Matching != 150 || r.Sends != 150 || r.Lost != 0 || r.Duplicates != 0 {
				t.Errorf("accepted %d, matching %d, sends %d, lost %d, duplicates %d; want 300, 150, 150, 0, 0",
					r.Accepted, r.Matching, r.Sends, r.Lost, r.Duplicates)
			}
			if r.Latency.Count != 150 || r.Latency.Max <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
				t.Errorf("latency %+v", r.Latency)
			}
			if r.Idle.RSSMB <= 0 || r.Load.PeakRSSMB <= 0 {
				t.Errorf("memory not sampled: idle %+v, load %+v", r.Idle, r.Load)
			}
		})
	}
}

func TestParseOptionsPlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{name: "default", args: []string{"-sweep", "200,500", "-duration", "1s"}, ok: true},
		{name: "svg", args: []string{"-sweep", "200", "-duration", "1s", "-plot", "docs/Latency.SVG"}, ok: true},
		{name: "png", args: []string{"-sweep", "200", "-duration", "1s", "-plot", "latency.png"}, ok: false},
		{name: "no sweep, no plot", args: []string{"-plot", "latency.png"}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if _, _, ok := parseOptions(tt.args, &stderr); ok != tt.ok {
				t.Errorf("parseOptions(%q) ok = %v, want %v: %s", tt.args, ok, tt.ok, stderr.String())
			}
		})
	}
}

// TestCompareEndToEnd runs compare on a few events: each contender
// delivers every matching event once, the table has a row for each, and
// -cpuprofile leaves a profile of each bridge run. The engine is the
// ceiling again, started from a script with compare's environment, as
// bench/benthos.sh starts the Benthos engine.
func TestCompareEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the bridge")
	}
	dir := t.TempDir()
	profiles := filepath.Join(dir, "profiles")
	runs, stdout := runCompareTest(t, dir, `ceiling -nats "$NATS_URL" -stream "$LOAD_STREAM" -durable "$LOAD_DURABLE" `+
		`-intercom "$INTERCOM_URL" -token "$INTERCOM_TOKEN" -inflight "$IN_FLIGHT"`,
		"-baseline", "BRIDGE", "-events", "400", "-rules", "2", "-cpuprofile", profiles, "-profile-for", "1s")
	if len(runs) != 7 {
		t.Fatalf("%d runs, want 7 (capture, bind, both again as the baseline, the engine, the ceiling with and without a ledger)", len(runs))
	}
	for _, r := range runs {
		if r.Sends != 200 || r.Lost != 0 || r.Duplicates != 0 || r.EventsPerSec <= 0 || r.PeakRSSMB <= 0 {
			t.Errorf("%s: %d sent, %d lost, %d duplicates, %.0f events/s, %.1f MB; want 200 sent, none lost or duplicated",
				r.Contender, r.Sends, r.Lost, r.Duplicates, r.EventsPerSec, r.PeakRSSMB)
		}
	}
	for _, row := range []string{"| bridge, capture mode |", "| bridge, bind mode |", "| engine engine.sh |", "| ceiling + ledger (pending, POST, sent, ack) |",
		"| ceiling (consume, filter, POST, ack) |", "bind / capture", "bridge / engine engine.sh: capture"} {
		if !strings.Contains(stdout, row) {
			t.Errorf("no %q in the table", row)
		}
	}
	// The bridge's runs, the baseline's included, and no other; the NATS
	// server's in every run.
	want := []string{"c1", "b1", "pc1", "pb1"}
	for _, run := range append(want, "e1", "f1", "x1") {
		want = append(want, run+"-nats")
	}
	for _, name := range want {
		if st, err := os.Stat(filepath.Join(profiles, name+".pprof")); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	// A run that stood still for a second would also leave its goroutines
	// (<run>-pause.txt); only the profiles are certain.
	if names, _ := filepath.Glob(filepath.Join(profiles, "*.pprof")); len(names) != len(want) {
		t.Errorf("profiles %v, want the %d of %v", names, len(want), want)
	}
}

// TestCompareIntakeEndToEnd runs compare -intake on a few POSTs: every
// contender answers each one, each answered POST is stored once, and the
// table has a row for each. The engine is the intake ceiling again,
// started from a script with compare's environment, as
// bench/benthos-intake.sh starts the Benthos engine.
func TestCompareIntakeEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the bridge")
	}
	runs, stdout := runCompareTest(t, t.TempDir(), `ceiling -nats "$NATS_URL" -listen "$LISTEN" -subject "$INTAKE_SUBJECT"`,
		"-intake", "-events", "300", "-concurrency", "8")
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4 (the bridge, its intake role, the engine, the ceiling)", len(runs))
	}
	for _, r := range runs {
		if r.Sends != 300 || r.Lost != 0 || r.EventsPerSec <= 0 || r.P99Ms < r.P50Ms || r.P50Ms <= 0 || r.PeakRSSMB <= 0 {
			t.Errorf("%s: %d stored, %d not accepted, %.0f req/s, p50 %.2f ms, p99 %.2f ms, %.1f MB; want 300 stored, all accepted",
				r.Contender, r.Sends, r.Lost, r.EventsPerSec, r.P50Ms, r.P99Ms, r.PeakRSSMB)
		}
	}
	for _, row := range []string{"| bridge, signed webhooks |", "| bridge, role intake, signed webhooks |", "| engine engine.sh |", "| ceiling (POST, publish, 200) |",
		"bridge, signed webhooks / engine engine.sh:", "bridge, role intake, signed webhooks / engine engine.sh:"} {
		if !strings.Contains(stdout, row) {
			t.Errorf("no %q in the table", row)
		}
	}
}

// runCompareTest runs compare with args, 1 round, the bridge built, and
// as its -engine a script in dir that execs this test binary with
// engineArgs (compare's environment expanded): the ceiling again. BRIDGE
// in args stands for the bridge's binary. It returns the runs and what
// compare printed.
func runCompareTest(t *testing.T, dir, engineArgs string, args ...string) ([]compareRun, string) {
	t.Helper()
	bin := bridgeBinary(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(dir, "engine.sh")
	if err := os.WriteFile(engine, []byte(fmt.Sprintf("#!/bin/sh\nexec %q %s\n", exe, engineArgs)), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "compare.json")
	for i, a := range args {
		if a == "BRIDGE" {
			args[i] = bin
		}
	}
	stdout := runOK(t, append([]string{"compare", "-bridge", bin, "-engine", engine, "-rounds", "1", "-timeout", "2m", "-json", out}, args...)...)
	return readJSON[[]compareRun](t, out), stdout
}

// runOK runs the command with args, logs what it printed, and requires it
// to exit 0; it returns its standard output.
func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	return stdout.String()
}

// readJSON decodes the JSON file at path (a -json report).
func readJSON[T any](t *testing.T, path string) T {
	t.Helper()
	var v T
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &v)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestChildWarnings: a run's line names the warnings its bridge logged.
func TestChildWarnings(t *testing.T) {
	log := filepath.Join(t.TempDir(), "bridge.log")
	lines := `{"level":"info","message":"started"}
{"level":"warn","error":"nats: timeout","subject":"load.events","message":"message not stored; redelivered"}
not JSON at all
{"level":"error","message":"event cannot be read; dead-lettered"}
{"level":"debug","message":"queued"}
`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	n, first := (&child{logPath: log}).warnings()
	if n != 2 || first != "message not stored; redelivered: nats: timeout" {
		t.Fatalf("warnings() = %d, %q", n, first)
	}
	r := &compareRun{Warnings: n, FirstWarning: first}
	if got := r.warned(); got != "; 2 warnings in its log, the first: message not stored; redelivered: nats: timeout" {
		t.Fatalf("warned() = %q", got)
	}
	if n, _ := (&child{logPath: filepath.Join(t.TempDir(), "none.log")}).warnings(); n != 0 || (&compareRun{}).warned() != "" {
		t.Fatal("a run without warnings says something")
	}
}

// TestRoundOrder: every round runs each contender once, the order is the
// same in every compare, and no contender always runs first or always
// after the same one.
func TestRoundOrder(t *testing.T) {
	for _, n := range []int{4, 6, 7} {
		for _, rounds := range []int{3, 5} {
			firsts := map[int]bool{}
			before := map[int][]int{} // each contender's predecessors, one per round it is not first
			for round := 1; round <= rounds; round++ {
				order := roundOrder(n, round)
				if !slices.Equal(order, roundOrder(n, round)) {
					t.Fatalf("n %d, round %d: two orders", n, round)
				}
				seen := map[int]bool{}
				for _, k := range order {
					seen[k] = k >= 0 && k < n
				}
				if len(order) != n || len(seen) != n || slices.Contains(slices.Collect(maps.Values(seen)), false) {
					t.Fatalf("n %d, round %d: %v is not each contender once", n, round, order)
				}
				firsts[order[0]] = true
				for i := 1; i < n; i++ {
					before[order[i]] = append(before[order[i]], order[i-1])
				}
			}
			if len(firsts) == 1 {
				t.Errorf("n %d, %d rounds: contender %v runs first in every round", n, rounds, firsts)
			}
			for k, prev := range before {
				if slices.Sort(prev); len(prev) > 1 && prev[0] == prev[len(prev)-1] {
					t.Errorf("n %d, %d rounds: contender %d always runs after %d", n, rounds, k, prev[0])
				}
			}
		}
	}
}

func TestRoundRatios(t *testing.T) {
	var runs []*compareRun
	for round, rates := range [][2]float64{{12000, 10000}, {9000, 10000}, {10000, 8000}, {0, 10000}} {
		runs = append(runs, &compareRun{Contender: "bind", Round: round + 1, EventsPerSec: rates[0]},
			&compareRun{Contender: "capture", Round: round + 1, EventsPerSec: rates[1]},
			&compareRun{Contender: "ceiling", Round: round + 1, EventsPerSec: 40000})
	}
	// The fourth round's bind run delivered nothing (timed out): no ratio.
	if got, want := roundRatios(runs, "bind", "capture"), "1.20, 0.90, 1.25 (median 1.20)"; got != want {
		t.Fatalf("roundRatios = %q, want %q", got, want)
	}
}

// A run's longest pause is the longest time its count stood still
// between two samples that saw it grow; observe says how long it has stood
// still so far, which is when compare takes the bridge's goroutines.
func TestPauseWatch(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var w pauseWatch
	for _, step := range []struct {
		ms      int
		n       int64
		still   time.Duration // what observe returns
		longest time.Duration // and the longest pause after it
	}{
		{0, 1, 0, 0},
		{5, 2, 0, 5 * time.Millisecond},
		{10, 2, 5 * time.Millisecond, 5 * time.Millisecond},
		{1500, 2, 1495 * time.Millisecond, 5 * time.Millisecond}, // standing still, not over yet
		{2005, 9, 0, 2 * time.Second},
		{2010, 10, 0, 2 * time.Second},
	} {
		if got := w.observe(step.n, at(step.ms)); got != step.still || w.longest != step.longest {
			t.Errorf("at %d ms, count %d: still for %v, longest %v; want %v and %v", step.ms, step.n, got, w.longest, step.still, step.longest)
		}
	}
}

// A paused run leaves what the server says of its consumers: here one
// with a pull request waiting and messages it has not delivered.
func TestPauseConsumers(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "ev.x", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "held", FilterSubject: "ev.none"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "behind"}); err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(jetstream.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	path := filepath.Join(t.TempDir(), "c1-consumers.json")
	c := &comparison{js: js, stderr: io.Discard}
	var got []jetstream.ConsumerInfo
	for deadline := time.Now().Add(10 * time.Second); ; {
		c.consumers(ctx, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		byName := map[string]jetstream.ConsumerInfo{}
		for _, info := range got {
			byName[info.Stream+"/"+info.Name] = info
		}
		if byName["EV/held"].NumWaiting == 1 && byName["EV/behind"].NumPending == 3 && len(got) == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers %+v; want EV/held with a pull request waiting, EV/behind with 3 messages to deliver", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

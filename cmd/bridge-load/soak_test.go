package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the command when soak and
// compare start it as the external NATS server or the ceiling
// (os.Executable is the test binary).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "serve-nats" || os.Args[1] == "ceiling") {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func TestParseSoakOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		ok   bool
		want func(*soakOptions) bool
	}{
		{"defaults", nil, true, func(so *soakOptions) bool {
			return so.messages == 1_000_000 && so.mode == "embedded" && so.every == 100_000 && so.load.via == "webhook" &&
				so.load.match == 1 && so.load.events == 1_000_000 && so.load.rateLimit >= 1_000_000 &&
				so.load.state.dedupeWindow == 7*24*time.Hour && so.load.state.duplicates == 10*time.Minute
		}},
		{"external", []string{"-nats", "external", "-messages", "500", "-every", "100", "-csv", "s.csv"}, true, func(so *soakOptions) bool {
			return so.mode == "external" && so.messages == 500 && so.load.events == 500 && so.csvPath == "s.csv"
		}},
		{"windows", []string{"-dedupe-window", "24h", "-duplicates", "2m", "-via", "nats"}, true, func(so *soakOptions) bool {
			return so.load.state.dedupeWindow == 24*time.Hour && so.load.state.duplicates == 2*time.Minute && so.load.via == "nats"
		}},
		{"bad mode", []string{"-nats", "cluster"}, false, nil},
		{"bad via", []string{"-via", "kafka"}, false, nil},
		{"no messages", []string{"-messages", "0"}, false, nil},
		{"no window", []string{"-dedupe-window", "0s"}, false, nil},
		{"stray argument", []string{"now"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			so, _, ok := parseSoakOptions(tt.args, &stderr)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v: %s", ok, tt.ok, stderr.String())
			}
			if ok && !tt.want(so) {
				t.Errorf("options %+v, load %+v", so, so.load)
			}
		})
	}
}

func TestRowsEvery(t *testing.T) {
	t.Parallel()
	at := func(sent ...int64) []soakSample {
		var s []soakSample
		for _, n := range sent {
			s = append(s, soakSample{Sent: n})
		}
		return s
	}
	sents := func(rows []soakSample) []int64 {
		var out []int64
		for _, r := range rows {
			out = append(out, r.Sent)
		}
		return out
	}
	tests := []struct {
		name    string
		samples []soakSample
		every   int64
		want    []int64
	}{
		{"none", nil, 100, nil},
		{"before the first row", at(0, 40, 99), 100, nil},
		{"first past each", at(0, 50, 100, 150, 220, 310), 100, []int64{100, 220, 310}},
		{"a sample past two rows", at(0, 90, 250, 260, 300), 100, []int64{250, 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sents(rowsEvery(tt.samples, tt.every)); !slicesEqual(got, tt.want) {
				t.Errorf("rows at %v, want %v", got, tt.want)
			}
		})
	}
}

func slicesEqual(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPerMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples []soakSample
		want    float64
	}{
		{"linear", []soakSample{{Sent: 0, RSS: 999}, {Sent: 100, RSS: 1000 + 100*50}, {Sent: 200, RSS: 1000 + 200*50}, {Sent: 300, RSS: 1000 + 300*50}}, 50},
		// GC makes the heap saw up and down; the fit follows the trend.
		{"saw-tooth", []soakSample{{Sent: 100, RSS: 100}, {Sent: 200, RSS: 300}, {Sent: 300, RSS: 300}, {Sent: 400, RSS: 500}}, 1.2},
		{"flat", []soakSample{{Sent: 100, RSS: 7}, {Sent: 200, RSS: 7}}, 0},
		{"one sample", []soakSample{{Sent: 100, RSS: 7}}, 0},
		{"no messages", []soakSample{{Sent: 0, RSS: 7}, {Sent: 0, RSS: 9}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := perMessage(tt.samples, func(s soakSample) int64 { return s.RSS })
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("perMessage = %g, want %g", got, tt.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	text := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2345e+07
bridge_ledger_keys 42
bridge_stream_bytes{stream="BRIDGE_EVENTS"} 1024
bridge_stream_bytes{stream="BRIDGE_OUTBOX"} 0

`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"go_memstats_heap_inuse_bytes":                12345000,
		"bridge_ledger_keys":                          42,
		`bridge_stream_bytes{stream="BRIDGE_EVENTS"}`: 1024,
		`bridge_stream_bytes{stream="BRIDGE_OUTBOX"}`: 0,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if got := liveHeap(map[string]float64{"go_memstats_next_gc_bytes": 300, "go_gc_gogc_percent": 200}); got != 100 {
		t.Errorf("live heap at GOGC=200 = %d, want 100", got)
	}
	if got := liveHeap(map[string]float64{"go_memstats_next_gc_bytes": 300}); got != 150 {
		t.Errorf("live heap without GOGC = %d, want 150 (the default 100)", got)
	}
	if _, err := parseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Error("a line without a value parsed")
	}
	if _, err := parseMetrics(strings.NewReader("x abc\n")); err == nil {
		t.Error("a value that is no number parsed")
	}
}

func TestDiskUsage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if n, err := diskUsage(filepath.Join(dir, "absent")); err != nil || n != 0 {
		t.Errorf("absent dir: %d, %v", n, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "blk"), bytes.Repeat([]byte{1}, 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n < 100_000 || n > 200_000 {
		t.Errorf("du = %d, want the 100,000-byte file's blocks (and the dirs')", n)
	}
}

func TestStateConfigYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s              stateConfig
		nats, delivery string
	}{
		{stateConfig{}, `{listen: "127.0.0.1:4222"}`, ""},
		{stateConfig{natsURL: "nats://127.0.0.1:5000", dedupeWindow: time.Hour, duplicates: 2 * time.Minute},
			`{url: "nats://127.0.0.1:5000", events: {duplicates: 2m0s}}`, ", dedupe_window: 1h0m0s"},
		{stateConfig{maxStore: 1 << 30}, `{listen: "127.0.0.1:4222", max_store: 1073741824}`, ""},
	}
	for _, tt := range tests {
		nats, delivery := tt.s.yaml("127.0.0.1:4222")
		if nats != tt.nats || delivery != tt.delivery {
			t.Errorf("%+v: %q, %q; want %q, %q", tt.s, nats, delivery, tt.nats, tt.delivery)
		}
	}
}

func TestSoakReportPrint(t *testing.T) {
	t.Parallel()
	mbs := int64(1 << 20)
	r := &soakReport{Mode: "external", Via: "webhook", Messages: 1000, Rules: 1,
		Start: soakSample{RSS: 20 * mbs, HeapInuse: 4 * mbs, NATSRSS: 10 * mbs},
		Rows:  []soakSample{{Sent: 500, RSS: 25 * mbs}},
		End:   soakSample{Sent: 1000, RSS: 30 * mbs, HeapInuse: 4 * mbs, NATSRSS: 20 * mbs, LedgerKeys: 1000, LedgerBytes: 200_000}}
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"NATS server RSS MB", "20.0 -> 30.0 MB: +10000.0 MB per million (10486 B/message", "1000 keys", "(200 B/key)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

var (
	buildOnce sync.Once
	builtDir  string
	builtBin  string
	buildErr  error
)

// bridgeBinary builds the bridge once for the tests that run it.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if builtDir, buildErr = os.MkdirTemp("", "bridge-load-test-"); buildErr != nil {
			return
		}
		var log bytes.Buffer
		if builtBin, buildErr = buildBridge(context.Background(), builtDir, &log); buildErr != nil {
			buildErr = fmt.Errorf("%w\n%s", buildErr, log.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// A small soak in both modes: every message arrives once, the samples and
// the CSV are there, and with an external server the bridge's store dir
// holds nothing.
func TestSoakEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds and runs the bridge")
	}
	bin := bridgeBinary(t)
	for _, mode := range []string{"embedded", "external"} {
		t.Run(mode, func(t *testing.T) {
			csvPath := filepath.Join(t.TempDir(), "soak.csv")
			stdout := runOK(t, "soak", "-bridge", bin, "-nats", mode, "-messages", "600", "-every", "200",
				"-rules", "2", "-sample", "200ms", "-settle", "2500ms", "-timeout", "2m", "-csv", csvPath)
			if !strings.Contains(stdout, "600 sent") || !strings.Contains(stdout, "0 lost, 0 duplicates") {
				t.Errorf("report:\n%s", stdout)
			}
			f, err := os.Open(csvPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) < 3 || strings.Join(rows[0], ",") != strings.Join(soakCSVHeader, ",") {
				t.Fatalf("csv: %v", rows)
			}
			last := rows[len(rows)-1]
			if last[1] != "600" || last[2] == "0" || last[3] == "0" || last[5] == "0" {
				t.Errorf("last sample %v: want 600 sent, RSS and heap", last)
			}
			if last[6] != "600" {
				t.Errorf("ledger keys %s, want 600", last[6])
			}
			natsRSS := last[11]
			if (mode == "external") != (natsRSS != "0") {
				t.Errorf("NATS server RSS %s in %s mode", natsRSS, mode)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
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

func TestPlotPNG(t *testing.T) {
	pts := []sweepPoint{{200, 1.5, 6}, {500, 2, 9}, {1000, 3, 20}, {2000, 8, 90}, {5000, 40, 900}}
	const w, h = 900, 560
	c := drawLatencyPlot(pts, w, h)
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.img); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("not a valid PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("size %v, want %dx%d", b, w, h)
	}
	same := func(a color.Color, b color.RGBA) bool {
		r, g, bl, _ := a.RGBA()
		return uint8(r>>8) == b.R && uint8(g>>8) == b.G && uint8(bl>>8) == b.B
	}
	for _, s := range []struct {
		name string
		col  color.RGBA
		v    func(sweepPoint) float64
	}{
		{"p50", colP50, func(p sweepPoint) float64 { return p.P50 }},
		{"p99", colP99, func(p sweepPoint) float64 { return p.P99 }},
	} {
		for i, p := range pts {
			x, y := c.px(p.Rate, s.v(p))
			if !same(img.At(x, y), s.col) {
				t.Errorf("%s point %d at (%d,%d): %v, want the series colour", s.name, i, x, y, img.At(x, y))
			}
			if i == 0 {
				continue
			}
			// Along the segment from the previous point, nothing is background.
			x0, y0 := c.px(pts[i-1].Rate, s.v(pts[i-1]))
			for k := 1; k < 10; k++ {
				xm, ym := x0+(x-x0)*k/10, y0+(y-y0)*k/10
				if same(img.At(xm, ym), colBackground) {
					t.Errorf("%s segment %d: background at (%d,%d)", s.name, i, xm, ym)
				}
			}
		}
	}
	// The axis labels are drawn: some dark pixels under the x axis.
	dark := 0
	for y := c.bottom + 10; y < h; y++ {
		for x := range w {
			if same(img.At(x, y), colAxis) {
				dark++
			}
		}
	}
	if dark < 200 {
		t.Errorf("only %d label pixels under the x axis", dark)
	}

	// writeLatencyPlot writes the same to a file.
	path := filepath.Join(t.TempDir(), "latency.png")
	if err := writeLatencyPlot(path, pts, 640, 400); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width != 640 || cfg.Height != 400 {
		t.Errorf("file: %+v, %v", cfg, err)
	}
}

func TestMatchShare(t *testing.T) {
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
	if testing.Short() {
		t.Skip("builds and runs the bridge")
	}
	ctx := context.Background()
	dir := t.TempDir()
	var log bytes.Buffer
	bin, err := buildBridge(ctx, dir, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for _, via := range []string{"nats", "webhook"} {
		t.Run(via, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"-bridge", bin, "-via", via, "-events", "300", "-rate", "0", "-rules", "2",
				"-match", "0.5", "-warmup", "200ms", "-idle", "200ms", "-timeout", "2m", "-json", out}, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var r report
			if err := json.Unmarshal(data, &r); err != nil {
				t.Fatal(err)
			}
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

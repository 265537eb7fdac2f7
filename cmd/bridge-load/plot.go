package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// sweepPoint is one step of a sweep: the offered load and the latency.
type sweepPoint struct {
	Rate     float64 // offered events/s
	P50, P99 float64 // ms
}

// Colours of the plot.
const (
	colAxis = "#282828"
	colGrid = "#e1e1e1"
	colP50  = "#1f77b4" // blue
	colP99  = "#d62728" // red
)

// minLatency stands in for a latency too small to show on a log scale.
const minLatency = 0.01

// chart maps data to SVG coordinates: both axes are log10, the plot area
// is the picture less the margins.
type chart struct {
	w, h                     int
	left, right, top, bottom float64 // plot area
	x0, x1, y0, y1           float64 // log10 of the data ranges
}

func (c *chart) px(x, y float64) (float64, float64) {
	fx := (math.Log10(x) - c.x0) / (c.x1 - c.x0)
	fy := (math.Log10(math.Max(y, minLatency)) - c.y0) / (c.y1 - c.y0)
	return c.left + fx*(c.right-c.left), c.bottom - fy*(c.bottom-c.top)
}

// newChart fits the axes to the points: x a little wider than the loads,
// y whole decades around the latencies.
func newChart(pts []sweepPoint, w, h int) *chart {
	c := &chart{w: w, h: h, left: 80, right: float64(w) - 30, top: 50, bottom: float64(h) - 60}
	lo, hi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = math.Min(lo, p.Rate), math.Max(hi, p.Rate)
		for _, v := range []float64{p.P50, p.P99} {
			v = math.Max(v, minLatency)
			ylo, yhi = math.Min(ylo, v), math.Max(yhi, v)
		}
	}
	if len(pts) == 0 {
		lo, hi, ylo, yhi = 100, 1000, 1, 10
	}
	c.x0, c.x1 = math.Log10(lo/1.3), math.Log10(hi*1.3)
	c.y0, c.y1 = math.Floor(math.Log10(ylo)), math.Ceil(math.Log10(yhi))
	if c.y1 == c.y0 {
		c.y1++
	}
	return c
}

// writeLatencyPlot writes the sweep to path as an SVG picture w x h.
func writeLatencyPlot(path string, pts []sweepPoint, w, h int) error {
	if err := os.WriteFile(path, []byte(latencySVG(pts, w, h)), 0o644); err != nil {
		return fmt.Errorf("writing the plot: %w", err)
	}
	return nil
}

// latencySVG draws p50 and p99 latency (ms, log scale) against offered load
// (events/s, log scale), with a grid, tick labels and a legend. SVG keeps
// the plot a few lines of text the browser draws, instead of a rasteriser
// with its own font.
func latencySVG(pts []sweepPoint, w, h int) string {
	c := newChart(pts, w, h)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13" fill="%s">`+"\n", w, h, w, h, colAxis)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", w, h)

	// Grid and y ticks at 1, 2, 5 x 10^k; x ticks at each offered load.
	for k := c.y0; k < c.y1+0.5; k++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, k)
			if l := math.Log10(v); l < c.y0-1e-9 || l > c.y1+1e-9 {
				continue
			}
			_, y := c.px(math.Pow(10, c.x0), v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", c.left-6, y, c.right, y, colGrid)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", c.left-10, y, formatTick(v))
		}
	}
	for _, p := range pts {
		x, _ := c.px(p.Rate, math.Pow(10, c.y0))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, c.top, x, c.bottom+6, colGrid)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, c.bottom+22, formatTick(p.Rate))
	}
	fmt.Fprintf(&b, `<path d="M%.1f %.1fV%.1fH%.1f" fill="none" stroke="%s" stroke-width="2"/>`+"\n", c.left, c.top, c.bottom, c.right, colAxis)

	// Titles.
	fmt.Fprintf(&b, `<text x="%d" y="26" text-anchor="middle" font-size="16">Latency against offered load</text>`+"\n", w/2)
	fmt.Fprintf(&b, `<text x="10" y="%.1f">ms</text>`+"\n", c.top-16)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">offered load (events/s)</text>`+"\n", (c.left+c.right)/2, h-16)

	// Series: a line through the points, a marker on each; then the legend.
	series := []struct {
		name, col string
		v         func(sweepPoint) float64
	}{
		{"p50", colP50, func(p sweepPoint) float64 { return p.P50 }},
		{"p99", colP99, func(p sweepPoint) float64 { return p.P99 }},
	}
	for i, s := range series {
		var line []string
		var marks strings.Builder
		for _, p := range pts {
			x, y := c.px(p.Rate, s.v(p))
			line = append(line, fmt.Sprintf("%.1f,%.1f", x, y))
			fmt.Fprintf(&marks, `<circle cx="%.1f" cy="%.1f" r="4"><title>%s %g/s: %.2f ms</title></circle>`+"\n", x, y, s.name, p.Rate, s.v(p))
		}
		fmt.Fprintf(&b, `<g class="%s" fill="%s" stroke="%s">`+"\n", s.name, s.col, s.col)
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke-width="3"/>`+"\n", strings.Join(line, " "))
		b.WriteString(marks.String())
		ly := c.top + 16 + float64(i)*22
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke-width="3"/><text x="%.1f" y="%.1f" stroke="none" fill="%s" dominant-baseline="middle">%s</text>`+"\n",
			c.left+16, ly, c.left+50, ly, c.left+60, ly, colAxis, s.name)
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// formatTick writes a tick value without needless decimals: 0.5, 2, 1000.
func formatTick(v float64) string {
	if v >= 1 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// plotSummary is a one-line description of the points, for the log.
func plotSummary(pts []sweepPoint) string {
	var parts []string
	for _, p := range pts {
		parts = append(parts, fmt.Sprintf("%g/s: p50 %.1f ms, p99 %.1f ms", p.Rate, p.P50, p.P99))
	}
	return strings.Join(parts, "; ")
}

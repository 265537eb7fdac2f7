package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
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
var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colAxis       = color.RGBA{40, 40, 40, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colP50        = color.RGBA{31, 119, 180, 255} // blue
	colP99        = color.RGBA{214, 39, 40, 255}  // red
)

// chart maps data to pixels: both axes are log10, the plot area is the
// image less the margins.
type chart struct {
	img                      *image.RGBA
	left, right, top, bottom int     // plot area, pixels
	x0, x1, y0, y1           float64 // log10 of the data ranges
}

func (c *chart) px(x, y float64) (int, int) {
	fx := (math.Log10(x) - c.x0) / (c.x1 - c.x0)
	fy := (math.Log10(y) - c.y0) / (c.y1 - c.y0)
	return c.left + int(math.Round(fx*float64(c.right-c.left))),
		c.bottom - int(math.Round(fy*float64(c.bottom-c.top)))
}

// writeLatencyPlot writes the sweep as a PNG to path.
func writeLatencyPlot(path string, pts []sweepPoint, w, h int) error {
	c := drawLatencyPlot(pts, w, h)
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// drawLatencyPlot draws p50 and p99 latency (ms, log scale) against offered
// load (events/s, log scale), with a grid, tick labels and a legend.
func drawLatencyPlot(pts []sweepPoint, w, h int) *chart {
	c := &chart{img: image.NewRGBA(image.Rect(0, 0, w, h)), left: 90, right: w - 30, top: 50, bottom: h - 70}
	fill(c.img, 0, 0, w, h, colBackground)

	// Ranges: x a little wider than the loads, y whole decades around the
	// latencies.
	lo, hi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, p := range pts {
		lo, hi = math.Min(lo, p.Rate), math.Max(hi, p.Rate)
		for _, v := range []float64{p.P50, p.P99} {
			v = math.Max(v, 0.01)
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

	// Grid and y ticks at 1, 2, 5 x 10^k.
	for k := c.y0; k < c.y1+0.5; k++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, k)
			if l := math.Log10(v); l < c.y0-1e-9 || l > c.y1+1e-9 {
				continue
			}
			_, y := c.px(math.Pow(10, c.x0), v)
			fill(c.img, c.left, y, c.right, y+1, colGrid)
			fill(c.img, c.left-6, y, c.left, y+1, colAxis)
			label := formatTick(v)
			text(c.img, c.left-10-textWidth(label, 2), y-7, label, 2, colAxis)
		}
	}
	// x ticks at each offered load.
	for _, p := range pts {
		x, _ := c.px(p.Rate, math.Pow(10, c.y0))
		fill(c.img, x, c.top, x+1, c.bottom, colGrid)
		fill(c.img, x, c.bottom, x+1, c.bottom+6, colAxis)
		label := formatTick(p.Rate)
		text(c.img, x-textWidth(label, 2)/2, c.bottom+12, label, 2, colAxis)
	}
	// Axes.
	fill(c.img, c.left, c.top, c.left+2, c.bottom+1, colAxis)
	fill(c.img, c.left, c.bottom, c.right+1, c.bottom+2, colAxis)

	// Titles.
	title := "LATENCY VS OFFERED LOAD"
	text(c.img, (w-textWidth(title, 2))/2, 14, title, 2, colAxis)
	text(c.img, 10, c.top-24, "MS", 2, colAxis)
	xl := "OFFERED LOAD (EVENTS/S)"
	text(c.img, (c.left+c.right-textWidth(xl, 2))/2, h-28, xl, 2, colAxis)

	// Series: lines, then square markers on the points.
	for _, s := range []struct {
		col color.RGBA
		v   func(sweepPoint) float64
	}{
		{colP50, func(p sweepPoint) float64 { return math.Max(p.P50, 0.01) }},
		{colP99, func(p sweepPoint) float64 { return math.Max(p.P99, 0.01) }},
	} {
		for i := 1; i < len(pts); i++ {
			x0, y0 := c.px(pts[i-1].Rate, s.v(pts[i-1]))
			x1, y1 := c.px(pts[i].Rate, s.v(pts[i]))
			line(c.img, x0, y0, x1, y1, 3, s.col)
		}
		for _, p := range pts {
			x, y := c.px(p.Rate, s.v(p))
			fill(c.img, x-4, y-4, x+5, y+5, s.col)
		}
	}

	// Legend, top left inside the plot area.
	lx, ly := c.left+16, c.top+12
	fill(c.img, lx-8, ly-8, lx+120, ly+50, colBackground)
	for i, e := range []struct {
		name string
		col  color.RGBA
	}{{"P50", colP50}, {"P99", colP99}} {
		y := ly + i*24
		fill(c.img, lx, y+6, lx+36, y+9, e.col)
		fill(c.img, lx+14, y+3, lx+23, y+12, e.col)
		text(c.img, lx+48, y, e.name, 2, colAxis)
	}
	return c
}

// formatTick writes a tick value without needless decimals: 0.5, 2, 1000.
func formatTick(v float64) string {
	if v >= 1 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// fill paints the rectangle [x0,x1) x [y0,y1).
func fill(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	r := image.Rect(x0, y0, x1, y1).Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws a line w pixels thick by stamping squares along it.
func line(img *image.RGBA, x0, y0, x1, y1, w int, c color.RGBA) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		fill(img, x-w/2, y-w/2, x-w/2+w, y-w/2+w, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// text draws s with the 5x7 font, each font pixel scale x scale, its top
// left corner at (x, y). Letters are drawn as capitals.
func text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g := font5x7[r]
		for row, bitsRow := range g {
			for col := range 5 {
				if bitsRow&(0x10>>col) != 0 {
					fill(img, x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale, c)
				}
			}
		}
		x += 6 * scale
	}
}

func textWidth(s string, scale int) int { return len([]rune(s))*6*scale - scale }

// font5x7 is a 5x7 bitmap font: seven rows per glyph, the five low bits of
// each row, most significant bit leftmost. Unknown runes draw as blanks.
var font5x7 = map[rune][7]uint8{
	'0': {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E},
	'1': {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'2': {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F},
	'3': {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
	'4': {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02},
	'5': {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
	'6': {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E},
	'7': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
	'8': {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E},
	'9': {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
	'A': {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'B': {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E},
	'C': {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E},
	'D': {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C},
	'E': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F},
	'F': {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10},
	'G': {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F},
	'H': {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11},
	'I': {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E},
	'J': {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},
	'K': {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11},
	'L': {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F},
	'M': {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11},
	'N': {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11},
	'O': {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'P': {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10},
	'Q': {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D},
	'R': {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11},
	'S': {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E},
	'T': {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04},
	'U': {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E},
	'V': {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04},
	'W': {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A},
	'X': {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11},
	'Y': {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04},
	'Z': {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F},
	'.': {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C},
	',': {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},
	':': {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00},
	'/': {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00},
	'(': {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02},
	')': {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08},
	'-': {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00},
	'=': {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00},
	'%': {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03},
	' ': {},
}

// plotSummary is a one-line description of the points, for the log.
func plotSummary(pts []sweepPoint) string {
	var parts []string
	for _, p := range pts {
		parts = append(parts, fmt.Sprintf("%g/s: p50 %.1f ms, p99 %.1f ms", p.Rate, p.P50, p.P99))
	}
	return strings.Join(parts, "; ")
}

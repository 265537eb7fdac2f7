package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
	"time"
)

// outcomeColours gives the outcomes people look for first colours of
// their own; the others share grey.
var outcomeColours = map[string]string{
	"sent": "#2e7d32", "dead_letter": "#c62828", "retry": "#ef6c00", "rate_limited": "#6a1b9a",
	"dry_run": "#1565c0", "throttled": "#8d6e63", "duplicate": "#00838f",
}

// chart draws deliveries per minute over the hour ending at now as an
// inline SVG: a line per outcome, a legend with the hour's totals. It is
// markup, not a script, so it shows with JavaScript off and under the
// console's content security policy.
func chart(series []Series, now time.Time) template.HTML {
	const w, h, left, bottom, top = 720.0, 200.0, 44.0, 24.0, 8.0
	start := now.Add(-historySpan)
	peak := 1.0
	for _, s := range series {
		for _, p := range s.Points {
			peak = max(peak, p.PerMinute)
		}
	}
	peak = niceCeil(peak)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / float64(historySpan)
		return left + min(max(f, 0), 1)*(w-left-4)
	}
	y := func(v float64) float64 { return top + (1-v/peak)*(h-top-bottom) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="deliveries per minute, last hour">`, w, h)
	for i := 0; i <= 4; i++ { // the value axis, in quarters
		v := peak * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, left, w-4, y(v), y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="10">%s</text>`, left-4, y(v)+3, trimFloat(v))
	}
	for m := 0; m <= 60; m += 15 { // the time axis
		t := start.Add(time.Duration(m) * time.Minute)
		label := fmt.Sprintf("-%dm", 60-m)
		if m == 60 {
			label = "now"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`, x(t), h-8, label)
	}
	for _, s := range series {
		colour := outcomeColours[s.Outcome]
		if colour == "" {
			colour = "#757575"
		}
		var pts []string
		for _, p := range s.Points {
			if p.At.Before(start) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p.At), y(p.PerMinute)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"><title>%s</title></polyline>`,
			colour, strings.Join(pts, " "), html.EscapeString(s.Outcome))
	}
	b.WriteString(`</svg><ul class="legend">`)
	for _, s := range series {
		colour := outcomeColours[s.Outcome]
		if colour == "" {
			colour = "#757575"
		}
		fmt.Fprintf(&b, `<li><svg width="12" height="12"><rect width="12" height="12" fill="%s"/></svg> %s: %s in the hour</li>`,
			colour, html.EscapeString(s.Outcome), trimFloat(s.Total))
	}
	if len(series) == 0 {
		b.WriteString(`<li>no deliveries in the last hour</li>`)
	}
	b.WriteString(`</ul>`)
	return template.HTML(b.String()) // built from numbers and escaped names only
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis labels.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

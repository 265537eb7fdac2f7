package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// report is the outcome of one run (or sweep step). Its JSON is what -json
// writes.
type report struct {
	Via         string  `json:"via"`
	Rules       int     `json:"rules"`
	Match       float64 `json:"match"`
	OfferedRate float64 `json:"offered_rate"`          // events/s; 0: flat out
	RateLimit   int     `json:"rate_limit_per_minute"` // 0: an external bridge
	Workers     int     `json:"workers"`
	ICLatencyMS float64 `json:"intercom_latency_ms"`

	Events         int     `json:"events"`   // sent
	Accepted       int     `json:"accepted"` // acked by JetStream or answered 202
	Rejected       int     `json:"rejected"` // not accepted
	EventsPerSecIn float64 `json:"events_per_sec_in"`
	Matching       int     `json:"matching"` // accepted events that match a rule
	Sends          int64   `json:"sends"`    // messages the fake accepted (200)
	SendsPerSecOut float64 `json:"sends_per_sec_out"`
	Duplicates     int64   `json:"duplicates"` // messages received again for the same event
	Lost           int     `json:"lost"`       // matching accepted events never received
	Status429      int64   `json:"status_429"`
	Share429       float64 `json:"share_429"` // 429s / (200s + 429s)
	Errors         int64   `json:"errors"`    // other answers of the fake (4xx, 5xx)

	Window  *windowStats `json:"window,omitempty"` // with -intercom-limit
	Latency latency      `json:"latency_ms"`       // accepted -> received by the fake
	// FromSend is sent (published, or the POST started) -> received by the
	// fake: Latency plus the intake.
	FromSend latency `json:"latency_from_send_ms"`
	// EarlyArrivals counts messages that reached the fake before this
	// command saw the event's ack or 202 (counted as 0 in Latency).
	EarlyArrivals int       `json:"early_arrivals"`
	Idle          idleStats `json:"idle"`
	Load          loadStats `json:"load"`

	Elapsed  float64 `json:"elapsed_s"` // start to the last expected message
	TimedOut bool    `json:"timed_out"`
}

type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

type windowStats struct {
	Limit       int     `json:"limit"`        // requests per 10 s window
	Share       float64 `json:"share"`        // mean sends per full window / limit
	FullWindows int     `json:"full_windows"` // windows the share is taken over
	PerWindow   []int   `json:"per_window"`   // sends per window, first and last partial
}

type idleStats struct {
	RSSMB      float64 `json:"rss_mb"`
	CPUPercent float64 `json:"cpu_percent"`
}

type loadStats struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPercent float64 `json:"cpu_percent"` // average, 100 = one core
	PeakRSSMB  float64 `json:"peak_rss_mb"` // sampled every 100 ms during the run
	HWMRSSMB   float64 `json:"hwm_rss_mb"`  // VmHWM: peak since the bridge started
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func (r *report) print(w io.Writer) {
	rate := "flat out"
	if r.OfferedRate > 0 {
		rate = fmt.Sprintf("%g events/s", r.OfferedRate)
	}
	bridge := "an external bridge"
	if r.RateLimit > 0 {
		bridge = fmt.Sprintf("bridge: %d/min, %d workers", r.RateLimit, r.Workers)
	}
	fmt.Fprintf(w, "\nbridge-load: %s, %d events at %s, %d rules, %g%% matching (%s; Intercom latency %g ms)\n",
		r.Via, r.Events, rate, r.Rules, r.Match*100, bridge, r.ICLatencyMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("events in", "%d accepted, %d rejected", r.Accepted, r.Rejected)
	row("events/s in", "%.0f", r.EventsPerSecIn)
	row("matching", "%d", r.Matching)
	row("sends", "%d", r.Sends)
	row("sends/s out", "%.0f", r.SendsPerSecOut)
	row("duplicates", "%d", r.Duplicates)
	row("lost", "%d", r.Lost)
	row("429s", "%d (%.1f%% of requests)", r.Status429, 100*r.Share429)
	if r.Errors > 0 {
		row("other errors", "%d", r.Errors)
	}
	if r.Window != nil {
		row("window limit", "%d/10s: %.1f%% achieved over %d full windows %v", r.Window.Limit, 100*r.Window.Share, r.Window.FullWindows, r.Window.PerWindow)
	}
	l := r.Latency
	row("latency (ms)", "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (n=%d; accepted -> Intercom)", l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
	l = r.FromSend
	row("", "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (sent -> Intercom)", l.P50, l.P90, l.P99, l.P999, l.Max)
	if r.EarlyArrivals > 0 {
		row("", "%d messages arrived before their event's ack was seen (counted as 0)", r.EarlyArrivals)
	}
	if r.Load.CPUSeconds > 0 || r.Idle.RSSMB > 0 {
		row("bridge CPU", "idle %.1f%%, load %.2f s (%.0f%% of one core on average)", r.Idle.CPUPercent, r.Load.CPUSeconds, r.Load.CPUPercent)
		row("bridge RSS", "idle %.1f MB, peak %.1f MB (VmHWM %.1f MB)", r.Idle.RSSMB, r.Load.PeakRSSMB, r.Load.HWMRSSMB)
	}
	row("elapsed", "%.2f s", r.Elapsed)
	if r.TimedOut {
		row("TIMED OUT", "before every matching event reached the fake")
	}
	tw.Flush()
}

// printSweep prints one line per step.
func printSweep(w io.Writer, reports []*report) {
	fmt.Fprintln(w, "\nsweep:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "offered/s\tin/s\tsends/s\tp50 ms\tp99 ms\tmax ms\tlost\tdup\tCPU %\tpeak RSS MB\t")
	for _, r := range reports {
		fmt.Fprintf(tw, "%g\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%d\t%.0f\t%.1f\t\n",
			r.OfferedRate, r.EventsPerSecIn, r.SendsPerSecOut, r.Latency.P50, r.Latency.P99, r.Latency.Max,
			r.Lost, r.Duplicates, r.Load.CPUPercent, r.Load.PeakRSSMB)
	}
	tw.Flush()
}

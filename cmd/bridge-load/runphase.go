package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// settle is how long a run keeps listening after the last expected message,
// to catch duplicates still on their way.
const settle = 500 * time.Millisecond

// runPhase sends n events (numbered from base) at rate and waits until
// every matching accepted event has reached the fake, or the timeout.
func runPhase(ctx context.Context, o *options, e env, rec *recorder, runID string, base int64, n int, rate float64, stderr io.Writer) (*report, error) {
	p := newPhase(base, n, o.match, o.rules)
	p.maxBacklog = int64(o.backlog)
	pctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	var s0 procSample
	if e.pid != 0 {
		s0, _ = readProc(e.pid)
	}
	p.start = time.Now()
	rec.cur.Store(p)

	// Sample the bridge's RSS while the run lasts; peakRSS is read after
	// bg.Wait.
	var peakRSS int64
	stopSampling := make(chan struct{})
	var bg sync.WaitGroup
	if e.pid != 0 {
		bg.Go(func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				if s, err := readProc(e.pid); err == nil {
					peakRSS = max(peakRSS, s.RSS)
				}
				select {
				case <-t.C:
				case <-stopSampling:
					return
				}
			}
		})
	}
	if !o.quiet {
		bg.Go(func() { progress(p, stderr, stopSampling) })
	}
	if e.watch != nil {
		bg.Go(func() { e.watch(p, stopSampling) })
	}

	driving := make(chan struct{})
	var driveErr error
	go func() {
		defer close(driving)
		if o.via == "webhook" {
			d := &webhookDriver{url: e.webhookURL, secret: e.secret, runID: runID, client: newHTTPClient(o.concurrency)}
			d.drive(pctx, p, rate, o.concurrency, o.rules)
			d.client.CloseIdleConnections()
			return
		}
		driveErr = driveNATS(pctx, p, e.nc, o.subject, rate, o.rules)
	}()

	timedOut := false
	tick := time.NewTicker(10 * time.Millisecond)
wait:
	for {
		select {
		case <-pctx.Done():
			timedOut = ctx.Err() == nil
			break wait
		case <-tick.C:
			select {
			case <-driving:
				if p.done() {
					break wait
				}
			default:
			}
		}
	}
	tick.Stop()
	end := time.Now()
	var s1 procSample
	if e.pid != 0 {
		s1, _ = readProc(e.pid)
	}
	if !timedOut && ctx.Err() == nil {
		time.Sleep(settle)
	}
	cancel()
	<-driving
	close(stopSampling)
	bg.Wait()
	rec.cur.CompareAndSwap(p, nil)
	if driveErr != nil {
		return nil, driveErr
	}

	r := p.report(o, rate, end)
	r.TimedOut = timedOut
	if e.pid != 0 {
		cpu := (s1.CPU - s0.CPU).Seconds()
		r.Load = loadStats{
			CPUSeconds: cpu,
			CPUPercent: 100 * cpu / end.Sub(p.start).Seconds(),
			PeakRSSMB:  mb(max(peakRSS, s1.RSS)),
			HWMRSSMB:   mb(s1.HWM),
		}
	}
	return r, nil
}

// progress prints a line a second until stop is closed.
func progress(p *phase, w io.Writer, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastAcc, lastSent int64
	last := p.start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			acc, sent := p.nAccepted.Load(), p.sends.Load()
			dt := now.Sub(last).Seconds()
			fmt.Fprintf(w, "[%4.0fs] accepted %d/%d (%.0f/s)  sent %d (%.0f/s)  pending %d  429s %d\n",
				now.Sub(p.start).Seconds(), acc, len(p.matching), float64(acc-lastAcc)/dt,
				sent, float64(sent-lastSent)/dt, p.nAcceptedMatching.Load()-p.distinct.Load(), p.rateLimited.Load())
			lastAcc, lastSent, last = acc, sent, now
		}
	}
}

// report turns the phase's records into numbers.
func (p *phase) report(o *options, rate float64, end time.Time) *report {
	r := &report{
		Via: o.via, Rules: o.rules, Match: o.match, OfferedRate: rate,
		RateLimit: o.rateLimit, Workers: o.workers, ICLatencyMS: float64(o.icLatency) / float64(time.Millisecond),
		Events:     len(p.matching),
		Accepted:   int(p.nAccepted.Load()),
		Rejected:   int(p.nRejected.Load()),
		Matching:   int(p.nAcceptedMatching.Load()),
		Sends:      p.sends.Load(),
		Duplicates: p.duplicates.Load(),
		Errors:     p.otherStatus.Load(),
		Status429:  p.rateLimited.Load(),
		Elapsed:    end.Sub(p.start).Seconds(),
	}
	if o.target != "" || o.natsURL != "" {
		r.RateLimit, r.Workers = 0, 0 // not ours to know
	}
	h, hs := &histogram{}, &histogram{}
	start := p.start.UnixNano()
	lastAccept, lastArrival := start, start
	for i, m := range p.matching {
		acc := p.accepted[i].Load()
		if acc == 0 {
			continue
		}
		lastAccept = max(lastAccept, acc)
		if !m {
			continue
		}
		arr := p.arrived[i].Load()
		if arr == 0 {
			r.Lost++
			continue
		}
		lastArrival = max(lastArrival, arr)
		if arr < acc {
			r.EarlyArrivals++
		}
		h.Record(time.Duration(arr - acc))
		hs.Record(time.Duration(arr - p.sent[i].Load()))
	}
	if d := time.Duration(lastAccept - start).Seconds(); d > 0 {
		r.EventsPerSecIn = float64(r.Accepted) / d
	}
	if d := time.Duration(lastArrival - start).Seconds(); d > 0 {
		r.SendsPerSecOut = float64(r.Sends) / d
	}
	if total := r.Sends + r.Status429; total > 0 {
		r.Share429 = float64(r.Status429) / float64(total)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	lat := func(h *histogram) latency {
		return latency{
			Count: h.Count(),
			P50:   ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)),
			P999: ms(h.Percentile(99.9)), Max: ms(h.Max()),
		}
	}
	r.Latency, r.FromSend = lat(h), lat(hs)
	if o.icLimit > 0 {
		r.Window = p.windowShare(o.icLimit)
	}
	return r
}

// windowShare is how much of the fake's per-window limit the bridge used:
// the mean over full windows (the first and last are partial) of messages
// accepted per window / limit.
func (p *phase) windowShare(limit int) *windowStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]int64, 0, len(p.windows))
	for k := range p.windows {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	w := &windowStats{Limit: limit}
	for _, k := range keys {
		w.PerWindow = append(w.PerWindow, p.windows[k])
	}
	full := w.PerWindow
	if len(full) > 2 {
		full = full[1 : len(full)-1]
	}
	w.FullWindows = len(full)
	sum := 0
	for _, c := range full {
		sum += c
	}
	if len(full) > 0 {
		w.Share = float64(sum) / float64(len(full)) / float64(limit)
	}
	return w
}

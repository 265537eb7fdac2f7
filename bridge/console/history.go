package console

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Sample is the service's own counters at one moment: deliveries by
// outcome (bridge_deliveries_total summed over rules) and, per rule, its
// matches, sends and dead letters. Counters only grow while the process
// runs, so what happened between two samples is their difference.
type Sample struct {
	At       time.Time
	Outcomes map[string]float64
	Rules    map[string]RuleCounts
}

// RuleCounts are one rule's counters.
type RuleCounts struct {
	Matches, Sent, DeadLetters float64
}

// The history keeps an hour: deliveries by outcome every SampleEvery (for
// the chart), and the rules' counters every minute (a thousand rules
// times an hour of 10 s samples would be megabytes for numbers nobody
// reads at that grain).
const (
	SampleEvery  = 10 * time.Second
	historySpan  = time.Hour
	ruleEvery    = time.Minute
	outcomeSlots = int(historySpan/SampleEvery) + 1
	ruleSlots    = int(historySpan/ruleEvery) + 1
)

// History is an hour of samples in memory: bounded, and lost on restart
// (each process shows its own, as /rules does).
type History struct {
	mu       sync.Mutex
	outcomes []outcomeSample // oldest first, at most outcomeSlots
	rules    []ruleSample    // oldest first, at most ruleSlots
}

type outcomeSample struct {
	at       time.Time
	outcomes map[string]float64
}

type ruleSample struct {
	at    time.Time
	rules map[string]RuleCounts
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{} }

// Add records s. Of the rules' counters, the last sample is kept until
// it is a minute after the one before it; until then the next sample
// replaces it.
func (h *History) Add(s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outcomes = appendBounded(h.outcomes, outcomeSample{s.At, s.Outcomes}, outcomeSlots)
	rs := ruleSample{s.At, s.Rules}
	n := len(h.rules)
	if n >= 2 && h.rules[n-1].at.Sub(h.rules[n-2].at) < ruleEvery {
		h.rules[n-1] = rs
		return
	}
	h.rules = appendBounded(h.rules, rs, ruleSlots)
}

func appendBounded[T any](s []T, v T, limit int) []T {
	if len(s) == limit {
		s = slices.Delete(s, 0, 1)
	}
	return append(s, v)
}

// Run adds a sample now and then every SampleEvery until ctx is done.
func (h *History) Run(ctx context.Context, sample func() Sample) {
	h.Add(sample())
	t := time.NewTicker(SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.Add(sample())
		}
	}
}

// Series is one outcome's deliveries per minute, a point per sample
// interval, oldest first.
type Series struct {
	Outcome string
	Points  []Point
	Total   float64 // in the hour
}

// Point is a rate at a time.
type Point struct {
	At        time.Time
	PerMinute float64
}

// Rates returns the deliveries per minute of each outcome over the hour
// kept and up to now, the counters' values now (not kept), in the order
// of outcomes; an outcome with none is left out.
func (h *History) Rates(outcomes []string, now Sample) []Series {
	h.mu.Lock()
	samples := append(slices.Clone(h.outcomes), outcomeSample{now.At, now.Outcomes})
	h.mu.Unlock()
	var out []Series
	for _, o := range outcomes {
		s := Series{Outcome: o}
		for i := 1; i < len(samples); i++ {
			prev, cur := samples[i-1], samples[i]
			d := max(cur.outcomes[o]-prev.outcomes[o], 0) // a counter reset reads as none, not negative
			s.Total += d
			if dt := cur.at.Sub(prev.at).Minutes(); dt > 0 {
				s.Points = append(s.Points, Point{At: cur.at, PerMinute: d / dt})
			}
		}
		if s.Total > 0 {
			out = append(out, s)
		}
	}
	return out
}

// LastHour returns rule's counters over the hour kept (less since the
// process started) up to now, the counters' values now.
func (h *History) LastHour(rule string, now Sample) RuleCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.rules) == 0 {
		return RuleCounts{}
	}
	first, last := h.rules[0].rules[rule], now.Rules[rule]
	return RuleCounts{Matches: max(last.Matches-first.Matches, 0), Sent: max(last.Sent-first.Sent, 0),
		DeadLetters: max(last.DeadLetters-first.DeadLetters, 0)}
}

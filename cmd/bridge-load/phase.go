package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// phase is one load run: events base .. base+n-1, when each was accepted by
// the bridge and when its message reached the fake Intercom. Its counters
// are written concurrently by the drivers and by the fake's request hook.
type phase struct {
	base     int64
	matching []bool // read-only once the phase starts
	start    time.Time
	// maxBacklog bounds the matching events accepted whose message has not
	// arrived yet: the drivers wait while that many are (0: no bound).
	maxBacklog int64

	sent     []atomic.Int64 // unix ns event i was sent (published, or its POST started)
	accepted []atomic.Int64 // unix ns the bridge accepted event i; 0: not accepted
	arrived  []atomic.Int64 // unix ns the fake first received event i's message
	hits     []atomic.Int32 // messages received for event i

	nAccepted, nAcceptedMatching, nRejected atomic.Int64
	sends, distinct, duplicates             atomic.Int64
	rateLimited, otherStatus                atomic.Int64

	mu      sync.Mutex
	windows map[int64]int // messages accepted per fake window (unix s / 10)
}

func newPhase(base int64, n int, match float64, rules int) *phase {
	p := &phase{
		base:     base,
		matching: make([]bool, n),
		sent:     make([]atomic.Int64, n),
		accepted: make([]atomic.Int64, n),
		arrived:  make([]atomic.Int64, n),
		hits:     make([]atomic.Int32, n),
		windows:  map[int64]int{},
	}
	for i := range n {
		p.matching[i] = matches(base+int64(i), match) && rules > 0
	}
	return p
}

// matches spreads a share m of the events evenly: event n matches when
// floor((n+1)m) > floor(nm), so any n consecutive events hold n*m matching
// ones, give or take one.
func matches(n int64, m float64) bool {
	const eps = 1e-9
	return int64(float64(n+1)*m+eps) > int64(float64(n)*m+eps)
}

// payload is the JSON of event i of the phase.
func (p *phase) payload(i int, rules int) []byte {
	n := p.base + int64(i)
	kind := "none"
	if p.matching[i] {
		kind = "k" + strconv.FormatInt(n%int64(rules), 10)
	}
	b := make([]byte, 0, 64)
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"kind":"`...)
	b = append(b, kind...)
	b = append(b, `","user":"u-`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `"}`...)
	return b
}

// pace waits until event i may go: until fewer than maxBacklog messages
// are on their way, then until it is due at rate (see pace).
func (p *phase) pace(ctx context.Context, i int, rate float64) bool {
	for p.maxBacklog > 0 && p.nAcceptedMatching.Load()-p.distinct.Load() >= p.maxBacklog {
		select {
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
	return pace(ctx, p.start, i, rate)
}

func (p *phase) send(i int) { p.sent[i].Store(time.Now().UnixNano()) }

func (p *phase) accept(i int, t time.Time) {
	p.accepted[i].Store(t.UnixNano())
	p.nAccepted.Add(1)
	if p.matching[i] {
		p.nAcceptedMatching.Add(1)
	}
}

// done reports whether every matching event accepted so far has arrived.
func (p *phase) done() bool { return p.distinct.Load() >= p.nAcceptedMatching.Load() }

// recorder is the fake Intercom's request hook: it hands each message to
// the phase in progress.
type recorder struct {
	cur   atomic.Pointer[phase]
	stray atomic.Int64 // messages for no event of the current phase
}

func (r *recorder) hook(req intercomtest.Request) {
	if req.Method != http.MethodPost || req.Path != "/messages" {
		return
	}
	p := r.cur.Load()
	if p == nil {
		if req.StatusCode == http.StatusOK {
			r.stray.Add(1)
		}
		return
	}
	switch req.StatusCode {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		p.rateLimited.Add(1)
		return
	default:
		p.otherStatus.Add(1)
		return
	}
	n, ok := eventNumber(req)
	i := n - p.base
	if !ok || i < 0 || i >= int64(len(p.hits)) {
		r.stray.Add(1)
		return
	}
	p.sends.Add(1)
	if p.hits[i].Add(1) == 1 {
		p.arrived[i].Store(req.Time.UnixNano())
		p.distinct.Add(1)
	} else {
		p.duplicates.Add(1)
	}
	p.mu.Lock()
	p.windows[req.Time.Unix()/10]++
	p.mu.Unlock()
}

// eventNumber reads n from the recipient the rule rendered, "u-<n>".
func eventNumber(req intercomtest.Request) (int64, bool) {
	if req.Message == nil {
		return 0, false
	}
	if len(req.Message.To) == 0 {
		return 0, false
	}
	// The load rule names the user by Intercom id (no look-up), "u-<n>".
	s, ok := strings.CutPrefix(req.Message.To[0].ID, "u-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

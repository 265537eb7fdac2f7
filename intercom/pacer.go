package intercom

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pacer keeps one Client under Intercom's rate limit. Intercom counts
// requests per app in fixed 10-second windows, so the pacer does the same: a
// budget of requests per window, shared by every goroutine using the Client.
//
// What the server says overrides what the pacer assumes. Answers carry
// X-RateLimit-Remaining and X-RateLimit-Reset: the requests left in the
// server's window and when it ends. Other replicas of the bridge, or other
// integrations of the same app, spend the same limit, so Remaining can only
// lower the budget; a Remaining of 0, or a 429, stops every caller until
// the reset.
//
// Intercom's stated limit wins over the configured one: X-RateLimit-Limit
// (requests per window) replaces the budget from the next window on, even
// when it is higher than rate_limit_per_minute allows. The configured rate is
// a guess made before any answer; Intercom's statement is the fact, and
// replicas sharing the app's limit meet in Remaining, which caps every
// window whatever the budget.
//
// On a 429, Retry-After (seconds or an HTTP date, which the official SDKs
// honour first although it is not documented) says when to retry; without
// it, X-RateLimit-Reset does; without either, one window.
//
// A request sent near the end of a window may be counted in the next one,
// on top of that window's full budget. Two rules keep that from causing a
// 429: a request sent in the last twentieth of a window is charged to the
// next window too (so sending never stalls at a window's end), and a new
// window opens only once the requests of the previous one have been answered
// (waiting at most one window for them), because their answers say in which
// window the server counted them.
type pacer struct {
	budget int           // requests per window
	window time.Duration // length of a window
	guard  time.Duration // the tail of each window whose requests the next window is charged for too

	mu           sync.Mutex
	seq          uint64        // number of the current window, for tickets
	windowEnd    time.Time     // end of the current window
	left         int           // requests left in the current window
	inflight     int           // requests of the current window not yet answered
	carry        int           // requests sent in the current window's guard, charged to the next
	drained      chan struct{} // closed when inflight drops to 0, for those waiting on it
	blockedUntil time.Time     // nothing is sent before this (a 429, or Remaining 0)
}

func newPacer(budget int, window time.Duration) *pacer {
	return &pacer{budget: max(budget, 1), window: window, guard: window / 20}
}

// A ticket identifies the window a request was charged to.
type ticket uint64

// wait blocks until a request may be sent and takes it from the budget. The
// caller must pass the ticket to answered once the exchange is over.
func (p *pacer) wait(ctx context.Context) (ticket, error) {
	for {
		tk, d, drained := p.reserve(time.Now())
		if d <= 0 {
			return tk, nil
		}
		if !MayWait(ctx) {
			return 0, ErrWouldWait
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-drained: // nil unless waiting for answers; never ready then
			t.Stop()
		case <-t.C:
		}
	}
}

// reserve takes one request from the budget if it may be sent at now. If it
// may not, it returns how long to wait before asking again, and a channel
// that is closed if the answer may change sooner.
func (p *pacer) reserve(now time.Time) (tk ticket, wait time.Duration, drained <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.blockedUntil) {
		return 0, p.blockedUntil.Sub(now), nil
	}
	if !now.Before(p.windowEnd) {
		if deadline := p.windowEnd.Add(p.window); p.inflight > 0 && now.Before(deadline) {
			if p.drained == nil {
				p.drained = make(chan struct{})
			}
			return 0, deadline.Sub(now), p.drained
		}
		p.open(p.nextEnd(now), max(0, p.budget-p.carry))
	}
	if p.left > 0 {
		p.left--
		p.inflight++
		if p.windowEnd.Sub(now) <= p.guard {
			p.carry++
		}
		return ticket(p.seq), 0, nil
	}
	return 0, p.windowEnd.Sub(now), nil
}

// nextEnd is the end of the window containing now. Windows keep the phase of
// the previous one, which the server's X-RateLimit-Reset may have set; the
// first is aligned to the wall clock, as Intercom's and the fake's are.
func (p *pacer) nextEnd(now time.Time) time.Time {
	if p.windowEnd.IsZero() {
		return now.Truncate(p.window).Add(p.window)
	}
	n := now.Sub(p.windowEnd)/p.window + 1
	return p.windowEnd.Add(n * p.window)
}

// open starts a window ending at end with left requests. Requests still in
// flight belong to the old window; their tickets no longer count.
func (p *pacer) open(end time.Time, left int) {
	p.seq++
	p.windowEnd = end
	p.left = left
	p.inflight = 0
	p.carry = 0
	p.wake()
}

func (p *pacer) wake() {
	if p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// answered ends the request with ticket tk and takes in the rate-limit state
// of its answer (status 0 and no headers if there was none). For a 429 it
// returns when requests may be sent again.
func (p *pacer) answered(tk ticket, now time.Time, status int, rl rateLimit) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if tk == ticket(p.seq) && p.inflight > 0 {
		p.inflight--
		if p.inflight == 0 {
			p.wake()
		}
	}

	if rl.limit > 0 && rl.limit != p.budget {
		// Intercom's statement wins (see the type's comment). The current
		// window keeps what it has spent.
		p.left = max(0, p.left+rl.limit-p.budget)
		p.budget = rl.limit
	}
	reset, ok := p.sane(now, rl.reset)
	if status == http.StatusTooManyRequests {
		if after, honoured := p.saneRetryAfter(now, rl.retryAfter); honoured {
			reset = after
		} else if !ok {
			reset = now.Add(p.window)
		}
		p.block(reset)
		return reset
	}
	switch {
	case rl.remaining < 0:
		// Nothing to go by.
	case !rl.reset.IsZero() && !ok:
		// An answer about a window that is over.
	case !ok:
		// Remaining without Reset: it can only be about the current window.
		if now.Before(p.windowEnd) {
			p.left = min(p.left, rl.remaining)
		}
	case reset.Before(p.windowEnd.Add(p.window / 2)):
		// The server's current window is ours: follow its end, and let its
		// count cap ours. Ours may be lower still, as it already counts
		// requests whose answers are on the way.
		p.windowEnd = reset
		p.left = min(p.left, rl.remaining)
	default:
		// The server counted this request in a window after ours: open
		// that window, less what may still land in it from ours.
		p.open(reset, max(0, min(p.budget, rl.remaining)-p.inflight))
	}
	if ok && rl.remaining == 0 {
		p.block(reset)
	}
	return time.Time{}
}

func (p *pacer) block(until time.Time) {
	if until.After(p.blockedUntil) {
		p.blockedUntil = until
	}
}

// sane returns reset if it lies in the future and no further than a window
// and a second away (the header has a resolution of one second). A reset
// outside that range comes from a skewed clock or a confused proxy; it is
// clamped rather than trusted to stop sending for an hour.
func (p *pacer) sane(now, reset time.Time) (time.Time, bool) {
	if reset.IsZero() || !reset.After(now) {
		return time.Time{}, false
	}
	if limit := now.Add(p.window + time.Second); reset.After(limit) {
		return limit, true
	}
	return reset, true
}

// maxRetryAfter bounds how long a Retry-After can stop sending: Intercom's
// limit is stated per minute, so a longer wait is a misconfigured proxy.
const maxRetryAfter = time.Minute

// saneRetryAfter returns after if it lies in the future, clamped to
// maxRetryAfter.
func (p *pacer) saneRetryAfter(now, after time.Time) (time.Time, bool) {
	if after.IsZero() || !after.After(now) {
		return time.Time{}, false
	}
	return minTime(after, now.Add(maxRetryAfter)), true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// rateLimit is the rate-limit state of one answer.
type rateLimit struct {
	limit      int       // X-RateLimit-Limit: requests per window; 0 when absent
	remaining  int       // X-RateLimit-Remaining; -1 when absent
	reset      time.Time // X-RateLimit-Reset; zero when absent
	retryAfter time.Time // Retry-After; zero when absent
}

func parseRateLimit(h http.Header) rateLimit {
	return parseRateLimitAt(h, time.Now())
}

// parseRateLimitAt reads the headers of an answer received at now (which a
// Retry-After in seconds counts from).
func parseRateLimitAt(h http.Header, now time.Time) rateLimit {
	rl := rateLimit{remaining: -1}
	if n, err := strconv.Atoi(h.Get("X-RateLimit-Limit")); err == nil && n > 0 {
		rl.limit = n
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if sec, err := strconv.Atoi(v); err == nil && sec >= 0 {
			rl.retryAfter = now.Add(time.Duration(sec) * time.Second)
		} else if t, err := http.ParseTime(v); err == nil {
			rl.retryAfter = t
		}
	}
	if v := h.Get("X-RateLimit-Remaining"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			rl.remaining = n
		}
	}
	if t, ok := parseUnix(h.Get("X-RateLimit-Reset")); ok {
		rl.reset = t
	}
	return rl
}

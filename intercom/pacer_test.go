package intercom

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The pacer's decisions take the time as an argument, so these tests run on
// a made-up clock: t0 is the start of a 10-second window.
var t0 = time.Unix(1_700_000_000, 0)

func at(d time.Duration) time.Time { return t0.Add(d) }

const s = time.Second

// step is one call on a pacer: a reserve, which must return wait, or the
// answer to the latest reserved request not yet answered.
type step struct {
	at      time.Duration
	observe *observed // nil: reserve
	wait    time.Duration
	drained bool // the reserve must also return a channel to wait on
}

type observed struct {
	status     int
	remaining  int           // -1: no header
	reset      time.Duration // from t0; 0: no header
	retryAt    time.Duration // returned for a 429, from t0
	limit      int           // X-RateLimit-Limit; 0: no header
	retryAfter string        // Retry-After as sent; "": no header
}

func reserve(at, wait time.Duration) step { return step{at: at, wait: wait} }

// waitAnswers is a reserve that must wait for answers, for at most wait.
func waitAnswers(at, wait time.Duration) step { return step{at: at, wait: wait, drained: true} }

func answer(at time.Duration, o observed) step { return step{at: at, observe: &o} }

// ok is an answer without rate-limit headers.
func ok(at time.Duration) step { return answer(at, observed{status: 200, remaining: -1}) }

func TestPacer(t *testing.T) {
	tests := []struct {
		name   string
		budget int
		steps  []step
	}{
		{
			name:   "budget per window",
			budget: 3,
			steps: []step{
				reserve(1*s, 0), reserve(1*s, 0), reserve(2*s, 0),
				reserve(2*s, 8*s), // spent: wait for the next window
				ok(3 * s), ok(3 * s), ok(3 * s),
				reserve(10*s, 0), reserve(10*s, 0), reserve(11*s, 0),
				reserve(12*s, 8*s),
				ok(13 * s), ok(13 * s), ok(13 * s),
				reserve(35*s, 0), // after idle windows, a full budget again
			},
		},
		{
			name:   "a request at the end of a window is charged to the next one too",
			budget: 2,
			steps: []step{
				reserve(9600*time.Millisecond, 0), ok(9700 * time.Millisecond),
				reserve(10*s, 0), reserve(10100*time.Millisecond, 9900*time.Millisecond),
			},
		},
		{
			name:   "a new window waits for the answers of the last one",
			budget: 2,
			steps: []step{
				reserve(1*s, 0), reserve(9*s, 0),
				waitAnswers(10*s, 10*s), ok(10100 * time.Millisecond),
				waitAnswers(10200*time.Millisecond, 9800*time.Millisecond), ok(10300 * time.Millisecond),
				reserve(10400*time.Millisecond, 0),
			},
		},
		{
			name:   "a new window waits for answers at most a window",
			budget: 1,
			steps:  []step{reserve(1*s, 0), waitAnswers(15*s, 5*s), reserve(20*s, 0), ok(21 * s), reserve(22*s, 8*s)},
		},
		{
			name:   "an answer from the next window opens it",
			budget: 3,
			steps: []step{
				reserve(8*s, 0), reserve(9*s, 0),
				waitAnswers(10200*time.Millisecond, 9800*time.Millisecond),
				// Counted in the next window, with one request before it.
				answer(10300*time.Millisecond, observed{status: 200, remaining: 2, reset: 20 * s}),
				// The other one may land there too: one is left.
				reserve(10400*time.Millisecond, 0),
				reserve(10500*time.Millisecond, 9500*time.Millisecond),
			},
		},
		{
			name:   "a late answer from a past window is ignored",
			budget: 2,
			steps: []step{
				reserve(9*s, 0),
				answer(10500*time.Millisecond, observed{status: 200, remaining: 0, reset: 10 * s}),
				reserve(11*s, 0), reserve(11*s, 0),
			},
		},
		{
			name:   "Remaining tightens the budget",
			budget: 100,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: 2, reset: 10 * s}),
				reserve(2*s, 0), reserve(2*s, 0),
				reserve(3*s, 7*s),
				ok(4 * s), ok(4 * s),
				reserve(10*s, 0),
			},
		},
		{
			name:   "Remaining 0 stops everyone until the reset",
			budget: 100,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: 0, reset: 10 * s}),
				reserve(2*s, 8*s), reserve(9*s, 1*s), reserve(10*s, 0),
			},
		},
		{
			name:   "Remaining without Reset caps the current window",
			budget: 100,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: 1, reset: 0}),
				reserve(1*s, 0), reserve(1*s, 9*s),
			},
		},
		{
			name:   "the server's window phase is followed",
			budget: 2,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: 1, reset: 7 * s}),
				reserve(1*s, 0), reserve(2*s, 5*s), ok(3 * s),
				reserve(7*s, 0), reserve(7*s, 0), reserve(8*s, 9*s), // the next window ends at 17s
			},
		},
		{
			name:   "429 stops everyone until the reset",
			budget: 100,
			steps: []step{
				reserve(2*s, 0),
				answer(2*s, observed{status: 429, remaining: 0, reset: 5 * s, retryAt: 5 * s}),
				reserve(2*s, 3*s), reserve(4*s, 1*s), reserve(5*s, 0), reserve(5*s, 0),
			},
		},
		{
			name:   "429 without headers waits a window",
			budget: 100,
			steps: []step{
				reserve(2*s, 0),
				answer(2*s, observed{status: 429, remaining: -1, retryAt: 12 * s}),
				reserve(3*s, 9*s), reserve(12*s, 0),
			},
		},
		{
			name:   "429 with a reset in the past waits a window",
			budget: 100,
			steps: []step{
				reserve(2*s, 0),
				answer(2*s, observed{status: 429, remaining: 0, reset: 1 * s, retryAt: 12 * s}),
				reserve(3*s, 9*s),
			},
		},
		{
			name:   "a reset far away is clamped to a window and a second",
			budget: 100,
			steps: []step{
				reserve(2*s, 0),
				answer(2*s, observed{status: 429, remaining: 0, reset: time.Hour, retryAt: 13 * s}),
				reserve(2*s, 11*s),
			},
		},
		{
			name:   "an earlier 429 reset does not shorten a later one",
			budget: 100,
			steps: []step{
				reserve(1*s, 0), reserve(1*s, 0),
				answer(1*s, observed{status: 429, remaining: 0, reset: 8 * s, retryAt: 8 * s}),
				answer(1*s, observed{status: 429, remaining: 0, reset: 4 * s, retryAt: 4 * s}),
				reserve(5*s, 3*s),
			},
		},
		{
			name:   "Retry-After in seconds wins over the reset",
			budget: 3,
			steps: []step{
				reserve(1*s, 0),
				answer(2*s, observed{status: 429, remaining: 0, reset: 5 * s, retryAfter: "7", retryAt: 9 * s}),
				reserve(3*s, 6*s),
			},
		},
		{
			name:   "Retry-After as an HTTP date",
			budget: 3,
			steps: []step{
				reserve(1*s, 0),
				answer(2*s, observed{status: 429, remaining: -1, retryAfter: at(6 * s).UTC().Format(http.TimeFormat), retryAt: 6 * s}),
				reserve(3*s, 3*s),
			},
		},
		{
			name:   "Retry-After of an hour is cut to a minute",
			budget: 3,
			steps: []step{
				reserve(1*s, 0),
				answer(2*s, observed{status: 429, remaining: -1, retryAfter: "3600", retryAt: 62 * s}),
			},
		},
		{
			name:   "Retry-After now or unreadable: the reset decides",
			budget: 3,
			steps: []step{
				reserve(1*s, 0), reserve(1*s, 0),
				answer(2*s, observed{status: 429, remaining: 0, reset: 5 * s, retryAfter: "0", retryAt: 5 * s}),
				answer(2*s, observed{status: 429, remaining: 0, reset: 5 * s, retryAfter: "soon", retryAt: 5 * s}),
			},
		},
		{
			name:   "a stated limit above the configured one is paced to",
			budget: 1,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: 2, reset: 10 * s, limit: 3}),
				reserve(1*s, 0), reserve(1*s, 0),
				reserve(1*s, 9*s),
			},
		},
		{
			name:   "a stated limit below the configured one is paced to",
			budget: 5,
			steps: []step{
				reserve(1*s, 0),
				answer(1*s, observed{status: 200, remaining: -1, limit: 2}),
				reserve(1*s, 0),
				reserve(1*s, 9*s),
				ok(2 * s),
				reserve(10*s, 0), reserve(10*s, 0),
				reserve(10*s, 10*s),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPacer(tt.budget, 10*s)
			var pending []ticket // reserved, not yet answered
			for i, st := range tt.steps {
				now := at(st.at)
				if o := st.observe; o != nil {
					if len(pending) == 0 {
						t.Fatalf("step %d: no request to answer", i)
					}
					tk := pending[len(pending)-1]
					pending = pending[:len(pending)-1]
					h := http.Header{}
					if o.remaining >= 0 {
						h.Set("X-RateLimit-Remaining", strconv.Itoa(o.remaining))
					}
					if o.reset != 0 {
						h.Set("X-RateLimit-Reset", strconv.FormatInt(at(o.reset).Unix(), 10))
					}
					if o.limit != 0 {
						h.Set("X-RateLimit-Limit", strconv.Itoa(o.limit))
					}
					if o.retryAfter != "" {
						h.Set("Retry-After", o.retryAfter)
					}
					got := p.answered(tk, now, o.status, parseRateLimitAt(h, now))
					var want time.Time
					if o.status == http.StatusTooManyRequests {
						want = at(o.retryAt)
					}
					if !got.Equal(want) {
						t.Errorf("step %d: answered = %v, want %v", i, got.Sub(t0), want.Sub(t0))
					}
					continue
				}
				tk, wait, drained := p.reserve(now)
				if wait != st.wait || (drained != nil) != st.drained {
					t.Errorf("step %d: reserve at %v = %v, waiting on answers: %v; want %v, %v", i, st.at, wait, drained != nil, st.wait, st.drained)
				}
				if wait == 0 {
					pending = append(pending, tk)
				}
			}
		})
	}
}

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		limit, remaining, reset, retryAfter string
		want                                rateLimit
	}{
		{"", "", "", "", rateLimit{remaining: -1}},
		{"1666", "165", "1700000010", "", rateLimit{limit: 1666, remaining: 165, reset: time.Unix(1700000010, 0)}},
		{"", "0", "1700000010.250", "", rateLimit{remaining: 0, reset: time.UnixMilli(1700000010250)}},
		{"0", "-3", "yesterday", "", rateLimit{remaining: -1}},
		{"lots", "many", "0", "", rateLimit{remaining: -1}},
		{"", "", "", "30", rateLimit{remaining: -1, retryAfter: t0.Add(30 * time.Second)}},
		{"", "", "", "Tue, 14 Nov 2023 22:13:50 GMT", rateLimit{remaining: -1, retryAfter: time.Unix(1700000030, 0)}},
		{"", "", "", "-5", rateLimit{remaining: -1}},
		{"", "", "", "later", rateLimit{remaining: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.limit+"/"+tt.remaining+"/"+tt.reset+"/"+tt.retryAfter, func(t *testing.T) {
			h := http.Header{}
			for name, v := range map[string]string{"X-RateLimit-Limit": tt.limit, "X-RateLimit-Remaining": tt.remaining, "X-RateLimit-Reset": tt.reset, "Retry-After": tt.retryAfter} {
				if v != "" {
					h.Set(name, v)
				}
			}
			got := parseRateLimitAt(h, t0)
			if got.limit != tt.want.limit || got.remaining != tt.want.remaining || !got.reset.Equal(tt.want.reset) || !got.retryAfter.Equal(tt.want.retryAfter) {
				t.Errorf("parseRateLimit = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// wait, unlike reserve, runs on the real clock; these tests only check what
// must hold however slow the machine is.
func TestPacerWait(t *testing.T) {
	t.Run("everyone waits for a 429's reset", func(t *testing.T) {
		p := newPacer(100, time.Second)
		tk, _ := p.wait(context.Background())
		reset := time.Now().Add(200 * time.Millisecond)
		p.answered(tk, time.Now(), http.StatusTooManyRequests, rateLimit{remaining: 0, reset: reset})
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if _, err := p.wait(context.Background()); err != nil {
					t.Error(err)
				}
				if now := time.Now(); now.Before(reset) {
					t.Errorf("released at %v, before the reset at %v", now, reset)
				}
			})
		}
		wg.Wait()
	})
	t.Run("a call that may not wait is refused, not held", func(t *testing.T) {
		p := newPacer(100, time.Second)
		noWait := WithoutWaiting(context.Background())
		tk, err := p.wait(noWait)
		if err != nil {
			t.Fatalf("wait with budget left = %v, want a ticket", err)
		}
		p.answered(tk, time.Now(), http.StatusTooManyRequests, rateLimit{remaining: 0, reset: time.Now().Add(time.Hour)})
		if _, err := p.wait(noWait); !errors.Is(err, ErrWouldWait) {
			t.Errorf("wait after a 429 = %v, want ErrWouldWait", err)
		}
		p.mu.Lock()
		inflight := p.inflight
		p.mu.Unlock()
		if inflight != 0 {
			t.Errorf("%d requests in flight after a refused wait, want 0", inflight)
		}
	})
	t.Run("cancellation ends the wait", func(t *testing.T) {
		p := newPacer(100, time.Second)
		tk, _ := p.wait(context.Background())
		p.answered(tk, time.Now(), http.StatusTooManyRequests, rateLimit{remaining: -1})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := p.wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("wait = %v, want context.Canceled", err)
		}
	})
}

package intercom_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// These tests run the client against the fake's window limit on the real
// clock, with short windows. They assert only what must hold however slow
// the machine is: no 429s, and nobody sent before a reset.

// send sends n messages from workers goroutines, retrying those that are
// rate limited, as the bridge's delivery stage does. It fails the test on
// any other error.
func send(t *testing.T, c *intercom.Client, workers, n int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				for attempt := 1; ; attempt++ {
					_, err := c.CreateMessage(context.Background(), email())
					if err == nil {
						break
					}
					if d := intercom.Classify(err); d.Class != intercom.RateLimited || attempt == 20 {
						t.Errorf("attempt %d: %v (%+v)", attempt, err, d)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestPacingWithinWindowLimit(t *testing.T) {
	const window = 250 * time.Millisecond
	tests := []struct {
		name           string
		limit          int // of the fake, per window
		perMinute      int // of the client
		workers, total int
	}{
		// Configured right: the client's budget per window is the fake's.
		{name: "configured right", limit: 5, perMinute: 30, workers: 8, total: 20},
		// Configured too high: X-RateLimit-Remaining reaching 0 stops the
		// client before the fake has to refuse anything. One worker, so that
		// each answer is read before the next request leaves.
		{name: "too high, one worker, headers save it", limit: 3, perMinute: 600000, workers: 1, total: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			srv.SetWindowLimit(tt.limit, window)
			c := newClient(t, srv, func(cfg *intercom.Config) {
				cfg.RateLimitPerMinute = tt.perMinute
				cfg.Window = window
			})
			send(t, c, tt.workers, tt.total)
			if got := len(srv.Messages()); got != tt.total {
				t.Errorf("fake accepted %d messages, want %d", got, tt.total)
			}
			for _, r := range srv.Requests() {
				if r.StatusCode == 429 {
					t.Errorf("request at %v answered 429", r.Time.Format("15:04:05.000"))
				}
			}
		})
	}
}

// A 429 storm: every caller is refused at once. Afterwards no caller, not
// even one that never got a 429, sends before the reset, and all get through.
func TestPacing429Storm(t *testing.T) {
	const callers = 10
	srv := newFake(t)
	srv.SetWindowLimit(0, 300*time.Millisecond) // the window sets the scripted 429s' reset
	srv.FailNext(callers, 429)
	c := newClient(t, srv, nil)

	// The storm: all callers at once, all refused.
	var (
		mu      sync.Mutex
		resetAt time.Time
		wg      sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			_, err := c.CreateMessage(context.Background(), email())
			d := intercom.Classify(err)
			if d.Class != intercom.RateLimited || d.RetryAt.IsZero() {
				t.Errorf("Classify(%v) = %+v, want rate limited with a time to retry", err, d)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if d.RetryAt.After(resetAt) {
				resetAt = d.RetryAt
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// The recovery: the refused callers retry, and as many new ones join.
	firstRetry := len(srv.Requests())
	send(t, c, 2*callers, 2*callers)
	reqs := srv.Requests()
	if got := len(srv.Messages()); got != 2*callers {
		t.Errorf("fake accepted %d messages, want %d", got, 2*callers)
	}
	for _, r := range reqs[firstRetry:] {
		if r.StatusCode != 200 {
			t.Errorf("after the storm, a request was answered %d", r.StatusCode)
		}
		if r.Time.Before(resetAt) {
			t.Errorf("a request arrived at %s, before the reset at %s", r.Time.Format("15:04:05.000"), resetAt.Format("15:04:05.000"))
		}
	}
}

// A client configured far above the fake's limit, with many concurrent
// callers, still gets every message through: each 429 holds everyone back
// until the reset instead of letting them retry at once.
func TestPacingRecoversFromOverload(t *testing.T) {
	const (
		window  = 300 * time.Millisecond
		limit   = 4
		callers = 12
	)
	srv := newFake(t)
	srv.SetWindowLimit(limit, window)
	c := newClient(t, srv, func(cfg *intercom.Config) {
		cfg.RateLimitPerMinute = 600000
		cfg.Window = window
	})
	send(t, c, callers, callers)
	if got := len(srv.Messages()); got != callers {
		t.Errorf("fake accepted %d messages, want %d", got, callers)
	}
	// Each window lets limit requests through; the rest of a burst is
	// refused. Retrying without waiting for the reset would instead refuse
	// requests by the hundred within one window.
	reqs := srv.Requests()
	if n429 := len(reqs) - callers; n429 > callers*callers/limit {
		t.Errorf("%d requests refused with 429; the callers did not wait for the reset", n429)
	}
}

// Errors must never reveal the token, whatever went wrong.
func TestTokenNeverInErrors(t *testing.T) {
	srv := newFake(t)
	tokens := []string{srv.Token(), "wrong-" + strconv.Itoa(int(time.Now().UnixNano()))}
	for _, tok := range tokens {
		c := newClient(t, srv, func(cfg *intercom.Config) { cfg.Token = tok; cfg.Timeout = 100 * time.Millisecond })
		var errs []error
		try := func(setup func()) {
			setup()
			_, err := c.CreateMessage(context.Background(), intercom.Message{MessageType: "email", Body: tok})
			errs = append(errs, err)
			_, err = c.Me(context.Background())
			errs = append(errs, err)
		}
		try(func() {})
		try(func() { srv.FailNext(2, 500) })
		try(func() { srv.FailNextHTML504(2) })
		try(func() { srv.DropNext(2) })
		try(func() { srv.SetDelay(time.Second) })
		srv.SetDelay(0)
		for _, err := range errs {
			if err == nil {
				continue
			}
			texts := []string{err.Error(), intercom.Classify(err).Reason}
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				texts = append(texts, e.Error())
			}
			for _, s := range texts {
				if strings.Contains(s, tok) {
					t.Errorf("token in %q", s)
				}
			}
		}
	}
}

// Intercom's stated limit wins over the configured one: a client configured
// for one request per window sends at the rate the fake states once an
// answer has stated it.
func TestPacingFollowsStatedLimit(t *testing.T) {
	srv := newFake(t)
	srv.SetWindowLimit(50, time.Hour)
	c := newClient(t, srv, func(cfg *intercom.Config) { cfg.RateLimitPerMinute = 6 })
	start := time.Now()
	for i := range 5 {
		if _, err := c.CreateMessage(context.Background(), email()); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("5 messages took %v: the client paced to its configured limit, not the stated one", d)
	}
}

// Package lograte keeps a repeated log line from flooding the log: one
// line per reason per interval, which then says how many were held back.
package lograte

import (
	"sync"
	"time"
)

// maxKeys bounds the reasons remembered, so that keys taken from requests
// cannot grow the map without end; past it, old reasons are forgotten.
//
// It imports none of the bridge's packages.
const maxKeys = 1024

// Limiter decides, per reason, whether a log line goes out now. It is
// safe for concurrent use.
type Limiter struct {
	interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	slots map[string]*slot
}

type slot struct {
	last       time.Time // when a line last went out
	suppressed int       // lines held back since
}

// New returns a Limiter that lets one line per reason through per
// interval.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, now: time.Now, slots: map[string]*slot{}}
}

// Allow reports whether a line for reason may be logged now and, when it
// may, how many lines for that reason were held back since the last one.
func (l *Limiter) Allow(reason string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slots[reason]
	if s == nil {
		if len(l.slots) >= maxKeys {
			l.forget(now)
		}
		l.slots[reason] = &slot{last: now}
		return true, 0
	}
	if now.Sub(s.last) < l.interval {
		s.suppressed++
		return false, 0
	}
	suppressed, s.suppressed, s.last = s.suppressed, 0, now
	return true, suppressed
}

// forget drops the reasons quiet for an interval, or all of them when none
// is: a reason forgotten only loses its count of held-back lines.
func (l *Limiter) forget(now time.Time) {
	for k, s := range l.slots {
		if now.Sub(s.last) >= l.interval {
			delete(l.slots, k)
		}
	}
	if len(l.slots) >= maxKeys {
		clear(l.slots)
	}
}

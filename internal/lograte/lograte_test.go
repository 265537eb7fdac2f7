package lograte

import (
	"fmt"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	type step struct {
		after      time.Duration // since the previous step
		reason     string
		ok         bool
		suppressed int
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"first line goes out", []step{{0, "a", true, 0}}},
		{"repeats within the interval are held back, then counted", []step{
			{0, "a", true, 0}, {time.Second, "a", false, 0}, {time.Second, "a", false, 0}, {9 * time.Second, "a", true, 2},
		}},
		{"reasons are independent", []step{{0, "a", true, 0}, {0, "b", true, 0}, {0, "a", false, 0}, {0, "b", false, 0}}},
		{"the count starts again after a line", []step{
			{0, "a", true, 0}, {0, "a", false, 0}, {10 * time.Second, "a", true, 1}, {10 * time.Second, "a", true, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			l := New(10 * time.Second)
			l.now = func() time.Time { return now }
			for i, s := range tc.steps {
				now = now.Add(s.after)
				ok, n := l.Allow(s.reason)
				if ok != s.ok || n != s.suppressed {
					t.Errorf("step %d (%s): got %v, %d; want %v, %d", i, s.reason, ok, n, s.ok, s.suppressed)
				}
			}
		})
	}
}

func TestAllowBoundsTheReasons(t *testing.T) {
	l := New(time.Minute)
	for i := range 10 * maxKeys {
		l.Allow(fmt.Sprint(i))
	}
	if n := len(l.slots); n > maxKeys {
		t.Errorf("%d reasons remembered, want at most %d", n, maxKeys)
	}
}

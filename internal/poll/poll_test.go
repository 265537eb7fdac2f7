package poll_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/poll"
)

func TestUntil(t *testing.T) {
	tests := []struct {
		name    string
		trueAt  int32 // the call from which cond holds; 0: never
		timeout time.Duration
		want    bool
	}{
		{name: "at once", trueAt: 1, timeout: time.Second, want: true},
		{name: "after a few checks", trueAt: 4, timeout: 5 * time.Second, want: true},
		{name: "never", trueAt: 0, timeout: 50 * time.Millisecond, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			got := poll.Until(tt.timeout, func() bool {
				n := calls.Add(1)
				return tt.trueAt > 0 && n >= tt.trueAt
			})
			if got != tt.want {
				t.Errorf("Until = %v after %d checks, want %v", got, calls.Load(), tt.want)
			}
			if tt.want && calls.Load() != tt.trueAt {
				t.Errorf("checked %d times, want %d", calls.Load(), tt.trueAt)
			}
		})
	}
}

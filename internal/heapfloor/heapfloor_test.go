package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/poll"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name        string
		live, floor uint64
		want        int
	}{
		{"a small heap grows by the floor", 16 * mib, 32 * mib, 200},
		{"a tiny heap, capped", 1 * mib, 32 * mib, maxPercent},
		{"nothing live yet", 0, 32 * mib, maxPercent},
		{"a heap of the floor: Go's default", 32 * mib, 32 * mib, 100},
		{"a heap above the floor: Go's default, never less", 300 * mib, 32 * mib, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percent(tt.live, tt.floor); got != tt.want {
				t.Errorf("Percent(%d, %d) = %d, want %d", tt.live, tt.floor, got, tt.want)
			}
		})
	}
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// After a collection GOGC follows the live heap; stop puts Go's default
// back; a GOGC in the environment is left alone.
func TestStart(t *testing.T) {
	t.Setenv("GOGC", "") // restored after the test
	os.Unsetenv("GOGC")
	stop := Start(1 << 40) // a floor no heap here reaches: always the cap
	// Start tunes at once; what a collection tunes shows only once GOGC
	// is something else.
	debug.SetGCPercent(150)
	poll.For(t, 10*time.Second, "GOGC tuned after a collection", func() bool {
		runtime.GC()
		return gcPercent() == maxPercent
	})
	stop()
	if p := gcPercent(); p != 100 {
		t.Errorf("GOGC %d after stop, want 100", p)
	}
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // the finalizer armed before stop has run by now
	if p := gcPercent(); p != 100 {
		t.Errorf("GOGC %d after a collection past stop, want 100", p)
	}

	t.Setenv("GOGC", "100")
	stop = Start(1 << 40)
	defer stop()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if p := gcPercent(); p != 100 {
		t.Errorf("GOGC %d with GOGC=100 in the environment, want 100", p)
	}
}

// Package heapfloor gives Go's garbage collector a floor of headroom.
//
// Go collects once the heap has grown by GOGC percent (100 by default) of
// what the last collection left live. A bridge keeps a few MB live, so by
// default it collects every few MB it allocates: many times a second under
// load, for a fifth of its CPU. Start raises GOGC after each collection so
// that the heap may grow by Floor before the next one while the live heap
// is small, and leaves it at Go's 100 once the live heap is Floor or more:
// a bridge that holds much (an embedded NATS server's windows) collects as
// Go's default does, and one that holds little spends at most Floor more.
package heapfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// maxPercent bounds GOGC however small the live heap, and so what a
// bridge that has just started (nothing live yet) lets its heap grow to
// before its first collection: 4 MB at GOGC=100, 16 MB at 400.
const maxPercent = 400

// Percent is the GOGC that lets a heap of live bytes grow by floor before
// the next collection: at least Go's default of 100, at most maxPercent.
func Percent(live, floor uint64) int {
	if live == 0 {
		return maxPercent
	}
	p := floor * 100 / live
	return int(max(100, min(p, maxPercent)))
}

// Start sets GOGC from the live heap after every collection, until the
// returned stop is called; stop puts Go's default back. It does nothing
// when GOGC is set in the environment: the operator's setting wins.
func Start(floor uint64) (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	t := &tuner{floor: floor}
	t.tune()
	t.arm()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stopped = true
		debug.SetGCPercent(100)
	}
}

type tuner struct {
	floor uint64

	mu      sync.Mutex
	stopped bool
	sample  [1]metrics.Sample
}

// sentinel is collected by every collection; its finalizer, which then
// runs, tunes and arms a new one. Not tiny: tiny objects share a block,
// and their finalizers run only once all of the block is unreachable.
type sentinel struct{ _ [16]byte }

func (t *tuner) arm() {
	runtime.SetFinalizer(new(sentinel), func(*sentinel) {
		if t.tune() {
			t.arm()
		}
	})
}

// tune sets GOGC from the live heap the last collection left; false once
// stopped.
func (t *tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.sample[0].Name = "/gc/heap/live:bytes"
	metrics.Read(t.sample[:])
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		debug.SetGCPercent(Percent(t.sample[0].Value.Uint64(), t.floor))
	}
	return true
}

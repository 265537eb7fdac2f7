package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// TestCoreSourceStopStoresWhatItHolds: a core source stores a burst, and
// Stop returns only once what its subscription held is stored, each
// message once.
func TestCoreSourceStopStoresWhatItHolds(t *testing.T) {
	const burst = 3000
	e := newEnv(t)
	sources := startCoreSources(t, e)
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := e.nc.Publish("telemetry.usage", fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	publish(0, burst)
	poll.For(t, 30*time.Second, "the burst to be stored", func() bool { return natstest.Msgs(t, e.js, e.top.Events.Name) == burst })

	publish(burst, 2*burst)
	sources.Stop()
	if n := natstest.Msgs(t, e.js, e.top.Events.Name); n != 2*burst {
		t.Errorf("%d stored when Stop returned, want %d", n, 2*burst)
	}
	seen := map[string]bool{}
	for _, env := range e.stored() {
		if seen[string(env.Data)] {
			t.Errorf("%s stored twice", env.Data)
		}
		seen[string(env.Data)] = true
	}
}

// BenchmarkCoreSource measures a core source storing a burst of b.N
// messages published at once, from the first publish to the last stored.
func BenchmarkCoreSource(b *testing.B) {
	e := newEnv(b)
	sources := startCoreSources(b, e)
	defer sources.Stop()
	body := []byte(`{"kind":"usage","user":"u-1","used":95}`)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := e.nc.Publish("telemetry.usage", body); err != nil {
			b.Fatal(err)
		}
	}
	e.nc.Flush()
	if !poll.Until(5*time.Minute, func() bool { return natstest.Msgs(b, e.js, e.top.Events.Name) == uint64(b.N) }) {
		b.Fatal("not all stored")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// startCoreSources starts e's core sources only.
func startCoreSources(tb testing.TB, e *env) *NATSSources {
	tb.Helper()
	var core []Source
	for _, s := range e.sources {
		if s.Kind == KindCore {
			core = append(core, s)
		}
	}
	sources, err := StartNATSSources(context.Background(), e.top, core, e.nc, e.js, zerolog.Nop(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return sources
}

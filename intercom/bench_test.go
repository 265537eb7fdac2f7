package intercom_test

import (
	"context"
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// BenchmarkCreateMessage measures one CreateMessage against the in-process
// fake over loopback HTTP. The time and allocations include the fake's side
// of each exchange (it runs in the same process), so they bound the
// client's overhead from above.
func BenchmarkCreateMessage(b *testing.B) {
	// Keep the recordings small: the fake would otherwise hold b.N requests.
	srv := newFake(b, intercomtest.WithRecordLimit(1))
	c := newClient(b, srv, func(cfg *intercom.Config) {
		cfg.RateLimitPerMinute = 1 << 30 // measure the client, not the pacing
	})
	ctx := context.Background()
	m := email()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}

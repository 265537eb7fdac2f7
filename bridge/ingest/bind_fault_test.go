//go:build fault

package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/poll"
)

// TestFaultBindConnectionClosed cuts the bind source's connection while
// copies are on their way: no message is acked whose copy is not stored,
// and a bridge started afterwards stores every message exactly once (those
// in flight at the cut come back after the consumer's AckWait, 30 s, and
// the copies stored before it are recognised by their Nats-Msg-Id).
func TestFaultBindConnectionClosed(t *testing.T) {
	const n = 20000
	e := bindEnv(t, n)
	sources, nc := runBindSource(t, e, zerolog.Nop())
	cons := e.bindConsumer()
	poll.For(t, 30*time.Second, "a third of the messages acked", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.AckFloor.Stream > n/3
	})
	nc.Close()
	sources.Stop()
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream >= n {
		t.Fatalf("every message acked before the cut (ack floor %d): nothing was in flight", info.AckFloor.Stream)
	}
	e.checkAckedStored("after the cut")

	sources, _ = runBindSource(t, e, zerolog.Nop())
	defer sources.Stop()
	e.waitAllStoredOnce(n, 90*time.Second)
}

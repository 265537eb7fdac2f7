//go:build fault

package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFaultWaitingAcrossKill: 1,000 messages wait (100 of them cancelled,
// 100 replaced); the bridge is SIGKILLed during the wait and comes back
// after its first messages came due. Each is sent once, at or after its
// time; no cancelled one is sent. The kill is before any comes due, so no
// send is in flight and "once" is exact.
func TestFaultWaitingAcrossKill(t *testing.T) {
	e := newE2E(t)
	if err := os.WriteFile(filepath.Join(e.dir, "rules.yaml"), []byte(waitingRules), 0o644); err != nil {
		t.Fatal(err)
	}
	b := e.newBridge("bridge", "warn", true)
	b.start()
	first := time.Now().Add(8 * time.Second)
	run, events := planWaiting(1000, first, 10*time.Millisecond)
	e.publishWaiting(events)
	// Every event matched (the waits stored), none due yet.
	e.waitFor(60*time.Second, func() string { return "the events matched: " + e.pipelineState() }, e.settled)
	if time.Now().After(first) {
		t.Fatalf("the events took %v past the first due time to be matched: the machine is too slow for this plan", time.Since(first))
	}
	b.kill()
	down := time.Until(first) + 2*time.Second // the first 200 come due while no bridge runs
	t.Logf("killed %v before the first due time; down for %v", time.Until(first).Round(time.Millisecond), down.Round(time.Millisecond))
	time.Sleep(down)
	restart := time.Now()
	b.start()
	late := e.checkWaiting(run, 3*time.Minute)
	afterRestart := map[string]time.Duration{}
	for user, d := range late {
		if run.due[user].After(restart) {
			afterRestart[user] = d
		}
	}
	t.Logf("%d sent once, %d cancelled, none early; lateness p50 %v, p99 %v, max %v; of the %d due after the restart: p50 %v, p99 %v",
		len(late), len(run.cancelled), percentile(late, 0.5), percentile(late, 0.99), percentile(late, 1),
		len(afterRestart), percentile(afterRestart, 0.5), percentile(afterRestart, 0.99))
}

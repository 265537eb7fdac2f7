package pipeline

import (
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/rules"
)

func TestSimulator(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	type offer struct {
		after             time.Duration // since t0
		rule, dedupe, thr string        // thr: the throttle key, "" for none
		waitFor           time.Duration // a schedule this long after the event
		want              string
	}
	for _, tc := range []struct {
		name   string
		offers []offer
	}{
		{"one key is sent once within the dedupe window", []offer{
			{0, "a", "k1", "", 0, OutcomeSent},
			{time.Hour, "a", "k1", "", 0, OutcomeDuplicate},
			{time.Hour, "b", "k1", "", 0, OutcomeSent}, // another rule, another delivery key
			{25 * time.Hour, "a", "k1", "", 0, OutcomeSent},
		}},
		{"a throttle window holds until it ends, by the events' time", []offer{
			{0, "a", "k1", "u1", 0, OutcomeSent},
			{time.Hour, "a", "k2", "u1", 0, OutcomeThrottled},
			{time.Hour, "a", "k3", "u2", 0, OutcomeSent},
			{3 * time.Hour, "a", "k4", "u1", 0, OutcomeSent},
			{3 * time.Hour, "a", "k2", "u1", 0, OutcomeThrottled}, // a throttled key was not sent
		}},
		{"a duplicate takes no throttle window", []offer{
			{0, "a", "k1", "u1", 0, OutcomeSent},
			{time.Hour, "a", "k1", "u1", 0, OutcomeDuplicate},
		}},
		{"a message whose schedule lies ahead waits", []offer{
			{0, "a", "k1", "", time.Hour, OutcomeWaiting},
			{0, "a", "k1", "", 0, OutcomeSent},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim := NewSimulator(24*time.Hour, Policy{MaxAttempts: 3, OnUncertain: "resend"})
			for i, o := range tc.offers {
				at := t0.Add(o.after)
				d := &rules.Delivery{Rule: o.rule, DedupeKey: o.dedupe}
				if o.thr != "" {
					d.Throttle = &rules.Throttle{Key: o.thr, Per: 2 * time.Hour}
				}
				if o.waitFor > 0 {
					d.Schedule = &rules.Schedule{At: at.Add(o.waitFor), Key: o.dedupe}
				}
				got, err := sim.Offer(d, at)
				if err != nil {
					t.Fatal(err)
				}
				if got != o.want {
					t.Errorf("offer %d (%s %s at +%s): %s, want %s", i, o.rule, o.dedupe, o.after, got, o.want)
				}
			}
		})
	}
}

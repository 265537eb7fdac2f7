package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/rules"
)

// BenchmarkJobJSON measures a job's trip through the outbox's JSON: stage 1
// writes one per match, stage 2 reads it back.
func BenchmarkJobJSON(b *testing.B) {
	job := &Job{Key: "order-paid/evt-000123", Rule: "order-paid", EventID: "evt-000123", Source: "shop", DedupeKey: "evt-000123",
		Received: time.Date(2026, 12, 1, 16, 4, 5, 0, time.UTC),
		Message: rules.Message{MessageType: "inapp", Body: "<p>Hello u-123, your order 123 is paid.</p>",
			From: rules.Admin{Type: "admin", ID: "394051"}, To: rules.Recipients{{Type: "user", UserID: "u-123"}}}}
	names := broker.NewTopology(broker.TopologyOptions{Prefix: "bridge"})
	b.Run("write", func(b *testing.B) {
		for b.Loop() {
			if _, err := JobMsg(names, job); err != nil {
				b.Fatal(err)
			}
		}
	})
	m, err := JobMsg(names, job)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			var j Job
			if err := json.Unmarshal(m.Data, &j); err != nil {
				b.Fatal(err)
			}
		}
	})
}

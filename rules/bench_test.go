package rules

import (
	"fmt"
	"strings"
	"testing"
)

// benchSet builds n rules spread over 1,000 subjects: rule i listens on
// app<i%1000>.evt<i/1000>, so every subject has at most one rule and an
// event's candidates stay the same whatever n is.
func benchSet(b *testing.B, n int) *Set {
	b.Helper()
	var src strings.Builder
	src.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&src, `  - name: r%d
    on: {sources: [shop], subjects: ["app%d.evt%d"]}
    when: event.type == "order.paid" && event.amount > 100
    message:
      type: email
      from: "1"
      to: {type: user, user_id: '{{ .event.customer.id }}'}
      subject: 'Thanks, {{ .event.customer.first_name | default "friend" }}'
      body: '<p>Hi {{ .event.customer.first_name }}, we got {{ money .event.amount .event.currency }}.</p>'
    dedupe: '{{ .event.order_id }}'
`, i, i%1000, i/1000)
	}
	set, err := Parse([]File{{Name: "bench.yaml", Data: []byte(src.String())}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func benchEvent(subject string, amount float64) *Event {
	return &Event{ID: "e1", Source: "shop", Subject: subject, Data: map[string]any{
		"type": "order.paid", "amount": amount, "currency": "EUR", "order_id": int64(1001),
		"customer": map[string]any{"id": "u-42", "first_name": "Ada"},
	}}
}

// BenchmarkMatch measures matching: an event no rule listens on (miss), an
// event with one candidate whose condition is false (candidate), and events
// drawn from all 1,000 subjects (mixed).
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		set := benchSet(b, n)
		b.Run(fmt.Sprintf("miss/rules=%d", n), func(b *testing.B) {
			ev := benchEvent("other.subject", 500)
			b.ReportAllocs()
			for b.Loop() {
				if res := set.Evaluate(ev); len(res.Deliveries) != 0 {
					b.Fatal("matched")
				}
			}
		})
		b.Run(fmt.Sprintf("candidate/rules=%d", n), func(b *testing.B) {
			ev := benchEvent("app7.evt0", 50) // rule r7's subject; amount fails its condition
			b.ReportAllocs()
			for b.Loop() {
				if res := set.Evaluate(ev); len(res.Deliveries) != 0 || len(res.Errors) != 0 {
					b.Fatal("matched")
				}
			}
		})
		b.Run(fmt.Sprintf("mixed/rules=%d", n), func(b *testing.B) {
			events := make([]*Event, 1000)
			for i := range events {
				events[i] = benchEvent(fmt.Sprintf("app%d.evt0", i), 50)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				set.Evaluate(events[i%len(events)])
				i++
			}
		})
	}
}

// BenchmarkRender measures one email end to end: index, condition, and the
// subject, body, recipient and dedupe templates.
func BenchmarkRender(b *testing.B) {
	set := benchSet(b, 10)
	ev := benchEvent("app3.evt0", 150)
	b.ReportAllocs()
	for b.Loop() {
		if res := set.Evaluate(ev); len(res.Deliveries) != 1 {
			b.Fatalf("got %+v", res)
		}
	}
}

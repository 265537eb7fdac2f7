package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sources' metrics.
type Metrics struct {
	EventsReceived  *prometheus.CounterVec // source
	WebhookRequests *prometheus.CounterVec // source, code
}

// NewMetrics creates the sources' metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_events_received_total",
			Help: "Events received, by source: stored by a webhook, bind or core source, or first read by stage 1 from a capture source's subjects (a sender's retry of a stored event is not counted again)."}, []string{"source"}),
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_webhook_requests_total",
			Help: "Webhook requests answered, by source (\"\" when unknown) and HTTP status."}, []string{"source", "code"}),
	}
	reg.MustRegister(m.EventsReceived, m.WebhookRequests)
	return m
}

// Precreate makes each source's series exist at 0 before its first event.
func (m *Metrics) Precreate(sources []string) {
	for _, s := range sources {
		m.EventsReceived.WithLabelValues(s)
	}
}

// orNew returns m, or metrics registered nowhere when m is nil.
func (m *Metrics) orNew() *Metrics {
	if m != nil {
		return m
	}
	return NewMetrics(prometheus.NewRegistry())
}

// webhook counts a request and the events it stored that were new.
func (m *Metrics) webhook(source string, status int, fresh int) {
	m.WebhookRequests.WithLabelValues(source, strconv.Itoa(status)).Inc()
	if fresh > 0 {
		m.EventsReceived.WithLabelValues(source).Add(float64(fresh))
	}
}

// Package metrics holds the bridge's Prometheus metrics, registered on a
// registry of their own (no global state).
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the bridge's metrics.
type Metrics struct {
	Registry *prometheus.Registry

	EventsReceived  *prometheus.CounterVec // source
	WebhookRequests *prometheus.CounterVec // source, code
	EventsInvalid   *prometheus.CounterVec // source
	RuleMatches     *prometheus.CounterVec // rule
	RuleErrors      *prometheus.CounterVec // rule
	Deliveries      *prometheus.CounterVec // rule, outcome
	DeadLetters     *prometheus.CounterVec // reason
	DeliveryLatency prometheus.Histogram   // event received -> Intercom accepted

	IntercomDuration  *prometheus.HistogramVec // code
	IntercomRemaining prometheus.Gauge
	IntercomTokenOK   prometheus.Gauge

	OutboxPending   prometheus.Gauge
	OutboxOldestAge prometheus.Gauge
	EventsPending   prometheus.Gauge

	RulesLoaded         prometheus.Gauge
	RulesReloadErrors   prometheus.Counter
	RulesReloadSuccess  prometheus.Gauge // 1 if the last reload worked
	RulesLastReloadTime prometheus.Gauge
	RulesHash           *prometheus.GaugeVec // hash
}

// Delivery outcomes, the values of the outcome label.
const (
	Sent            = "sent"
	Duplicate       = "duplicate"
	Throttled       = "throttled"
	DeadLetter      = "dead_letter"
	Retry           = "retry"
	RateLimited     = "rate_limited"
	UncertainResend = "uncertain_resend"
	DryRun          = "dry_run"
)

// New creates the metrics with the Go and process collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{Registry: r}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.EventsReceived = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_events_received_total",
		Help: "Events stored in the events stream, by source."}, []string{"source"})
	m.WebhookRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_webhook_requests_total",
		Help: "Webhook requests answered, by source and HTTP status."}, []string{"source", "code"})
	m.EventsInvalid = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_events_invalid_total",
		Help: "Events that could not be read, by source."}, []string{"source"})
	m.RuleMatches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_rule_matches_total",
		Help: "Events a rule matched and rendered."}, []string{"rule"})
	m.RuleErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_rule_errors_total",
		Help: "Events for which a rule's condition or templates failed."}, []string{"rule"})
	m.Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_deliveries_total",
		Help: "Delivery attempts by rule and outcome: sent, duplicate, throttled, dead_letter, retry, rate_limited, uncertain_resend, dry_run."}, []string{"rule", "outcome"})
	m.DeadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_dead_letters_total",
		Help: "Entries written to the dead-letter stream, by reason."}, []string{"reason"})
	m.DeliveryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bridge_delivery_latency_seconds",
		Help:    "Time from an event's arrival to Intercom accepting its message.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}})
	m.IntercomDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bridge_intercom_request_duration_seconds",
		Help: "Intercom API requests by HTTP status (0: no answer).", Buckets: prometheus.DefBuckets}, []string{"code"})
	m.IntercomRemaining = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_intercom_ratelimit_remaining",
		Help: "X-RateLimit-Remaining of Intercom's last answer."})
	m.IntercomTokenOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_intercom_token_ok",
		Help: "0 after Intercom rejected the token (401), else 1."})
	m.OutboxPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_outbox_pending",
		Help: "Messages waiting in the outbox, including those being sent."})
	m.OutboxOldestAge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_outbox_oldest_age_seconds",
		Help: "Age of the oldest message waiting in the outbox."})
	m.EventsPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_events_pending",
		Help: "Events stored but not yet matched."})
	m.RulesLoaded = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_loaded",
		Help: "Rules in the running rule set."})
	m.RulesReloadErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "bridge_rules_reload_errors_total",
		Help: "Rule reloads that failed; the running rules stayed."})
	m.RulesReloadSuccess = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_last_reload_successful",
		Help: "Whether the last rule reload succeeded."})
	m.RulesLastReloadTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_last_reload_success_timestamp_seconds",
		Help: "When the rules were last loaded successfully."})
	m.RulesHash = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_rules_hash",
		Help: "1 for the hash of the running rule files."}, []string{"hash"})
	for _, c := range []prometheus.Collector{m.EventsReceived, m.WebhookRequests, m.EventsInvalid, m.RuleMatches, m.RuleErrors,
		m.Deliveries, m.DeadLetters, m.DeliveryLatency, m.IntercomDuration, m.IntercomRemaining, m.IntercomTokenOK,
		m.OutboxPending, m.OutboxOldestAge, m.EventsPending, m.RulesLoaded, m.RulesReloadErrors, m.RulesReloadSuccess,
		m.RulesLastReloadTime, m.RulesHash} {
		f(c)
	}
	m.IntercomTokenOK.Set(1)
	return m
}

// SetRules records a rule set that was just loaded and put in force.
func (m *Metrics) SetRules(count int, hash string) {
	m.RulesLoaded.Set(float64(count))
	m.RulesHash.Reset()
	m.RulesHash.WithLabelValues(hash).Set(1)
	m.RulesReloadSuccess.Set(1)
	m.RulesLastReloadTime.SetToCurrentTime()
}

// Code formats an HTTP status as a label value.
func Code(status int) string { return strconv.Itoa(status) }

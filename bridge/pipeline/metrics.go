package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intercom-bridge/bridge/rules"
)

// Delivery outcomes: the values of bridge_deliveries_total's outcome label.
// Each counts a decision about one job, so one message can count under
// several (retry, then sent).
const (
	OutcomeSent            = "sent"
	OutcomeDuplicate       = "duplicate"        // its key was already queued or sent: dropped
	OutcomeThrottled       = "throttled"        // its throttle window was taken: dropped
	OutcomeDeadLetter      = "dead_letter"      // written to the dead-letter stream
	OutcomeRetry           = "retry"            // failed; tried again after a backoff
	OutcomeRateLimited     = "rate_limited"     // 429; tried again after the reset, no attempt spent
	OutcomeInFlight        = "in_flight"        // held by another worker; looked at again later, never sent twice
	OutcomeUncertainResend = "uncertain_resend" // sent again after an ambiguous outcome (on_uncertain: resend)
	OutcomeAmbiguousAnswer = "ambiguous_answer" // a 2xx from Intercom (or a proxy) without a message id: not taken as sent
	OutcomeDryRun          = "dry_run"
)

// Metrics are the pipeline's metrics.
type Metrics struct {
	EventsInvalid   *prometheus.CounterVec // source
	RuleMatches     *prometheus.CounterVec // rule, mode (rules.ModeLive, rules.ModeShadow)
	RuleErrors      *prometheus.CounterVec // rule
	Deliveries      *prometheus.CounterVec // rule, outcome
	DeadLetters     *prometheus.CounterVec // reason
	DeliveryLatency prometheus.Histogram   // event received -> Intercom accepted

	Scheduled        *prometheus.CounterVec // rule, outcome: see ScheduledOutcomes
	ScheduledPending *prometheus.GaugeVec   // rule

	ContactLookups        *prometheus.CounterVec // outcome: hit, miss, not_found, error
	ContactLookupDuration prometheus.Histogram   // look-ups that asked Intercom

	EventsPending   prometheus.Gauge
	OutboxPending   prometheus.Gauge
	OutboxOldestAge prometheus.Gauge

	// The state the bridge keeps in NATS, which grows with the messages
	// sent and shrinks as windows expire.
	StreamMessages *prometheus.GaugeVec // stream
	StreamBytes    *prometheus.GaugeVec // stream
	LedgerKeys     prometheus.Gauge
	LedgerBytes    prometheus.Gauge
}

// Outcomes, Reasons and LookupOutcomes list the label values, so that each
// series exists at 0 before its first event (see Precreate).
var (
	Outcomes = []string{OutcomeSent, OutcomeDuplicate, OutcomeThrottled, OutcomeDeadLetter, OutcomeRetry,
		OutcomeRateLimited, OutcomeInFlight, OutcomeUncertainResend, OutcomeAmbiguousAnswer, OutcomeDryRun, OutcomeCancelled}
	Reasons        = []string{ReasonPermanent, ReasonExhausted, ReasonUncertain, ReasonRender, ReasonContactNotFound, ReasonInvalidEvent}
	LookupOutcomes = []string{LookupHit, LookupMiss, LookupNotFound, LookupError}
)

// Precreate makes every series whose labels are known at load exist at 0:
// per rule (in its mode), per source, per reason and outcome. An alert on
// increase() then fires on the first dead letter, not on the second.
// Called again on a reload, for the rules it adds.
func (m *Metrics) Precreate(rs []*rules.Rule, sources []string) {
	for _, rule := range rs {
		r := rule.Name
		m.RuleMatches.WithLabelValues(r, rule.Mode)
		m.RuleErrors.WithLabelValues(r)
		for _, o := range Outcomes {
			m.Deliveries.WithLabelValues(r, o)
		}
		for _, o := range ScheduledOutcomes {
			m.Scheduled.WithLabelValues(r, o)
		}
	}
	for _, s := range sources {
		m.EventsInvalid.WithLabelValues(s)
	}
	for _, r := range Reasons {
		m.DeadLetters.WithLabelValues(r)
	}
	for _, o := range LookupOutcomes {
		m.ContactLookups.WithLabelValues(o)
	}
}

// NewMetrics creates the pipeline's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EventsInvalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_events_invalid_total",
			Help: "Stored events that could not be read, by source."}, []string{"source"}),
		RuleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_rule_matches_total",
			Help: "Events a rule matched and rendered, by rule and mode: live (sent), shadow (counted, never sent)."}, []string{"rule", "mode"}),
		RuleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_rule_errors_total",
			Help: "Events for which a rule's condition or templates failed."}, []string{"rule"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_deliveries_total",
			Help: "Decisions about messages by rule and outcome: sent, duplicate, throttled, dead_letter, retry, rate_limited, in_flight, uncertain_resend, ambiguous_answer, dry_run, cancelled."},
			[]string{"rule", "outcome"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_dead_letters_total",
			Help: "Entries written to the dead-letter stream, by reason."}, []string{"reason"}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bridge_delivery_latency_seconds",
			Help:    "Time from an event's arrival to Intercom accepting its message.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}}),
		Scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_scheduled_total",
			Help: "Messages that wait, by rule and what befell them: scheduled, replaced, cancelled, fired, dropped_after_cancel."}, []string{"rule", "outcome"}),
		ScheduledPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_scheduled_pending",
			Help: "Messages waiting for their time, by rule."}, []string{"rule"}),
		ContactLookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_contact_lookups_total",
			Help: "Recipients looked up by user_id, email or contact id, by outcome: hit (cached), miss (asked Intercom, found), not_found, error."},
			[]string{"outcome"}),
		ContactLookupDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bridge_contact_lookup_duration_seconds",
			Help: "Contact look-ups that asked Intercom, pacer wait included.", Buckets: prometheus.DefBuckets}),
		EventsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_events_pending",
			Help: "Stage 1's backlog: events stored and not yet matched, those being matched included (from JetStream's consumer info)."}),
		OutboxPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_outbox_pending",
			Help: "Stage 2's backlog: messages waiting in the outbox, those being sent included (from JetStream's stream info)."}),
		OutboxOldestAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_outbox_oldest_age_seconds",
			Help: "Age of the oldest message waiting in the outbox."}),
		StreamMessages: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_stream_messages",
			Help: "Messages held by the bridge's streams (events, outbox, dead letters)."}, []string{"stream"}),
		StreamBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_stream_bytes",
			Help: "Bytes held by the bridge's streams."}, []string{"stream"}),
		LedgerKeys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_ledger_keys",
			Help: "Delivery keys in the sent ledger (kept for delivery.dedupe_window), with the cancel marks of messages that waited."}),
		LedgerBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_ledger_bytes",
			Help: "Bytes the sent ledger holds."}),
	}
	reg.MustRegister(m.Scheduled, m.ScheduledPending, m.EventsInvalid, m.RuleMatches, m.RuleErrors, m.Deliveries, m.DeadLetters, m.DeliveryLatency,
		m.ContactLookups, m.ContactLookupDuration, m.StreamMessages, m.StreamBytes, m.LedgerKeys, m.LedgerBytes, m.EventsPending, m.OutboxPending, m.OutboxOldestAge)
	return m
}

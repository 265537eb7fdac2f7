package bridge

import (
	"cmp"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// serviceMetrics are the metrics of the service itself: Intercom's
// answers and the rules in force. The pipeline and the sources register
// their own on the same registry.
type serviceMetrics struct {
	IntercomDuration *prometheus.HistogramVec // code
	// IntercomRemaining has no labels; its one series appears with the
	// first X-RateLimit-Remaining Intercom sends, so that no made-up 0
	// reads as "no headroom".
	IntercomRemaining *prometheus.GaugeVec
	IntercomTokenOK   prometheus.Gauge

	RulesLoaded         prometheus.Gauge
	RulesReloadErrors   prometheus.Counter
	RulesReloadSuccess  prometheus.Gauge // 1 if the last reload worked
	RulesLastReloadTime prometheus.Gauge
	RulesHash           *prometheus.GaugeVec // hash
}

// newRegistry returns a registry with the Go and process collectors.
func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// registerBuildInfo adds bridge_build_info, 1 with the version of the
// binary, of Go, and the Intercom-Version the bridge speaks, as
// Prometheus' own build_info does.
func registerBuildInfo(reg prometheus.Registerer, version, intercomVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_build_info",
		Help: "1, with the bridge's version, Go's and the Intercom-Version it sends."}, []string{"version", "goversion", "intercom_version"})
	g.WithLabelValues(cmp.Or(version, "unknown"), runtime.Version(), intercomVersion).Set(1)
	reg.MustRegister(g)
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		IntercomDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bridge_intercom_request_duration_seconds",
			Help: "Intercom API requests by HTTP status (0: no answer).", Buckets: prometheus.DefBuckets}, []string{"code"}),
		IntercomRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_intercom_ratelimit_remaining",
			Help: "X-RateLimit-Remaining of Intercom's last answer; absent until Intercom sent one."}, nil),
		IntercomTokenOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_intercom_token_ok",
			Help: "0 after Intercom rejected the token (401), else 1."}),
		RulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_loaded",
			Help: "Rules in the running rule set."}),
		RulesReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "bridge_rules_reload_errors_total",
			Help: "Rule reloads that failed; the running rules stayed."}),
		RulesReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_last_reload_successful",
			Help: "Whether the last rule reload succeeded."}),
		RulesLastReloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bridge_rules_last_reload_success_timestamp_seconds",
			Help: "When the rules were last loaded successfully."}),
		RulesHash: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_rules_hash",
			Help: "1 for the hash of the running rule files."}, []string{"hash"}),
	}
	reg.MustRegister(m.IntercomDuration, m.IntercomRemaining, m.IntercomTokenOK, m.RulesLoaded, m.RulesReloadErrors,
		m.RulesReloadSuccess, m.RulesLastReloadTime, m.RulesHash)
	m.IntercomTokenOK.Set(1)
	return m
}

// SetRules records a rule set that was just loaded and put in force.
func (m *serviceMetrics) SetRules(count int, hash string) {
	m.RulesLoaded.Set(float64(count))
	m.RulesHash.Reset()
	m.RulesHash.WithLabelValues(hash).Set(1)
	m.RulesReloadSuccess.Set(1)
	m.RulesLastReloadTime.SetToCurrentTime()
}

package bridge

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/intercom-bridge/bridge/bridge/console"
)

// readiness is the body of /readyz.
type readiness struct {
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
	Role     string   `json:"role"`
	DryRun   bool     `json:"dry_run"`
	Rules    int      `json:"rules"`
	// RulesErrors are the errors of the last reload, when it failed: the
	// rules loaded before it keep running, so the bridge stays ready.
	RulesErrors []string `json:"rules_errors,omitempty"`
}

// RulesStatus is the body of /rules: the rules in force, in load order,
// with what each matched since this process started.
type RulesStatus struct {
	Hash  string       `json:"hash"`
	Rules []RuleStatus `json:"rules"`
}

// RuleStatus is one rule of /rules.
type RuleStatus struct {
	Name    string `json:"name"`
	Pos     string `json:"pos"` // file:line:col of the rule's entry
	Mode    string `json:"mode"`
	Matches uint64 `json:"matches"` // live or shadow, since this process started
	// LastMatch is this process's last match; nil: none since it started.
	LastMatch *time.Time `json:"last_match"`
}

// rulesStatus is what /rules serves.
func (s *Service) rulesStatus() RulesStatus {
	set := s.rules.Load()
	if set == nil {
		return RulesStatus{Rules: []RuleStatus{}} // an intake replica
	}
	st := RulesStatus{Hash: set.Hash(), Rules: make([]RuleStatus, 0, set.Len())}
	for _, r := range set.Rules() {
		a := s.activity.Of(r.Name)
		rs := RuleStatus{Name: r.Name, Pos: r.Pos.String(), Mode: r.Mode, Matches: a.Matches}
		if !a.LastMatch.IsZero() {
			t := a.LastMatch.UTC()
			rs.LastMatch = &t
		}
		st.Rules = append(st.Rules, rs)
	}
	return st
}

// adminHandler serves /healthz, /readyz, /rules, /metrics, /debug/pprof/
// with admin.pprof and, when c is not nil, the console under /console/
// (/ leads there). With admin.auth
// set, everything but /healthz and /readyz asks for it: probes carry no
// credentials, while /metrics and /rules name every rule and what it did
// (Prometheus scrapes with bearer_token or basic_auth).
func (s *Service) adminHandler(c *console.Console) http.Handler {
	open := http.NewServeMux()
	mux := http.NewServeMux()
	if c != nil {
		mux.Handle(console.Prefix, c.Handler())
		mux.Handle("GET /{$}", http.RedirectHandler(console.Prefix, http.StatusFound))
	}
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	open.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := s.readiness()
		w.Header().Set("Content-Type", "application/json")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rd)
	})
	mux.HandleFunc("GET /rules", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.rulesStatus())
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	if s.cfg.Admin.PProf {
		mountPProf(mux)
	}
	open.Handle("/", consoleAuth(s.cfg.Admin.Auth).Wrap(mux))
	return open
}

func (s *Service) readiness() readiness {
	rd := readiness{Role: s.cfg.Role, DryRun: s.dryRun}
	if set := s.rules.Load(); set != nil {
		rd.Rules = set.Len()
	} else if s.cfg.Delivers() {
		rd.NotReady = append(rd.NotReady, "rules: not loaded")
	}
	if s.broker == nil || !s.broker.Connected() {
		rd.NotReady = append(rd.NotReady, "nats: not connected")
	}
	if !s.streamsReady.Load() {
		rd.NotReady = append(rd.NotReady, "streams: not ready")
	}
	if s.broker != nil {
		if err := s.broker.StoreProblem(); err != nil {
			rd.NotReady = append(rd.NotReady, "nats: "+err.Error())
		}
		if err := s.broker.ProbeProblem(); err != nil {
			rd.NotReady = append(rd.NotReady, "jetstream: "+err.Error())
		}
	}
	if s.webhooks != nil {
		if p := s.webhooks.StoreProblem(); p != "" {
			rd.NotReady = append(rd.NotReady, "events stream: refuses writes: "+p+"; ready again once a webhook is stored")
		}
	}
	if s.tokenRejected.Load() {
		rd.NotReady = append(rd.NotReady, "intercom: the token was rejected (401)")
	}
	if s.reloader != nil {
		rd.RulesErrors = errorLines(s.reloader.LastError())
	}
	rd.Ready = len(rd.NotReady) == 0
	return rd
}

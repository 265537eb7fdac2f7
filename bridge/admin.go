package bridge

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readiness is the body of /readyz.
type readiness struct {
	Ready    bool     `json:"ready"`
	NotReady []string `json:"not_ready,omitempty"`
	DryRun   bool     `json:"dry_run"`
	Rules    int      `json:"rules"`
	// RulesErrors are the errors of the last reload, when it failed: the
	// rules loaded before it keep running, so the bridge stays ready.
	RulesErrors []string `json:"rules_errors,omitempty"`
}

// adminHandler serves /healthz, /readyz and /metrics.
func (s *Service) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd := s.readiness()
		w.Header().Set("Content-Type", "application/json")
		if !rd.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rd)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	return mux
}

func (s *Service) readiness() readiness {
	rd := readiness{DryRun: s.dryRun}
	if set := s.rules.Load(); set != nil {
		rd.Rules = set.Len()
	} else {
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

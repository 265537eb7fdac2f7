package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/console"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

// consoleAuth is admin.auth as the admin listener checks it.
func consoleAuth(a config.AdminAuth) console.Auth {
	return console.Auth{Bearer: a.Bearer, User: a.Basic.User, Password: a.Basic.Password}
}

// startConsole makes the console and starts sampling the counters its
// chart and rules page show. It returns nil, with a warning, when the
// admin listener is off loopback without admin.auth: the console acts on
// dead letters and shows events, which nobody unauthenticated off the
// machine should.
func (s *Service) startConsole(ctx context.Context) (*console.Console, error) {
	if !config.IsLoopback(s.cfg.Admin.Listen) && !s.cfg.Admin.Auth.IsSet() {
		s.log.Warn().Str("admin", s.cfg.Admin.Listen).
			Msg("console off: admin.listen is not a loopback address and admin.auth is not set; set admin.auth to serve it")
		return nil, nil
	}
	decoder, err := s.cfg.Decoder()
	if err != nil {
		return nil, err
	}
	history := console.NewHistory()
	c, err := console.New(ctx, console.Options{
		JS: s.broker.JS, Topology: s.cfg.Topology(), Decoder: decoder,
		Status: s.consoleStatus, Rules: s.rules.Load, Activity: s.activity.Of, History: history, Sample: s.sample,
		RulePaths: s.cfg.Rules.Paths, Sources: s.cfg.SourceNames(), IntercomVersion: s.cfg.Intercom.Version,
		Prepare: s.cfg.AsStored, Log: s.log,
	}, consoleAuth(s.cfg.Admin.Auth))
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(context.Background())
	s.stopHistory, s.historyDone = stop, make(chan struct{})
	go func() {
		defer close(s.historyDone)
		history.Run(sctx, s.sample)
	}()
	return c, nil
}

// sample reads the counters the console's history keeps: deliveries by
// outcome over all rules, and each rule's matches, sends and dead letters.
func (s *Service) sample() console.Sample {
	out := console.Sample{At: time.Now(), Outcomes: map[string]float64{}, Rules: map[string]console.RuleCounts{}}
	collect(s.pipeline.Deliveries, func(m *dto.Metric) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "outcome" {
				out.Outcomes[l.GetValue()] += m.GetCounter().GetValue()
			}
		}
	})
	for _, r := range s.rules.Load().Rules() {
		out.Rules[r.Name] = console.RuleCounts{
			// In its mode only: asking for the other would create its
			// series, and a shadow rule has no live one.
			Matches:     value(s.pipeline.RuleMatches.WithLabelValues(r.Name, r.Mode)),
			Sent:        value(s.pipeline.Deliveries.WithLabelValues(r.Name, pipeline.OutcomeSent)),
			DeadLetters: value(s.pipeline.Deliveries.WithLabelValues(r.Name, pipeline.OutcomeDeadLetter)),
		}
	}
	return out
}

// consoleStatus is what the status page shows, from /readyz's checks and
// the metrics the service keeps current.
func (s *Service) consoleStatus(ctx context.Context) console.Status {
	rd := s.readiness()
	st := console.Status{Ready: rd.Ready, NotReady: rd.NotReady, DryRun: rd.DryRun, Version: s.version, Rules: rd.Rules,
		ReloadErrors: rd.RulesErrors, IntercomVersion: s.cfg.Intercom.Version, RateLimitPerMinute: s.cfg.Intercom.RateLimitPerMinute,
		TokenRejected: s.tokenRejected.Load(), NATSConnected: s.broker.Connected()}
	if set := s.rules.Load(); set != nil {
		st.RulesHash = set.Hash()
	}
	if sec := value(s.metrics.RulesLastReloadTime); sec > 0 {
		st.LastReload = time.Unix(int64(sec), 0)
	}
	if s.cfg.NATS.URL == "" {
		st.NATSServer = "the embedded server"
	} else if s.broker.Conn != nil {
		st.NATSServer = s.broker.Conn.ConnectedUrlRedacted()
	}
	if v, ok := valueOK(s.metrics.IntercomRemaining); ok {
		st.RateLimitRemaining = &v
	}
	top := s.cfg.Topology()
	waiting, _ := valueOK(s.pipeline.ScheduledPending)
	st.Stages = []console.Stage{
		{Name: "1: events to match", Backlog: value(s.pipeline.EventsPending), Detail: "stored in " + top.Events.Name + ", not yet matched"},
		{Name: "2: outbox", Backlog: value(s.pipeline.OutboxPending),
			Detail: fmt.Sprintf("messages to send; the oldest waits %s", (time.Duration(value(s.pipeline.OutboxOldestAge)) * time.Second).String())},
		{Name: "waiting", Backlog: waiting, Detail: "messages whose time has not come"},
		{Name: "dead letters", Backlog: value(s.pipeline.StreamMessages.WithLabelValues(top.DLQ.Name)), Detail: "in " + top.DLQ.Name},
	}
	return st
}

// value is a counter's or gauge's value.
func value(c prometheus.Collector) float64 {
	v, _ := valueOK(c)
	return v
}

// valueOK sums the values of c's series; false when it has none (a vector
// none of whose series exists yet).
func valueOK(c prometheus.Collector) (float64, bool) {
	var sum float64
	var any bool
	collect(c, func(m *dto.Metric) {
		any = true
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
	})
	return sum, any
}

// collect calls f with each series of c.
func collect(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil {
			f(&d)
		}
	}
}

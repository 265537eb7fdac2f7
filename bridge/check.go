package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/intercom"
)

// CheckResult is the outcome of one check of `bridge check`.
type CheckResult struct {
	Name   string
	Status string // "ok", "fail" or "skip"
	Detail string
}

// Check verifies what a running bridge depends on: the rules load, NATS is
// reachable and its streams are as the config wants them, the Intercom
// token is accepted, and every admin id in the config and rules exists.
func Check(ctx context.Context, cfg *config.Config, userAgent string) []CheckResult {
	var out []CheckResult
	add := func(name, status, format string, args ...any) {
		out = append(out, CheckResult{Name: name, Status: status, Detail: fmt.Sprintf(format, args...)})
	}

	if !cfg.Delivers() {
		// An intake replica reads no rules and holds no token.
		add("rules", "skip", "role intake: the delivery replicas load the rules")
		out = append(out, checkNATS(ctx, cfg)...)
		add("intercom", "skip", "role intake: the delivery replicas send")
		return out
	}
	admins := map[string][]string{} // admin id -> where it is used
	if id := cfg.Intercom.DefaultAdminID; id != "" {
		admins[id] = append(admins[id], "intercom.default_admin_id")
	}
	set, err := LoadRules(cfg)
	if err != nil {
		add("rules", "fail", "%v", err)
	} else {
		add("rules", "ok", "%d rules from %s", set.Len(), strings.Join(cfg.Rules.Paths, ", "))
		for _, r := range set.Rules() {
			admins[r.AdminID()] = append(admins[r.AdminID()], "rule "+r.Name)
		}
	}

	out = append(out, checkNATS(ctx, cfg)...)

	if cfg.Intercom.Token == "" || cfg.Intercom.DryRun {
		add("intercom", "skip", "dry run: no token set, or intercom.dry_run is true")
		return out
	}
	client, err := intercom.New(intercom.Config{BaseURL: cfg.Intercom.BaseURL, Token: cfg.Intercom.Token,
		Version: cfg.Intercom.Version, UserAgent: userAgent, Timeout: cfg.Intercom.Timeout.D()})
	if err != nil {
		add("intercom token", "fail", "%v", err)
		return out
	}
	defer client.CloseIdleConnections()
	me, err := client.Me(ctx)
	if err != nil {
		add("intercom token", "fail", "%s: %v", cfg.Intercom.BaseURL, err)
		return out
	}
	add("intercom token", "ok", "accepted by %s (app admin %s %s)", cfg.Intercom.BaseURL, me.ID, me.Name)
	list, err := client.ListAdmins(ctx)
	if err != nil {
		add("intercom admins", "fail", "%v", err)
		return out
	}
	known := map[string]string{}
	for _, a := range list {
		known[a.ID] = a.Name
	}
	ids := make([]string, 0, len(admins))
	for id := range admins {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		users := admins[id]
		if name, ok := known[id]; ok {
			add("admin "+id, "ok", "%s, used by %s", name, strings.Join(users, ", "))
		} else {
			add("admin "+id, "fail", "no such admin in this workspace; used by %s", strings.Join(users, ", "))
		}
	}
	return out
}

// checkNATS connects to the external server, or to the embedded one when
// it listens, and compares the events stream with the config.
func checkNATS(ctx context.Context, cfg *config.Config) []CheckResult {
	url := cfg.NATS.URL
	if url == "" {
		if cfg.NATS.Listen == "" {
			return []CheckResult{{Name: "nats", Status: "skip", Detail: "embedded server without nats.listen: nothing to reach from outside"}}
		}
		url = "nats://" + cfg.NATS.Listen
	}
	nc, err := nats.Connect(url, nats.Name("intercom-bridge check"), nats.Timeout(cfg.NATS.Connect.D()))
	if err != nil {
		return []CheckResult{{Name: "nats", Status: "fail", Detail: fmt.Sprintf("cannot connect to %s (is the bridge running, with nats.listen, or the NATS server of nats.url?): %v", broker.RedactURLs(url), err)}}
	}
	defer nc.Close()
	res := []CheckResult{{Name: "nats", Status: "ok", Detail: "connected to " + nc.ConnectedUrlRedacted()}}
	js, err := jetstream.New(nc)
	if err != nil {
		return append(res, CheckResult{Name: "streams", Status: "fail", Detail: err.Error()})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	want := cfg.Topology().Events
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return append(res, CheckResult{Name: "stream " + want.Name, Status: "fail", Detail: "stream not found (the bridge creates it at start)"})
	}
	if err != nil {
		return append(res, CheckResult{Name: "stream " + want.Name, Status: "fail", Detail: err.Error()})
	}
	info, err := s.Info(ctx)
	if err != nil {
		return append(res, CheckResult{Name: "stream " + want.Name, Status: "fail", Detail: err.Error()})
	}
	var diffs []string
	if !slices.Equal(info.Config.Subjects, want.Subjects) {
		diffs = append(diffs, fmt.Sprintf("subjects %v, config wants %v", info.Config.Subjects, want.Subjects))
	}
	if info.Config.MaxAge != want.MaxAge {
		diffs = append(diffs, fmt.Sprintf("max age %s, config wants %s", info.Config.MaxAge, want.MaxAge))
	}
	if info.Config.Duplicates != want.Duplicates {
		diffs = append(diffs, fmt.Sprintf("duplicate window %s, config wants %s", info.Config.Duplicates, want.Duplicates))
	}
	if len(diffs) > 0 {
		return append(res, CheckResult{Name: "stream " + want.Name, Status: "fail", Detail: strings.Join(diffs, "; ") + " (the bridge updates it at start)"})
	}
	return append(res, CheckResult{Name: "stream " + want.Name, Status: "ok", Detail: fmt.Sprintf("%d events, %s", info.State.Msgs, humanBytes(info.State.Bytes))})
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

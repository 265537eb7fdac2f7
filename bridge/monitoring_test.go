package bridge

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

// The shipped alert rules and dashboard use only metrics, and outcome
// values, that a running bridge exposes: a rename breaks this test, not an
// operator's pager.
func TestMonitoringExamplesUseRealMetrics(t *testing.T) {
	var alerts struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	data, err := os.ReadFile("../examples/monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &alerts); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	exprs := map[string]string{} // expression -> where
	for _, g := range alerts.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %q of group %s lacks an expr, a summary or a description", r.Alert, g.Name)
			}
			exprs[r.Expr] = "alert " + r.Alert
		}
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err = os.ReadFile("../examples/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs[tg.Expr] = "panel " + p.Title
		}
	}
	want := []string{"BridgeNotReady", "BridgeDeadLetters", "BridgeIntercomTokenRejected", "BridgeRateLimited",
		"BridgeBacklogGrowing", "BridgeRulesReloadFailing"}
	for _, a := range want {
		if !slices.ContainsFunc(slices.Collect(maps.Values(exprs)), func(w string) bool { return w == "alert "+a }) {
			t.Errorf("alerts.yaml has no %s", a)
		}
	}

	// A running bridge that has sent one message, so that the series
	// that need an Intercom answer exist.
	h := newHarness(t, nil)
	h.webhook("m-1", map[string]any{"type": "order.paid", "order": 1, "user": "u", "name": "n", "amount": 10})
	h.waitFor("the message", func() bool { return h.delivered("order-thanks", pipeline.OutcomeSent) == 1 })
	_, body := getURL(t, "http://"+h.svc.AdminAddr()+"/metrics")
	exposed := map[string]bool{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exposed[regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`).FindString(line)] = true
	}
	name := regexp.MustCompile(`\b(?:bridge|go|process)_[a-z0-9_]+\b`)
	outcome := regexp.MustCompile(`outcome=~?"([^"]+)"`)
	for expr, where := range exprs {
		names := name.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q uses no bridge metric", where, expr)
		}
		for _, n := range names {
			if !exposed[n] {
				t.Errorf("%s uses %s, which /metrics does not expose", where, n)
			}
		}
		for _, m := range outcome.FindAllStringSubmatch(expr, -1) {
			for o := range strings.SplitSeq(m[1], "|") {
				if !slices.Contains(pipeline.Outcomes, o) {
					t.Errorf("%s uses outcome %q, which is not one of %v", where, o, pipeline.Outcomes)
				}
			}
		}
	}
}

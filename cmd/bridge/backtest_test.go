package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/backtest"
	"github.com/intercom-bridge/bridge/bridge/event"
)

// The deployed rules, and a candidate that adds, removes, changes and
// throttles one rule each, and keeps one as it is.
const (
	backtestDeployed = `rules:
  - name: kept
    on: {sources: [shop]}
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Paid {{ .event.order }}</p>"}
    dedupe: '{{ .event.order }}'
  - name: gone
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Old {{ .event.order }}</p>"}
  - name: reworded
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Thanks</p>"}
  - name: calmer
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Hi</p>"}
`
	backtestCandidate = `rules:
  - name: kept
    on: {sources: [shop]}
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Paid {{ .event.order }}</p>"}
    dedupe: '{{ .event.order }}'
  - name: fresh
    when: event.type == "order.paid" && event.order >= 3
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>New</p>"}
  - name: reworded
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Thank you</p>"}
  - name: calmer
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Hi</p>"}
    throttle: {key: '{{ .event.user }}', per: 24h}
`
)

// backtestEnv is a NATS server with the bridge's streams holding events,
// a config whose deployed rules are backtestDeployed, and candidate rules.
type backtestEnv struct {
	*dlqEnv
	dir string
}

func newBacktestEnv(t *testing.T) *backtestEnv {
	t.Helper()
	e := &backtestEnv{dlqEnv: newDLQEnv(t), dir: t.TempDir()}
	writeFile(t, filepath.Join(e.dir, "deployed", "rules.yaml"), backtestDeployed)
	writeFile(t, filepath.Join(e.dir, "candidate", "rules.yaml"), backtestCandidate)
	writeFile(t, e.cfgPath, fmt.Sprintf(`nats: {url: %q}
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
rules: {paths: [%q]}
`, e.cfg.NATS.URL, filepath.Join(e.dir, "deployed")))
	return e
}

// store stores order events of user u-1, an hour apart by their own time
// (the simulated clock), from order first on.
func (e *backtestEnv) store(t *testing.T, first, n int) {
	t.Helper()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := first; i < first+n; i++ {
		env := &event.Envelope{ID: fmt.Sprintf("ev-%d", i), Source: "shop", Subject: "bridge.in.shop", Time: t0.Add(time.Duration(i) * time.Hour),
			Data: json.RawMessage(fmt.Sprintf(`{"type":"order.paid","order":%d,"user":"u-1"}`, i))}
		m, err := env.Msg("bridge.in.shop")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *backtestEnv) backtest(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = runBacktest(context.Background(), append([]string{"-config", e.cfgPath}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBacktestReport(t *testing.T) {
	e := newBacktestEnv(t)
	e.store(t, 1, 4) // orders 1 to 4, an hour apart
	code, out, errOut := e.backtest("-rules", filepath.Join(e.dir, "candidate"), "-json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var rep backtest.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Events != 4 || rep.Unreadable != 0 || rep.NewErrors != 0 {
		t.Errorf("events %d, unreadable %d, new errors %d; want 4, 0, 0", rep.Events, rep.Unreadable, rep.NewErrors)
	}
	type want struct {
		change                  string
		before, after           backtest.Counts
		added, removed, changed int
		samples                 []string // kinds
	}
	four := backtest.Counts{Matched: 4, Sent: 4}
	for _, tc := range []struct {
		rule string
		want want
	}{
		{"kept", want{before: four, after: four}},
		{"gone", want{change: "removed", before: four, removed: 4, samples: []string{"removed", "removed", "removed"}}},
		{"fresh", want{change: "added", after: backtest.Counts{Matched: 2, Sent: 2}, added: 2, samples: []string{"added", "added"}}},
		{"reworded", want{before: four, after: four, changed: 4, samples: []string{"changed", "changed", "changed"}}},
		// One message a day per user: the first order's, then none for
		// the three that follow within 24 hours (by the events' time).
		{"calmer", want{before: four, after: backtest.Counts{Matched: 4, Sent: 1, Throttled: 3}, removed: 3,
			samples: []string{"removed", "removed", "removed"}}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			i := slices.IndexFunc(rep.Rules, func(r *backtest.RuleReport) bool { return r.Rule == tc.rule })
			if i < 0 {
				t.Fatalf("no report of %s", tc.rule)
			}
			r := rep.Rules[i]
			var kinds []string
			for _, s := range r.Samples {
				kinds = append(kinds, s.Kind)
			}
			got := want{r.Change, r.Before, r.After, r.Added, r.Removed, r.Changed, kinds}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}

	// The text report: a line per rule, and the body diff of a change.
	code, out, _ = e.backtest("-rules", filepath.Join(e.dir, "candidate"))
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{
		"4 events from ",
		"calmer    -        4        4 → 1  0          0 → 3",
		"removed: event ev-2 (source shop, subject bridge.in.shop, 2026-03-01T12:00:00Z)\n    would no longer send inapp to user user_id u-1 (candidate: throttled)",
		"changed: event ev-1 (source shop, subject bridge.in.shop, 2026-03-01T11:00:00Z)",
		`- deployed:  "<p>Thanks</p>"`,
		`+ candidate: "<p>Thank you</p>"`,
	} {
		if !strings.Contains(out, s) {
			t.Errorf("the report lacks %q:\n%s", s, out)
		}
	}

	// -rule keeps one rule.
	code, out, _ = e.backtest("-rules", filepath.Join(e.dir, "candidate"), "-rule", "fresh", "-json")
	rep = backtest.Report{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || len(rep.Rules) != 1 || rep.Rules[0].Rule != "fresh" {
		t.Errorf("-rule fresh: exit %d, %v, rules %v", code, err, rep.Rules)
	}
}

func TestBacktestBadInput(t *testing.T) {
	e := newBacktestEnv(t)
	e.store(t, 1, 2)
	time.Sleep(300 * time.Millisecond)
	gap := time.Now()
	time.Sleep(300 * time.Millisecond)
	e.store(t, 3, 2)

	writeFile(t, filepath.Join(e.dir, "broken", "a.yaml"), "rules:\n  - name: a\n    message: {type: sms}\n")
	writeFile(t, filepath.Join(e.dir, "broken", "b.yaml"), "rules:\n  - name: b\n    when: event.x >\n    message: {type: inapp, from: \"1\", to: {type: user, id: x}, body: b}\n")
	writeFile(t, filepath.Join(e.dir, "failing", "rules.yaml"), backtestDeployed+`  - name: failing
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, id: '{{ .event.customer.id }}'}, body: x}
`)
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{"a candidate that does not load: every error, as validate", []string{"-rules", filepath.Join(e.dir, "broken")}, 2, nil,
			[]string{"broken/a.yaml:3:21: message.type must be email or inapp", "broken/b.yaml:3:"}},
		{"render errors new in the candidate", []string{"-rules", filepath.Join(e.dir, "failing")}, 1,
			[]string{"failing   added   0        0     0          0          0        0 → 4", "error: event ev-1", `no field "customer"`, "FAIL: the candidate rules fail for 4 events"}, nil},
		{"an empty window", []string{"-rules", filepath.Join(e.dir, "candidate"), "-from", rfc(gap.Add(-100 * time.Millisecond)), "-to", rfc(gap.Add(100 * time.Millisecond))}, 0,
			[]string{"0 events from ", "no events in the window: the stream holds 4 events from "}, nil},
		{"a window outside the stream", []string{"-rules", filepath.Join(e.dir, "candidate"), "-from", "2020-01-01T00:00:00Z", "-to", "2020-01-02T00:00:00Z"}, 2, nil,
			[]string{"the events stream BRIDGE_EVENTS holds 4 events from ", "the window 2020-01-01T00:00:00Z to 2020-01-02T00:00:00Z is outside it"}},
		{"-since and -from together", []string{"-rules", "x", "-since", "1h", "-from", "2020-01-01T00:00:00Z"}, 2, nil, []string{"use one"}},
		{"no candidate", nil, 2, nil, []string{"name the candidate rules with -rules PATH"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.backtest(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}

// A stopped bridge's embedded store is read as a running one's NATS.
func TestBacktestStoppedEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "deployed", "rules.yaml"), backtestDeployed)
	writeFile(t, filepath.Join(dir, "candidate", "rules.yaml"), backtestCandidate)
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `data_dir: data
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
rules: {paths: [deployed]}
`)
	_, b := openStreams(t, cfgPath)
	(&backtestEnv{dlqEnv: &dlqEnv{js: b.JS}}).store(t, 1, 4)
	b.Close() // the bridge stops

	var out, errOut bytes.Buffer
	code := runBacktest(context.Background(), []string{"-config", cfgPath, "-rules", filepath.Join(dir, "candidate")}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "4 events from ") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/rules"
)

// dlqEnv is a NATS server with the bridge's streams, and a config file
// that points at it.
type dlqEnv struct {
	cfgPath string
	cfg     *config.Config
	js      jetstream.JetStream
}

func newDLQEnv(t *testing.T) *dlqEnv {
	t.Helper()
	srv := natstest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `nats: {url: "`+srv.ClientURL()+`"}
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
`)
	cfg, b := openStreams(t, cfgPath)
	t.Cleanup(func() { b.Close() })
	return &dlqEnv{cfgPath: cfgPath, cfg: cfg, js: b.JS}
}

// openStreams opens the NATS of the bridge configured at cfgPath, with
// the bridge's streams, as the bridge does at start.
func openStreams(t *testing.T, cfgPath string) (*config.Config, *broker.Broker) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(context.Background(), cfg.BrokerOptions(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range cfg.Topology().Streams() {
		if _, err := b.EnsureStream(context.Background(), sc); err != nil {
			b.Close()
			t.Fatal(err)
		}
	}
	return cfg, b
}

// add stores a dead letter the way the bridge does, and returns its ID.
func (e *dlqEnv) add(t *testing.T, d pipeline.DeadLetter) uint64 {
	t.Helper()
	body, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	subject := "bridge.dlq." + strings.ReplaceAll(dlqOr(d.Rule, "_"), ".", "_")
	ack, err := e.js.Publish(context.Background(), subject, body)
	if err != nil {
		t.Fatal(err)
	}
	return ack.Sequence
}

func dlqOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// count returns how many messages a stream holds.
func (e *dlqEnv) count(t *testing.T, stream string) uint64 {
	t.Helper()
	return natstest.Msgs(t, e.js, stream)
}

// run runs bridge dlq with args, adding -config after the subcommand
// unless args name one.
func (e *dlqEnv) run(args ...string) (code int, stdout, stderr string) {
	if len(args) > 0 && !slices.Contains(args, "-config") {
		args = append([]string{args[0], "-config", e.cfgPath}, args[1:]...)
	}
	var out, errOut bytes.Buffer
	code = runDLQ(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

var dlqBlanks = regexp.MustCompile(`[ \t]+`)

// dlqLines returns the output's lines with runs of blanks made one space, so
// that table rows compare without their padding.
func dlqLines(s string) []string {
	var out []string
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.TrimSpace(dlqBlanks.ReplaceAllString(l, " ")))
	}
	return out
}

func dlqTestJob(rule, dedupe string) *pipeline.Job {
	return &pipeline.Job{
		Key: pipeline.DeliveryKey(rule, dedupe), Rule: rule, EventID: "ev-" + dedupe, Source: "shop", DedupeKey: dedupe,
		Message: rules.Message{
			MessageType: "email", Subject: "Thanks", Body: "<p>Hi & welcome</p>", Template: "plain",
			From: rules.Admin{Type: "admin", ID: "394051"}, To: []rules.Recipient{{Type: "user", UserID: "u-" + dedupe}},
		},
	}
}

// seed stores one dead letter of each kind: a job refused by Intercom
// (3h old), a job whose attempts ran out (4 days old), a render error (20
// minutes old) and an unreadable event (just now).
func (e *dlqEnv) seed(t *testing.T) (permanent, exhausted, render, invalid uint64) {
	now := time.Now().UTC()
	permanent = e.add(t, pipeline.DeadLetter{Reason: pipeline.ReasonPermanent, Rule: "order-paid", EventID: "ev-1", Source: "shop",
		Error: "422 parameter_invalid: User Not Found\nrequest id 0001", Status: 422, Job: dlqTestJob("order-paid", "1"), At: now.Add(-3 * time.Hour)})
	exhausted = e.add(t, pipeline.DeadLetter{Reason: pipeline.ReasonExhausted, Rule: "order-paid", EventID: "ev-2", Source: "shop",
		Error: "503 Service Unavailable after 12 attempts", Attempts: 12, Job: dlqTestJob("order-paid", "2"), At: now.Add(-4 * 24 * time.Hour)})
	render = e.add(t, pipeline.DeadLetter{Reason: pipeline.ReasonRender, Rule: "trial.ending", EventID: "ev-3", Source: "shop",
		Error: `template: subject: map has no entry for key "customer"`, At: now.Add(-20 * time.Minute),
		Event: &event.Envelope{ID: "ev-3", Source: "shop", Subject: "trial.ending", Time: now, Data: json.RawMessage(`{"plan":"pro"}`)}})
	invalid = e.add(t, pipeline.DeadLetter{Reason: pipeline.ReasonInvalidEvent, Source: "billing", Error: "billing.x: the payload is not JSON",
		Raw: &pipeline.RawEvent{Subject: "billing.x", Data: []byte("not json")}, At: now})
	return
}

func TestDLQList(t *testing.T) {
	e := newDLQEnv(t)
	if code, out, errOut := e.run("list"); code != 0 || out != "no dead letters\n" {
		t.Fatalf("empty list: exit %d\n%s%s", code, out, errOut)
	}
	p, x, r, i := e.seed(t)

	tests := []struct {
		name string
		args []string
		want []string // the exact lines, blanks collapsed
	}{
		{"all", []string{"list"}, []string{
			"RULE REASON COUNT OLDEST NEWEST",
			"- invalid_event 1 0s 0s",
			"order-paid attempts_exhausted 1 4d 4d",
			"order-paid permanent 1 3h 3h",
			"trial.ending render 1 20m 20m",
			"4 dead letters",
			"",
			"ID AGE RULE REASON EVENT ERROR",
			fmt.Sprintf("%d 3h order-paid permanent ev-1 422 parameter_invalid: User Not Found", p),
			fmt.Sprintf("%d 4d order-paid attempts_exhausted ev-2 503 Service Unavailable after 12 attempts", x),
			fmt.Sprintf(`%d 20m trial.ending render ev-3 template: subject: map has no entry for key "customer"`, r),
			fmt.Sprintf("%d 0s - invalid_event - billing.x: the payload is not JSON", i),
		}},
		{"by rule", []string{"list", "-rule", "order-paid"}, []string{
			"RULE REASON COUNT OLDEST NEWEST",
			"order-paid attempts_exhausted 1 4d 4d",
			"order-paid permanent 1 3h 3h",
			"2 dead letters",
			"",
			"ID AGE RULE REASON EVENT ERROR",
			fmt.Sprintf("%d 3h order-paid permanent ev-1 422 parameter_invalid: User Not Found", p),
			fmt.Sprintf("%d 4d order-paid attempts_exhausted ev-2 503 Service Unavailable after 12 attempts", x),
		}},
		{"by reason and age", []string{"list", "-reason", "render", "-since", "1h"}, []string{
			"RULE REASON COUNT OLDEST NEWEST",
			"trial.ending render 1 20m 20m",
			"1 dead letter",
			"",
			"ID AGE RULE REASON EVENT ERROR",
			fmt.Sprintf(`%d 20m trial.ending render ev-3 template: subject: map has no entry for key "customer"`, r),
		}},
		{"by age in days", []string{"list", "-since", "1d", "-rule", "order-paid"}, []string{
			"RULE REASON COUNT OLDEST NEWEST",
			"order-paid permanent 1 3h 3h",
			"1 dead letter",
			"",
			"ID AGE RULE REASON EVENT ERROR",
			fmt.Sprintf("%d 3h order-paid permanent ev-1 422 parameter_invalid: User Not Found", p),
		}},
		{"nothing matches", []string{"list", "-rule", "nope"}, []string{"no dead letters match"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := e.run(tt.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if got := dlqLines(out); !slices.Equal(got, tt.want) {
				t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		code, out, _ := e.run("list", "-json", "-rule", "order-paid")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		var entries []dlq.Entry
		if err := json.Unmarshal([]byte(out), &entries); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(entries) != 2 || entries[0].Seq != p || entries[1].Seq != x || entries[0].Job == nil {
			t.Errorf("entries = %+v", entries)
		}
		if !strings.Contains(out, `"body": "<p>Hi & welcome</p>"`) || !strings.Contains(out, fmt.Sprintf(`"id": %d,`, p)) {
			t.Errorf("output:\n%s", out)
		}
		if code, out, _ := e.run("list", "-json", "-rule", "nope"); code != 0 || out != "[]\n" {
			t.Errorf("empty -json: exit %d, %q", code, out)
		}
	})
}

func TestDLQShow(t *testing.T) {
	e := newDLQEnv(t)
	p, _, r, i := e.seed(t)
	tests := []struct {
		name    string
		args    []string
		code    int
		want    []string // in stdout
		wantErr string   // in stderr
	}{
		{"job", []string{"show", fmt.Sprint(p)}, 0, []string{
			fmt.Sprintf(`"id": %d,`, p), `"reason": "permanent",`, `"age": "3h"`,
			`"error": "422 parameter_invalid: User Not Found\nrequest id 0001",`,
			`"body": "<p>Hi & welcome</p>",`, `"to": [`, `"user_id": "u-1"`,
		}, ""},
		{"event", []string{"show", fmt.Sprint(r)}, 0, []string{`"event": {`, `"data": {`, `"plan": "pro"`}, ""},
		{"raw", []string{"show", fmt.Sprint(i)}, 0, []string{`"raw": {`, `"raw_text": "not json"`}, ""},
		{"several", []string{"show", fmt.Sprint(p), fmt.Sprint(r)}, 0, []string{fmt.Sprintf(`"id": %d,`, p), fmt.Sprintf(`"id": %d,`, r)}, ""},
		{"missing", []string{"show", "999", fmt.Sprint(p)}, 1, []string{fmt.Sprintf(`"id": %d,`, p)}, "bridge dlq show: dead letter 999: no such dead letter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := e.run(tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %s:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errOut, tt.wantErr)
			}
		})
	}
	t.Run("one JSON document per ID", func(t *testing.T) {
		_, out, _ := e.run("show", fmt.Sprint(p), fmt.Sprint(r))
		dec := json.NewDecoder(strings.NewReader(out))
		n := 0
		for dec.More() {
			var v map[string]any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 2 {
			t.Errorf("%d documents, want 2", n)
		}
	})
}

func TestDLQReplay(t *testing.T) {
	e := newDLQEnv(t)
	p, x, r, i := e.seed(t)
	names := e.cfg.Topology()

	code, out, errOut := e.run("replay", "-rule", "order-paid", "-reason", "permanent")
	if code != 0 || dlqLines(out)[0] != "replayed 1 dead letter" || errOut != "" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := e.count(t, names.Outbox.Name); n != 1 {
		t.Errorf("outbox holds %d, want 1", n)
	}

	// By ID: the render error goes back to the events stream.
	if code, out, errOut := e.run("replay", fmt.Sprint(r)); code != 0 || out != "replayed 1 dead letter\n" {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := e.count(t, e.cfg.Topology().Events.Name); n != 1 {
		t.Errorf("events stream holds %d, want 1", n)
	}

	// The rest: the unreadable event cannot be replayed.
	code, out, errOut = e.run("replay")
	if code != 1 || out != "replayed 1 dead letter\n" ||
		!strings.Contains(errOut, fmt.Sprintf("bridge dlq replay: 1 entry has no job or event and cannot be replayed (%d); inspect with dlq show and purge them", i)) {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
	if n := e.count(t, names.Outbox.Name); n != 2 {
		t.Errorf("outbox holds %d, want 2", n)
	}
	// Replayed entries are gone from the DLQ.
	if code, out, _ := e.run("list", "-json"); code != 0 || !strings.Contains(out, fmt.Sprintf(`"id": %d,`, i)) ||
		strings.Contains(out, fmt.Sprintf(`"id": %d,`, p)) || strings.Contains(out, fmt.Sprintf(`"id": %d,`, x)) {
		t.Errorf("after replay: exit %d\n%s", code, out)
	}
	if code, _, errOut := e.run("replay", fmt.Sprint(p)); code != 1 || !strings.Contains(errOut, "no such dead letter") {
		t.Errorf("replaying a replayed ID: exit %d, %q", code, errOut)
	}

	t.Run("progress", func(t *testing.T) {
		e := newDLQEnv(t)
		for n := range 25 {
			e.add(t, pipeline.DeadLetter{Reason: pipeline.ReasonPermanent, Rule: "bulk", Job: dlqTestJob("bulk", fmt.Sprint(n)), At: time.Now()})
		}
		code, out, errOut := e.run("replay", "-rule", "bulk")
		want := []string{"replayed 10/25", "replayed 20/25", "replayed 25 dead letters"}
		if code != 0 || !slices.Equal(dlqLines(out), want) {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
		if n := e.count(t, e.cfg.Topology().Outbox.Name); n != 25 {
			t.Errorf("outbox holds %d, want 25", n)
		}
	})
}

func TestDLQPurge(t *testing.T) {
	e := newDLQEnv(t)
	_, _, r, i := e.seed(t)
	dlqStream := e.cfg.Topology().DLQ.Name
	steps := []struct {
		name    string
		args    []string
		code    int
		out     string
		wantErr string
		left    uint64
	}{
		{"everything without -yes", []string{"purge"}, 2, "", "refusing to purge every dead letter: add -yes", 4},
		{"by id", []string{"purge", fmt.Sprint(r)}, 0, "purged 1 dead letter\n", "", 3},
		{"by reason", []string{"purge", "-reason", "invalid_event"}, 0, "purged 1 dead letter\n", "", 2},
		{"nothing matches", []string{"purge", "-rule", "nope"}, 0, "purged 0 dead letters\n", "", 2},
		{"missing id", []string{"purge", fmt.Sprint(i)}, 1, "", "no such dead letter", 2},
		{"everything", []string{"purge", "-yes"}, 0, "purged 2 dead letters\n", "", 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, out, errOut := e.run(s.args...)
			if code != s.code || (s.out != "" && out != s.out) || !strings.Contains(errOut, s.wantErr) {
				t.Errorf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, s.code, out, s.out, errOut, s.wantErr)
			}
			if n := e.count(t, dlqStream); n != s.left {
				t.Errorf("%d left, want %d", n, s.left)
			}
		})
	}
	if code, out, _ := e.run("list"); code != 0 || out != "no dead letters\n" {
		t.Errorf("after purge: exit %d\n%s", code, out)
	}
}

func TestDLQUsage(t *testing.T) {
	e := newDLQEnv(t)
	tests := []struct {
		name    string
		args    []string
		code    int
		wantErr string
	}{
		{"no command", nil, 2, "Usage: bridge dlq <command>"},
		{"help", []string{"-h"}, 0, "Usage: bridge dlq <command>"}, // on stdout, as every help
		{"unknown command", []string{"drop"}, 2, `bridge dlq: unknown command "drop"`},
		{"command help", []string{"list", "-h"}, 0, "Usage: bridge dlq list"},
		{"unknown flag", []string{"list", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"unknown reason", []string{"list", "-reason", "oops"}, 2, `bridge dlq list: -reason: unknown reason "oops" (one of permanent, attempts_exhausted`},
		{"bad age", []string{"replay", "-since", "yesterday"}, 2, `bridge dlq replay: -since: want a positive age such as 90m, 24h or 7d, got "yesterday"`},
		{"negative age", []string{"purge", "-since", "-1h"}, 2, "-since: want a positive age"},
		{"bad id", []string{"replay", "x1"}, 2, `bridge dlq replay: "x1" is not a dead letter ID`},
		{"a dash after --", []string{"purge", "--", "-yes"}, 2, `"-yes" is not a dead letter ID`},
		{"show without ids", []string{"show"}, 2, "bridge dlq show: name the IDs to show"},
		{"show zero", []string{"show", "0"}, 2, `"0" is not a dead letter ID`},
		{"no config", []string{"list", "-config", filepath.Join(t.TempDir(), "missing.yaml")}, 1, "bridge dlq list: config: open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var stdout, errOut string
			if len(tt.args) == 0 || tt.args[0] == "-h" || tt.args[0] == "drop" {
				var out, eb bytes.Buffer
				code = runDLQ(context.Background(), tt.args, &out, &eb)
				stdout, errOut = out.String(), eb.String()
			} else {
				code, stdout, errOut = e.run(tt.args...)
			}
			if slices.Contains(tt.args, "-h") {
				errOut = stdout // help is asked for: it is the output
			}
			if code != tt.code || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to contain %q", code, tt.code, errOut, tt.wantErr)
			}
		})
	}
	t.Run("listed in bridge help", func(t *testing.T) {
		var out, errOut bytes.Buffer
		run([]string{"help"}, &out, &errOut)
		if !strings.Contains(out.String(), "dlq            list, show, replay or purge dead letters") {
			t.Errorf("help:\n%s", out.String())
		}
	})
}

package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/ingest"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Parse("../../config.example.yaml", mustRead(t, "../../config.example.yaml"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Intercom.Token != "" || cfg.Intercom.DefaultAdminID != "394051" || len(cfg.Sources) != 5 {
		t.Errorf("unexpected: %+v", cfg)
	}
	if got := cfg.Sources[0].Webhook.Auth.AllSecrets(); len(got) != 1 || !strings.HasPrefix(got[0], "whsec_") {
		t.Errorf("fallback secret: %v", got)
	}
	top := cfg.Topology()
	if cfg.Sources[1].Kind() != ingest.KindCapture || top.Events.Name != "BRIDGE_EVENTS" || top.SourceSubject("shop") != "bridge.in.shop" ||
		!slices.Contains(top.Events.Subjects, cfg.Sources[1].NATS.Subjects[0]) {
		t.Errorf("names: %s %s %s %v", cfg.Sources[1].Kind(), top.Events.Name, top.SourceSubject("shop"), top.Events.Subjects)
	}
	want, _ := filepath.Abs("../../examples/rules")
	if got, _ := filepath.Abs(cfg.Rules.Paths[0]); got != want {
		t.Errorf("rules path %q, want %q", got, want)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse("/etc/bridge/bridge.yaml", []byte("sources:\n  - {name: x, webhook: {auth: {scheme: hmac-sha256, secret: s}}}\n  - {name: t, nats: {subjects: [t.>], core: true}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if cfg.Delivery != d.Delivery || cfg.HTTP != d.HTTP || cfg.NATS.Events != d.NATS.Events || !cfg.Rules.Watch {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.Admin.Listen != "127.0.0.1:9090" {
		t.Errorf("the admin listener is not on loopback by default: %q", cfg.Admin.Listen)
	}
	if cfg.DataDir != "/etc/bridge/data" || cfg.Rules.Paths[0] != "/etc/bridge/rules" {
		t.Errorf("paths: %q %q", cfg.DataDir, cfg.Rules.Paths)
	}
	if q := cfg.Sources[1].NATS.Queue; q != "bridge" {
		t.Errorf("core queue group %q, want the prefix", q)
	}
	a := cfg.Sources[0].Webhook.Auth
	if a.Header != "X-Signature-256" || a.Encoding != "hex" {
		t.Errorf("hmac defaults: %+v", a)
	}
	if _, err := Parse("c.yaml", nil, env(nil)); err != nil {
		t.Errorf("an empty file: %v", err)
	}
}

func TestEnvironmentExpansion(t *testing.T) {
	src := `intercom:
  token: ${TOKEN}
  rate_limit_per_minute: ${RATE}
  version: "${VERSION:-2.11}"
  base_url: https://$${host}
`
	_, err := Parse("c.yaml", []byte(src), env(map[string]string{"TOKEN": "tok", "RATE": "600"}))
	if err == nil || !strings.Contains(err.Error(), "intercom.base_url") {
		t.Fatalf("$$ should stay a literal $ and make an invalid URL: %v", err)
	}
	src = strings.Replace(src, "https://$${host}", "https://api.eu.intercom.io", 1)
	cfg, err := Parse("c.yaml", []byte(src), env(map[string]string{"TOKEN": "tok", "RATE": "600"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Intercom.Token != "tok" || cfg.Intercom.RateLimitPerMinute != 600 || cfg.Intercom.Version != "2.11" {
		t.Errorf("got %+v", cfg.Intercom)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unset variable", "intercom:\n  token: ${INTERCOM_TOKEN}\n", "c.yaml:2:10: environment variable INTERCOM_TOKEN is not set"},
		{"unknown key", "http:\n  listen: :8080\n  colour: red\n", "c.yaml:3:3: http.colour: unknown key (known keys here: body_idle_timeout, listen, max_body_bytes, max_connections, max_inflight_bytes, max_json_depth)"},
		{"unknown key in a source", "sources:\n  - name: a\n    webhook: {auth: {scheme: none}, secret: x}\n", "c.yaml:3:37: sources[0].webhook.secret: unknown key (known keys here: auth, content_types, headers, id, preset, subject)"},
		{"duplicate key", "log: {level: info}\nlog: {level: debug}\n", "c.yaml:2:1: log: duplicate key (first at line 1)"},
		{"wrong type", "delivery:\n  workers: many\n", `c.yaml:2:12: delivery.workers: wants a whole number, not "many"`},
		{"bad duration", "delivery:\n  dedupe_window: forever\n", `c.yaml:2:18: delivery.dedupe_window: invalid duration "forever" (use units s, m, h, d: 90s, 10m, 7d)`},
		{"a list for a mapping", "http: [a]\n", "c.yaml:1:7: http: wants a mapping, not a list"},
		{"bad level", "log:\n  level: loud\n", `c.yaml:2:10: log.level: must be debug, info, warn or error, not "loud"`},
		{"scheme missing", "sources:\n  - name: a\n    webhook:\n      auth: {secret: s}\n", "c.yaml:4:13: sources[0].webhook.auth.scheme: is required: one of standard-webhooks, stripe, hmac-sha256, bearer, none (none must be written out)"},
		{"scheme unknown", "sources:\n  - name: a\n    webhook: {auth: {scheme: hmac, secret: s}}\n", `c.yaml:3:30: sources[0].webhook.auth.scheme: unknown scheme "hmac" (want one of standard-webhooks, stripe, hmac-sha256, bearer, none)`},
		{"secret missing", "sources:\n  - name: a\n    webhook: {auth: {scheme: bearer}}\n", "c.yaml:3:21: sources[0].webhook.auth.secret: is required for scheme bearer"},
		{"none with a secret", "sources:\n  - name: a\n    webhook: {auth: {scheme: none, secret: s}}\n", "c.yaml:3:21: sources[0].webhook.auth: scheme none takes no secret"},
		{"both kinds", "sources:\n  - name: a\n    webhook: {auth: {scheme: none}}\n    nats: {subjects: [x]}\n", "c.yaml:2:5: sources[0]: needs exactly one of webhook or nats"},
		{"duplicate source", "sources:\n  - {name: a, nats: {subjects: [x]}}\n  - {name: a, nats: {subjects: [y]}}\n", `c.yaml:3:12: sources[1].name: "a" is also the name of sources[0]`},
		{"bad source name", "sources:\n  - {name: Shop, nats: {subjects: [x]}}\n", `c.yaml:2:12: sources[0].name: "Shop" may only hold a-z, 0-9, '-' and '_'`},
		{"bad subject", "sources:\n  - {name: a, nats: {subjects: [x.*y]}}\n", `c.yaml:2:33: sources[0].nats.subjects[0]: subject "x.*y": wildcards must be whole tokens`},
		{"own subjects", "sources:\n  - {name: a, nats: {subjects: [bridge.in.a]}}\n", `c.yaml:2:33: sources[0].nats.subjects[0]: "bridge.in.a" overlaps the bridge's own subjects (bridge.>)`},
		{"captured twice", "sources:\n  - {name: a, nats: {subjects: [x]}}\n  - {name: b, nats: {subjects: [x]}}\n", `c.yaml:3:33: sources[1].nats.subjects[0]: "x" is also captured by source "a"`},
		{"external option on embedded", "nats:\n  token: t\n", "c.yaml:2:10: nats.token: is for an external server (nats.url) or the embedded server's listener (nats.listen): set one, or remove it"},
		{"listen on external", "nats:\n  url: nats://h:4222\n  listen: :4222\n", "c.yaml:3:11: nats.listen: is for the embedded server; with nats.url set the bridge uses that server"},
		{"bad nats url", "nats:\n  url: localhost\n", `c.yaml:2:8: nats.url: "localhost" is not a URL such as nats://host:4222`},
		{"on_uncertain", "delivery: {on_uncertain: maybe}\n", `c.yaml:1:26: delivery.on_uncertain: must be resend or dead_letter, not "maybe"`},
		{"pprof without the admin listener", "admin: {listen: '', pprof: true}\n", "c.yaml:1:28: admin.pprof: is served on the admin listener: set admin.listen, or remove it"},
		{"admin id", "intercom: {default_admin_id: bob}\n", "c.yaml:1:30: intercom.default_admin_id: must be an admin id (digits)"},
		{"unknown role", "role: worker\n", `c.yaml:1:7: role: must be all, intake or delivery, not "worker"`},
		{"a role alone on the embedded server", "role: intake\n", "c.yaml:1:7: role: intake needs replicas of the other role on the same NATS: set nats.url, or nats.listen for the embedded server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.src), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, tc.want) {
					return
				}
			}
			t.Errorf("want a line starting\n  %s\ngot\n  %s", tc.want, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		})
	}
}

// TestLoadReportsEveryProblem: one run shows every problem of the file,
// each at its place, whatever kind the others are; a value already
// reported (an unset variable) is not reported again by the checks.
func TestLoadReportsEveryProblem(t *testing.T) {
	src := `log: {level: loud}
http:
  colour: red
  max_body_bytes: lots
delivery:
  dedupe_window: forever
  backoff: {initial: soon}
  on_uncertain: maybe
intercom:
  default_admin_id: ${ADMIN}
`
	_, err := Parse("c.yaml", []byte(src), env(nil))
	want := []string{
		`c.yaml:1:14: log.level: must be debug, info, warn or error, not "loud"`,
		"c.yaml:3:3: http.colour: unknown key (known keys here: body_idle_timeout, listen, max_body_bytes, max_connections, max_inflight_bytes, max_json_depth)",
		`c.yaml:4:19: http.max_body_bytes: wants a whole number, not "lots"`,
		`c.yaml:6:18: delivery.dedupe_window: invalid duration "forever" (use units s, m, h, d: 90s, 10m, 7d)`,
		`c.yaml:7:22: delivery.backoff.initial: invalid duration "soon" (use units s, m, h, d: 90s, 10m, 7d)`,
		`c.yaml:8:17: delivery.on_uncertain: must be resend or dead_letter, not "maybe"`,
		"c.yaml:10:21: environment variable ADMIN is not set",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// TestSyntaxErrorLine: a YAML syntax error points at the line that is
// wrong, not at the line before the construct the parser was reading.
func TestSyntaxErrorLine(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unquoted variable in a flow mapping", "log: {level: info}\nsources:\n  - name: shop\n    webhook:\n      auth: {scheme: standard-webhooks, secret: ${SHOP_SECRET}}\n",
			`c.yaml:5:49: invalid YAML: did not find expected ',' or '}': a ${VAR} inside {...} or [...] must be quoted: "${VAR}"`},
		{"unclosed list", "log: {level: info}\nrules:\n  paths: [rules\n  watch: true\n", "c.yaml:3:3: invalid YAML: did not find expected ',' or ']'"},
		{"key in a list", "log: {level: info}\nrules:\n  paths:\n    - rules\n    watch: true\n", "c.yaml:5:5: invalid YAML: did not find expected '-' indicator"},
		{"item in a mapping", "log: {level: info}\nhttp:\n  listen: :8080\n  - max_body_bytes: 1\n", "c.yaml:4:3: invalid YAML: did not find expected key"},
		{"indented too little", "log: {level: info}\nhttp:\n  listen: :8080\n max_body_bytes: 1\n", "c.yaml:4:2: invalid YAML: did not find expected key"},
		{"a colon in a value", "log: {level: info}\nhttp:\n  listen: a: b\n", "c.yaml:3:1: invalid YAML: mapping values are not allowed in this context"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.src), env(nil))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got\n  %v\nwant\n  %s", err, tc.want)
			}
		})
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	src := `intercom: {token: "tok-SECRET-1", timeout: -1s}
nats: {password: "pw-SECRET-2"}
sources:
  - name: a
    webhook: {auth: {scheme: none, secret: "wh-SECRET-3"}, colour: "x"}
`
	_, err := Parse("c.yaml", []byte(src), env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("an error shows a secret:\n%v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10s": 10 * time.Second, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour, "168h": 168 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "7", "x1d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

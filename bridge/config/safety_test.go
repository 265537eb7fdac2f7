package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExampleSecretOnlyOnLoopback: the secret printed in the README signs
// requests on a loopback listener only; anywhere else the example config
// refuses to load and names the variable to set.
func TestExampleSecretOnlyOnLoopback(t *testing.T) {
	example := mustRead(t, "../../config.example.yaml")
	cases := []struct {
		name string
		env  map[string]string
		want string // "" loads
	}{
		{"default: loopback", nil, ""},
		{"localhost", map[string]string{"BRIDGE_HTTP_LISTEN": "localhost:8080"}, ""},
		{"ipv6 loopback", map[string]string{"BRIDGE_HTTP_LISTEN": "[::1]:8080"}, ""},
		{"all interfaces", map[string]string{"BRIDGE_HTTP_LISTEN": "0.0.0.0:8080"}, "set SHOP_WEBHOOK_SECRET to a secret of your own"},
		{"no host", map[string]string{"BRIDGE_HTTP_LISTEN": ":8080"}, "set SHOP_WEBHOOK_SECRET"},
		{"a public address", map[string]string{"BRIDGE_HTTP_LISTEN": "192.0.2.7:8080"}, "set SHOP_WEBHOOK_SECRET"},
		{"own secret off loopback", map[string]string{"BRIDGE_HTTP_LISTEN": "0.0.0.0:8080", "SHOP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("../../config.example.yaml", example, env(tc.env))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				if !IsLoopback(cfg.HTTP.Listen) && tc.env["SHOP_WEBHOOK_SECRET"] == "" {
					t.Errorf("listens on %q with the example secret", cfg.HTTP.Listen)
				}
			case err == nil:
				t.Fatalf("loaded; want an error containing %q", tc.want)
			case !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "sources[0].webhook.auth.secret"):
				t.Errorf("error %q, want it to name the key and %q", err, tc.want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:1": true, "[::1]:80": true, "localhost:9": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:80": false, "10.0.0.1:80": false, "example.com:80": false, "nonsense": false,
	} {
		t.Run(in, func(t *testing.T) {
			if got := IsLoopback(in); got != want {
				t.Errorf("IsLoopback(%q) = %v", in, got)
			}
		})
	}
}

// TestEmbeddedNATSListener: the embedded server's listener needs
// credentials off loopback, and they are checked like an external one's.
func TestEmbeddedNATSListener(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("file-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, src, want string // want "" loads
	}{
		{"loopback without auth", "nats: {listen: 127.0.0.1:4222}\n", ""},
		{"all interfaces without auth", "nats: {listen: 0.0.0.0:4222}\n", `nats.listen: "0.0.0.0:4222" is not a loopback address: set nats.user and nats.password, or nats.token`},
		{"no host without auth", "nats: {listen: ':4222'}\n", "is not a loopback address"},
		{"all interfaces with client certificates", "nats: {listen: 0.0.0.0:4222, tls: {cert: c.pem, key: k.pem, ca: ca.pem}}\n", ""},
		{"all interfaces with a token", "nats: {listen: 0.0.0.0:4222, token: t0ken-long-enough-16}\n", ""},
		{"all interfaces with a user", "nats: {listen: 0.0.0.0:4222, user: bridge, password_file: pw}\n", ""},
		{"token and user", "nats: {listen: 0.0.0.0:4222, user: u, password: p, token: t}\n", "nats.token: and nats.user exclude each other"},
		{"password and its file", "nats: {listen: 127.0.0.1:4222, user: u, password: p, password_file: pw}\n", "nats.password_file: set either the value or the file, not both"},
		{"missing file", "nats: {listen: 127.0.0.1:4222, token_file: nope}\n", "nats.token_file: open"},
		{"auth without a listener", "nats: {user: u, password: p}\n", "nats.user: is for an external server (nats.url) or the embedded server's listener"},
		{"half a certificate", "nats: {listen: 127.0.0.1:4222, tls: {cert: c.pem}}\n", "nats.tls: cert and key go together"},
		{"max_store", "nats: {max_store: 0}\n", "nats.max_store: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tc.src), env(nil))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			_ = cfg
		})
	}
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte("nats: {listen: 0.0.0.0:4222, user: bridge, password_file: pw}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Password != "file-password" {
		t.Errorf("password from the file: %q", cfg.NATS.Password)
	}
	if s := cfg.Secrets(); len(s) != 1 || s[0] != "file-password" {
		t.Errorf("a password from a file is not listed as a secret: %q", s)
	}
}

func TestHTTPLimits(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"defaults", "", ""},
		{"inflight below one body", "http: {max_body_bytes: 2048, max_inflight_bytes: 1024}\n", "http.max_inflight_bytes: must be at least http.max_body_bytes (2048)"},
		{"no connections", "http: {max_connections: 0}\n", "http.max_connections: must be positive"},
		{"no idle time", "http: {body_idle_timeout: 0s}\n", "http.body_idle_timeout: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tc.src), env(nil))
			if tc.want == "" {
				if err != nil || cfg.HTTP.MaxInflightBytes != 64<<20 || cfg.HTTP.MaxConnections != 1024 || cfg.NATS.MaxStore != 1<<30 {
					t.Fatalf("defaults: %v %+v", err, cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestLint: weak settings load, and each is a warning at its key.
func TestLint(t *testing.T) {
	const strong = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	cases := []struct {
		name, src string
		want      []string // substrings of the warnings, in order; none: no warning
	}{
		{"strong settings", "http: {listen: 0.0.0.0:8080}\nsources: [{name: s, webhook: {auth: {scheme: standard-webhooks, secret: " + strong + "}, id: 'headers[\"webhook-id\"]'}}]\n", nil},
		{"none off loopback", "http: {listen: ':8080'}\nsources: [{name: s, webhook: {auth: {scheme: none}}}]\n",
			[]string{`c.yaml:2:46: sources[0].webhook.auth.scheme: none accepts a request from anyone who can reach http.listen ":8080"`}},
		{"none on loopback", "http: {listen: 127.0.0.1:8080}\nsources: [{name: s, webhook: {auth: {scheme: none}}}]\n", nil},
		{"short secret", "sources: [{name: s, webhook: {auth: {scheme: bearer, secret: abc}}}]\n",
			[]string{"sources[0].webhook.auth.secret: a secret of 3 bytes is easy to guess: use at least 16 random bytes"}},
		{"short whsec", "sources: [{name: s, webhook: {auth: {scheme: standard-webhooks, secret: whsec_QUJDRA==}}}]\n",
			[]string{"a secret of 4 bytes"}},
		{"long tolerance", "nats: {events: {duplicates: 3h}}\nsources: [{name: s, webhook: {auth: {scheme: standard-webhooks, secret: " + strong + ", tolerance: 2h}}}]\n",
			[]string{"sources[0].webhook.auth.tolerance: 2h0m0s lets a captured request be replayed for that long"}},
		{"duplicates shorter than the tolerance", "nats: {events: {duplicates: 1m}}\nsources: [{name: s, webhook: {auth: {scheme: standard-webhooks, secret: " + strong + "}}}]\n",
			[]string{"sources[0].webhook.auth.tolerance: is longer than nats.events.duplicates (1m0s)"}},
		{"id from an unsigned header", "sources: [{name: s, webhook: {auth: {scheme: standard-webhooks, secret: " + strong + "}, id: 'headers[\"x-request-id\"]'}}]\n",
			[]string{`sources[0].webhook.id: reads header "x-request-id", which scheme standard-webhooks does not sign`}},
		{"subject from a header, hmac", "sources: [{name: s, webhook: {auth: {scheme: hmac-sha256, secret: 0123456789abcdef0123}, subject: 'headers.topic ?? \"x\"'}}]\n",
			[]string{`sources[0].webhook.subject: reads header "topic", which scheme hmac-sha256 does not sign`}},
		{"a header chosen at run time", "sources: [{name: s, webhook: {auth: {scheme: hmac-sha256, secret: 0123456789abcdef0123}, id: 'headers[event.h]'}}]\n",
			[]string{"reads header chosen at run time"}},
		{"http intercom", "intercom: {base_url: 'http://api.intercom.io'}\n", []string{"intercom.base_url: is http"}},
		{"pprof off loopback", "admin: {listen: '0.0.0.0:9090', pprof: true}\n", []string{`c.yaml:1:17: admin.listen: "0.0.0.0:9090" is not a loopback address and admin.auth is not set`, `c.yaml:1:40: admin.pprof: lets anyone who can reach admin.listen "0.0.0.0:9090"`}},
		{"pprof off loopback behind auth", "admin: {listen: '0.0.0.0:9090', pprof: true, auth: {bearer: 0123456789abcdef0123456789abcdef}}\n", nil},
		{"pprof on loopback", "admin: {pprof: true}\n", nil},
		{"http intercom on loopback", "intercom: {base_url: 'http://127.0.0.1:8089'}\n", nil},
		{"a token on an intake replica", "role: intake\nnats: {url: 'nats://127.0.0.1:4222'}\nintercom: {token: tok}\n",
			[]string{"c.yaml:3:19: intercom.token: role intake never sends"}},
		{"a token on a delivery replica", "role: delivery\nnats: {url: 'nats://127.0.0.1:4222'}\nintercom: {token: tok}\n", nil},
		{"an intake replica without a token", "role: intake\nnats: {url: 'nats://127.0.0.1:4222'}\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte(tc.src), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			got := cfg.Warnings()
			if len(got) != len(tc.want) {
				t.Fatalf("%d warnings, want %d:\n%v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i].Error(), w) {
					t.Errorf("warning %d:\n  %s\nwant it to contain\n  %s", i, got[i], w)
				}
			}
		})
	}
}

// TestAdminAuth: admin.auth takes its secrets written out or from files,
// is checked at its place in the file, lists them as secrets, and warns
// about an admin listener off loopback without it.
func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]string{"bearer": "a-bearer-token-from-a-file\n", "pw": "a-password-from-a-file\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ name, src, want string }{
		{"files", "admin: {auth: {bearer_file: bearer, basic: {user: ops, password_file: pw}}}\n", ""},
		{"no user", "admin:\n  auth:\n    basic: {password: p4ssword-long-enough}\n", "c.yaml:3:12: admin.auth.basic.user: is required with a password"},
		{"colon in user", "admin: {auth: {basic: {user: 'a:b', password: p}}}\n", "admin.auth.basic.user: must not contain ':'"},
		{"no password", "admin: {auth: {basic: {user: ops}}}\n", "admin.auth.basic: needs password or password_file"},
		{"both", "admin: {auth: {bearer: t, bearer_file: bearer}}\n", "admin.auth.bearer_file: set either the value or the file, not both"},
		{"unknown key", "admin: {auth: {token: t}}\n", "token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tc.src), env(nil))
			if tc.want == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "p4ssword") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte("admin: {listen: 0.0.0.0:9090, auth: {bearer_file: bearer, basic: {user: ops, password_file: pw}}}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Admin.Auth; a.Bearer != "a-bearer-token-from-a-file" || a.Basic.Password != "a-password-from-a-file" || !a.IsSet() {
		t.Errorf("from the files: %+v", a)
	}
	if s := cfg.Secrets(); !slices.Contains(s, "a-bearer-token-from-a-file") || !slices.Contains(s, "a-password-from-a-file") {
		t.Errorf("admin secrets are not listed as secrets: %q", s)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("warnings with auth: %v", w)
	}
	cfg, err = Parse(filepath.Join(dir, "c.yaml"), []byte("admin: {listen: 0.0.0.0:9090}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0].Error(), "c.yaml:1:17: admin.listen") || !strings.Contains(w[0].Error(), "the console is off") {
		t.Errorf("warnings off loopback without auth: %v", w)
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/bridge/ingest"
	"github.com/intercom-bridge/bridge/internal/readme"
)

// readmeYAML returns the first ```yaml block after the line containing
// marker in the README.
func readmeYAML(t *testing.T, marker string) string {
	return readme.Block(t, "../../README.md", marker, "yaml")
}

// TestReadmeWebhookSources: the README's webhook sources load, and the
// one header they read unsigned is the warning the README mentions.
func TestReadmeWebhookSources(t *testing.T) {
	src := readmeYAML(t, "Each webhook source receives")
	vars := map[string]string{
		"SHOP_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "PARTNER_SECRET": "0123456789abcdef0123",
		"CRM_TOKEN": "crm-token-0123456789", "CRM_TOKEN_NEXT": "crm-token-9876543210",
	}
	cfg, err := Parse("c.yaml", []byte(src+"http: {listen: 127.0.0.1:8080}\n"), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Warnings()
	if len(w) != 1 || !strings.Contains(w[0].Msg, `sources[1].webhook.subject: reads header "x-partner-event"`) {
		t.Errorf("warnings %v, want the one about x-partner-event", w)
	}
}

// TestReadmePresets: each preset's block in the README loads as it is,
// without a warning, and gets its preset's scheme and subject.
func TestReadmePresets(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"GITHUB_WEBHOOK_SECRET": "0123456789abcdef0123", "SHOPIFY_CLIENT_SECRET": "shpss_0123456789abcdef",
		"STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef0123", "BILLING_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	clerk := filepath.Join(dir, "clerk-webhook-secret")
	if err := os.WriteFile(clerk, []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, preset := range ingest.PresetNames() {
		t.Run(preset, func(t *testing.T) {
			src := readmeYAML(t, "(`preset: "+preset+"`)")
			src = strings.ReplaceAll(src, "/run/secrets/clerk-webhook-secret", clerk)
			cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if w := cfg.Warnings(); len(w) > 0 {
				t.Errorf("warnings: %v", w)
			}
			p, _ := ingest.LookupPreset(preset)
			w := cfg.Sources[0].Webhook
			if w.Preset != preset || w.Auth.Scheme != p.Auth.Scheme || w.Subject != p.Subject || len(w.Auth.AllSecrets()) != 1 {
				t.Errorf("source %+v, want preset %s's %+v", w, preset, p)
			}
		})
	}
}

// TestReadmeNATSListener: the README's embedded listener loads, and
// without its credentials it is refused.
func TestReadmeNATSListener(t *testing.T) {
	src := readmeYAML(t, "connect with the same\nsettings:")
	dir := t.TempDir()
	pw := filepath.Join(dir, "nats-password")
	if err := os.WriteFile(pw, []byte("a-long-nats-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src = strings.ReplaceAll(src, "/run/secrets/nats-password", pw)
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.User != "bridge" || cfg.NATS.Password != "a-long-nats-password" || cfg.NATS.TLS.Cert == "" {
		t.Errorf("nats: %+v", cfg.NATS)
	}
	noAuth := strings.NewReplacer("  user: bridge\n", "", "  password_file: "+pw+"\n", "").Replace(src)
	if _, err := Parse(filepath.Join(dir, "c.yaml"), []byte(noAuth), env(nil)); err == nil || !strings.Contains(err.Error(), "is not a loopback address") {
		t.Errorf("without credentials: %v", err)
	}
}

// TestReadmeNATSSources: the README's NATS sources load, one of each mode.
func TestReadmeNATSSources(t *testing.T) {
	cfg, err := Parse("c.yaml", []byte(readmeYAML(t, "### NATS subjects")), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var modes []string
	for _, s := range cfg.Sources {
		modes = append(modes, string(s.Kind()))
	}
	if strings.Join(modes, " ") != "capture bind core" {
		t.Errorf("modes %v, want capture, bind and core", modes)
	}
}

// TestReadmeAdminAuth: the README's admin.auth loads with its files, and
// warns about nothing.
func TestReadmeAdminAuth(t *testing.T) {
	src := readmeYAML(t, "Off loopback, set `admin.auth`:")
	dir := t.TempDir()
	for name, v := range map[string]string{"admin-password": "a-long-admin-password\n", "admin-token": "a-long-admin-bearer-token\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src = strings.ReplaceAll(src, "/run/secrets/", dir+"/")
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a := cfg.Admin.Auth; a.Basic.User != "ops" || a.Basic.Password != "a-long-admin-password" || a.Bearer != "a-long-admin-bearer-token" {
		t.Errorf("admin.auth: %+v", a)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %v", w)
	}
}

// TestReadmeRoles: the README's role example loads for each role it names,
// an intake replica without a token warns about nothing, and one given the
// token is warned.
func TestReadmeRoles(t *testing.T) {
	src := readmeYAML(t, "### Splitting intake from delivery")
	cases := []struct {
		role, token       string
		intakes, delivers bool
		warning           string
	}{
		{"", "tok", true, true, ""},
		{"intake", "", true, false, ""},
		{"intake", "tok", true, false, "intercom.token: role intake never sends"},
		{"delivery", "tok", false, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.role+"/"+tc.token, func(t *testing.T) {
			vars := map[string]string{}
			if tc.role != "" {
				vars["BRIDGE_ROLE"] = tc.role
			}
			if tc.token != "" {
				vars["INTERCOM_TOKEN"] = tc.token
			}
			cfg, err := Parse("c.yaml", []byte(src), env(vars))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Intakes() != tc.intakes || cfg.Delivers() != tc.delivers {
				t.Errorf("role %q: intakes %v, delivers %v", cfg.Role, cfg.Intakes(), cfg.Delivers())
			}
			var got []string
			for _, w := range cfg.Warnings() {
				got = append(got, w.Error())
			}
			if tc.warning == "" && len(got) != 0 || tc.warning != "" && (len(got) != 1 || !strings.Contains(got[0], tc.warning)) {
				t.Errorf("warnings %q, want %q", got, tc.warning)
			}
		})
	}
}

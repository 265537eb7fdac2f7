package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/ingest"
)

func TestPresets(t *testing.T) {
	const gh = `headers["x-github-event"] != nil ? "github." + headers["x-github-event"] : ""`
	tests := []struct {
		name    string
		webhook string
		want    Webhook // Preset, Auth.Scheme/Header/Prefix/Encoding, Subject, ContentTypes
		tol     time.Duration
	}{
		{"github", `{preset: github, auth: {secret: 0123456789abcdef0123}}`,
			Webhook{Auth: WebhookAuth{Scheme: "hmac-sha256", Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: "hex"}, Subject: gh,
				ContentTypes: []string{ingest.ContentTypeJSON, ingest.ContentTypeForm}}, 0},
		{"shopify", `{preset: shopify, auth: {secret: 0123456789abcdef0123}}`,
			Webhook{Auth: WebhookAuth{Scheme: "hmac-sha256", Header: "X-Shopify-Hmac-Sha256", Encoding: "base64"}, Subject: `headers["x-shopify-topic"] != nil ? "shopify." + replace(headers["x-shopify-topic"], "/", ".") : ""`}, 0},
		{"stripe", `{preset: stripe, auth: {secret: whsec_0123456789abcdef0123}}`,
			Webhook{Auth: WebhookAuth{Scheme: "stripe"}, Subject: `event.type != nil ? "stripe." + event.type : ""`}, 5 * time.Minute},
		{"svix", `{preset: svix, auth: {secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}}`,
			Webhook{Auth: WebhookAuth{Scheme: "standard-webhooks"}, Subject: `event.type != nil ? source + "." + event.type : ""`}, 5 * time.Minute},
		{"standard-webhooks", `{preset: standard-webhooks, auth: {secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}}`,
			Webhook{Auth: WebhookAuth{Scheme: "standard-webhooks"}, Subject: `event.type != nil ? source + "." + event.type : ""`}, 5 * time.Minute},
		{"explicit keys win", `{preset: github, auth: {secret: 0123456789abcdef0123, header: X-Hub-Signature-Next}, subject: '"gh"', content_types: [application/json]}`,
			Webhook{Auth: WebhookAuth{Scheme: "hmac-sha256", Header: "X-Hub-Signature-Next", Prefix: "sha256=", Encoding: "hex"}, Subject: `"gh"`,
				ContentTypes: []string{ingest.ContentTypeJSON}}, 0},
		{"another scheme takes none of the preset's auth", `{preset: github, auth: {scheme: bearer, secret: 0123456789abcdef0123}}`,
			Webhook{Auth: WebhookAuth{Scheme: "bearer"}, Subject: gh, ContentTypes: []string{ingest.ContentTypeJSON, ingest.ContentTypeForm}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte("http: {listen: 127.0.0.1:8080}\nsources:\n  - name: s\n    webhook: "+tc.webhook+"\n"), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if w := cfg.Warnings(); len(w) > 0 && tc.name != "explicit keys win" {
				t.Errorf("warnings: %v", w)
			}
			got := cfg.Sources[0].Webhook
			a, wa := got.Auth, tc.want.Auth
			if a.Scheme != wa.Scheme || a.Header != cmpOr(wa.Header, a.Scheme) || a.Prefix != wa.Prefix || a.Encoding != cmpOrEnc(wa.Encoding, a.Scheme) {
				t.Errorf("auth %+v, want %+v", a, wa)
			}
			if got.Subject != tc.want.Subject || !slices.Equal(got.ContentTypes, tc.want.ContentTypes) {
				t.Errorf("subject %q, content types %v; want %q, %v", got.Subject, got.ContentTypes, tc.want.Subject, tc.want.ContentTypes)
			}
			if a.Tolerance.D() != tc.tol {
				t.Errorf("tolerance %s, want %s", a.Tolerance, tc.tol)
			}
			if is := cfg.IngestSources()[0].Webhook; !slices.Equal(is.ContentTypes, tc.want.ContentTypes) || is.Subject != tc.want.Subject {
				t.Errorf("ingest source %+v", is)
			}
		})
	}
	// A subject of the file's own that reads an unsigned header warns, as
	// before; the preset's does not (the README says what it reads).
	cfg, err := Parse("c.yaml", []byte("http: {listen: 127.0.0.1:8080}\nsources:\n  - name: s\n    webhook: {preset: shopify, auth: {secret: 0123456789abcdef0123}, subject: 'headers[\"x-shopify-shop-domain\"]'}\n"), env(nil))
	if err != nil || len(cfg.Warnings()) != 1 || !strings.Contains(cfg.Warnings()[0].Msg, `reads header "x-shopify-shop-domain"`) {
		t.Errorf("warnings %v, %v", cfg.Warnings(), err)
	}
}

// cmpOr and cmpOrEnc are the header and encoding WithDefaults gives an
// hmac-sha256 source that sets none.
func cmpOr(header, scheme string) string {
	if header == "" && scheme == "hmac-sha256" {
		return "X-Signature-256"
	}
	return header
}

func cmpOrEnc(enc, scheme string) string {
	if enc == "" && scheme == "hmac-sha256" {
		return "hex"
	}
	return enc
}

func TestPresetErrors(t *testing.T) {
	tests := []struct{ name, webhook, want string }{
		{"unknown preset", `{preset: gitlab, auth: {scheme: none}}`, `c.yaml:3:23: sources[0].webhook.preset: unknown preset "gitlab" (want one of github, shopify, standard-webhooks, stripe, svix)`},
		{"a preset needs the secret", `{preset: stripe}`, `c.yaml:3:14: sources[0].webhook.auth.secret: is required for scheme stripe`},
		{"unknown content type", `{preset: github, auth: {secret: s}, content_types: [text/plain]}`, `c.yaml:3:65: sources[0].webhook.content_types: unknown content type "text/plain" (want application/json or application/x-www-form-urlencoded)`},
		{"a tolerance where nothing is timed", `{preset: github, auth: {secret: s, tolerance: 1m}}`, `c.yaml:3:60: sources[0].webhook.auth.tolerance: is only used by schemes standard-webhooks and stripe`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte("sources:\n  - name: s\n    webhook: "+tc.webhook+"\n"), env(nil))
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), tc.want) {
				t.Errorf("error\n  %v\nwant the line\n  %s", err, tc.want)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("gh", "0123456789abcdef0123\n")
	write("rotating", "old-secret-0123456789\r\n\nnew-secret-0123456789\n")
	write("intercom", "dG9rZW4tZnJvbS1hLWZpbGU=\n")
	write("nats", "nats-password-0123\n")
	write("empty", "\n")
	src := `nats: {listen: 127.0.0.1:4222, user: bridge, password_file: nats}
intercom: {token_file: intercom}
sources:
  - {name: gh, webhook: {preset: github, auth: {secret_file: gh}}}
  - {name: crm, webhook: {auth: {scheme: bearer, secret_file: rotating}}}
`
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Sources[0].Webhook.Auth.AllSecrets(); !slices.Equal(got, []string{"0123456789abcdef0123"}) {
		t.Errorf("secret_file, relative to the config: %q", got)
	}
	if got := cfg.Sources[1].Webhook.Auth.AllSecrets(); !slices.Equal(got, []string{"old-secret-0123456789", "new-secret-0123456789"}) {
		t.Errorf("a secret a line: %q", got)
	}
	if cfg.Intercom.Token != "dG9rZW4tZnJvbS1hLWZpbGU=" || cfg.NATS.Password != "nats-password-0123" {
		t.Errorf("token_file %q, password_file %q", cfg.Intercom.Token, cfg.NATS.Password)
	}
	if got := cfg.Secrets(); !slices.Contains(got, "new-secret-0123456789") || !slices.Contains(got, "dG9rZW4tZnJvbS1hLWZpbGU=") {
		t.Errorf("Secrets() %q lacks the secrets read from files", got)
	}

	// SIGHUP: the files are read again; a problem leaves the caller with
	// an error naming the source and the file.
	write("rotating", "new-secret-0123456789\n")
	again, err := cfg.ReadWebhookSecretFiles()
	if err != nil || !slices.Equal(again["crm"], []string{"new-secret-0123456789"}) || len(again) != 2 {
		t.Errorf("re-read: %q, %v", again, err)
	}
	os.Remove(filepath.Join(dir, "gh"))
	if _, err := cfg.ReadWebhookSecretFiles(); err == nil || !strings.Contains(err.Error(), "source gh: secret_file: open "+filepath.Join(dir, "gh")) {
		t.Errorf("re-read of a removed file: %v", err)
	}

	bad := []struct{ name, src, want string }{
		{"missing", "sources:\n  - {name: a, webhook: {auth: {scheme: bearer, secret_file: nope}}}\n",
			"c.yaml:2:61: sources[0].webhook.auth.secret_file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"empty", "sources:\n  - {name: a, webhook: {auth: {scheme: bearer, secret_file: empty}}}\n",
			"c.yaml:2:61: sources[0].webhook.auth.secret_file: " + filepath.Join(dir, "empty") + " is empty"},
		{"both", "sources:\n  - {name: a, webhook: {auth: {scheme: bearer, secret: x, secret_file: gh}}}\n",
			"c.yaml:2:72: sources[0].webhook.auth.secret_file: set either the value or the file, not both"},
		{"intercom token missing", "intercom: {token_file: /nonexistent/token}\n",
			"c.yaml:1:24: intercom.token_file: open /nonexistent/token: no such file or directory"},
		{"intercom token and file", "intercom: {token: t, token_file: intercom}\n",
			"c.yaml:1:34: intercom.token_file: set either the value or the file, not both"},
	}
	write("gh", "0123456789abcdef0123\n")
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tc.src), env(nil))
			want := filepath.Join(dir, tc.want)
			if err == nil || !slices.Contains(strings.Split(err.Error(), "\n"), want) {
				t.Errorf("error\n  %v\nwant the line\n  %s", err, want)
			}
		})
	}
}

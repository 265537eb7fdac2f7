package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// TestSendSignsForEachScheme posts with bridge send to a server that checks
// the signature the way the bridge does.
func TestSendSignsForEachScheme(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `
sources:
  - {name: std, webhook: {auth: {scheme: standard-webhooks, secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}}
  - {name: gh, webhook: {auth: {scheme: hmac-sha256, secret: s3, header: X-Hub-Signature-256, prefix: "sha256="}}}
  - {name: tok, webhook: {auth: {scheme: bearer, secret: t0k}}}
  - {name: stripe, webhook: {preset: stripe, auth: {secret: whsec_str1pe}}}
  - {name: shopify, webhook: {preset: shopify, auth: {secret: sh0p}}}
`)
	writeFile(t, filepath.Join(dir, "event.json"), `{"type":"order.paid"}`)
	verifiers := map[string]webhook.Verifier{}
	for name, c := range map[string]webhook.AuthConfig{
		"std":     {Scheme: "standard-webhooks", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		"gh":      {Scheme: "hmac-sha256", Secrets: []string{"s3"}, Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: "hex"},
		"tok":     {Scheme: "bearer", Secrets: []string{"t0k"}},
		"stripe":  {Scheme: "stripe", Secrets: []string{"whsec_str1pe"}},
		"shopify": {Scheme: "hmac-sha256", Secrets: []string{"sh0p"}, Header: "X-Shopify-Hmac-Sha256", Encoding: "base64"},
	} {
		v, err := webhook.NewVerifier(c)
		if err != nil {
			t.Fatal(err)
		}
		verifiers[name] = v
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		name := strings.TrimPrefix(r.URL.Path, "/hooks/")
		if err := verifiers[name].Verify(r.Header, body, time.Now()); err != nil || string(body) != `{"type":"order.paid"}` {
			http.Error(w, `{"error":"bad"}`, http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte(`{"id":"x"}`))
	}))
	defer srv.Close()
	for _, source := range []string{"std", "gh", "tok", "stripe", "shopify"} {
		var out, errOut bytes.Buffer
		code := runSend(context.Background(), []string{"-config", cfgPath, "-source", source, "-url", srv.URL, filepath.Join(dir, "event.json")}, &out, &errOut)
		if code != 0 || !strings.HasPrefix(out.String(), "202 Accepted") {
			t.Errorf("%s: exit %d: %s %s", source, code, out.String(), errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := runSend(context.Background(), []string{"-config", cfgPath, "-source", "nope", "-url", srv.URL, filepath.Join(dir, "event.json")}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), `no webhook source "nope"`) {
		t.Errorf("unknown source: exit %d: %s", code, errOut.String())
	}
}

// TestNotRunning: a command that needs a running bridge says so when none
// answers, and names the address it tried, instead of a raw Go error.
func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := ln.Addr().String()
	ln.Close() // nobody listens here now
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `
http: {listen: "`+free+`"}
nats: {url: "nats://`+free+`", connect_timeout: 200ms}
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
`)
	writeFile(t, filepath.Join(dir, "event.json"), `{"type":"order.paid"}`)
	writeFile(t, filepath.Join(dir, "rules", "r.yaml"), "rules: []\n")
	tests := []struct {
		name string
		run  func(ctx context.Context, args []string, stdout, stderr io.Writer) int
		args []string
		want []string
	}{
		{"send", runSend, []string{"-config", cfgPath, "-source", "shop", filepath.Join(dir, "event.json")},
			[]string{"bridge send: no bridge is listening at http://" + free + ": start it with bridge run -config " + cfgPath + ", or name its address with -url"}},
		{"check", runCheck, []string{"-config", cfgPath},
			[]string{"cannot connect to nats://" + free + " (is the bridge running, with nats.listen, or the NATS server of nats.url?)", "\n1 check failed\n"}},
		{"dlq", runDLQ, []string{"list", "-config", cfgPath},
			[]string{"could not connect to nats://" + free + " within 200ms: is that NATS server running, and reachable from here?"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := tt.run(context.Background(), tt.args, &out, &errOut)
			got := out.String() + errOut.String()
			for _, want := range tt.want {
				if code != 1 || !strings.Contains(got, want) {
					t.Errorf("exit %d, output:\n%s\nwant it to contain %q", code, got, want)
				}
			}
		})
	}
}

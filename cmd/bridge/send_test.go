package main

import (
	"bytes"
	"context"
	"io"
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
`)
	writeFile(t, filepath.Join(dir, "event.json"), `{"type":"order.paid"}`)
	verifiers := map[string]webhook.Verifier{}
	for name, c := range map[string]webhook.AuthConfig{
		"std": {Scheme: "standard-webhooks", Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		"gh":  {Scheme: "hmac-sha256", Secrets: []string{"s3"}, Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: "hex"},
		"tok": {Scheme: "bearer", Secrets: []string{"t0k"}},
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
	for _, source := range []string{"std", "gh", "tok"} {
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

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
	"github.com/intercom-bridge/bridge/internal/natstest"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	ic := intercomtest.NewServer()
	defer ic.Close()
	ic.AddAdmin("394051", "Wash", "wash@example.com")
	srv := natstest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `
nats: {url: "`+srv.ClientURL()+`"}
intercom: {base_url: "`+ic.URL()+`", token: "`+ic.Token()+`", default_admin_id: "394051"}
rules: {paths: [rules]}
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
`)
	writeFile(t, filepath.Join(dir, "rules/r.yaml"), `rules:
  - name: a
    message: {type: inapp, to: {type: user, id: x}, body: hi}
  - name: b
    message: {type: inapp, from: "777", to: {type: user, id: x}, body: hi}
`)
	check := func() (int, string) {
		var out, errOut bytes.Buffer
		code := runCheck(context.Background(), []string{"-config", cfgPath}, &out, &errOut)
		return code, out.String() + errOut.String()
	}

	code, out := check()
	for _, want := range []string{
		"ok    rules                  2 rules from",
		"ok    nats                   connected to",
		"fail  stream BRIDGE_EVENTS   stream not found",
		"ok    intercom token         accepted by " + ic.URL() + " (app admin 394051 Wash)",
		"ok    admin 394051           Wash, used by intercom.default_admin_id, rule a",
		"fail  admin 777              no such admin in this workspace; used by rule b",
		"2 checks failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if strings.Contains(out, ic.Token()) {
		t.Errorf("the token is printed:\n%s", out)
	}

	// Fix the rule, create the stream: everything passes.
	writeFile(t, filepath.Join(dir, "rules/r.yaml"), "rules:\n  - name: a\n    message: {type: inapp, to: {type: user, id: x}, body: hi}\n")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(context.Background(), cfg.BrokerOptions(), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureStream(context.Background(), cfg.Topology().Events); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if code, out := check(); code != 0 || !strings.Contains(out, "ok    stream BRIDGE_EVENTS   0 events") {
		t.Errorf("exit %d:\n%s", code, out)
	}

	// A token Intercom rejects.
	writeFile(t, cfgPath, strings.Replace(readFile(t, cfgPath), ic.Token(), "wrong-token", 1))
	if code, out := check(); code != 1 || !strings.Contains(out, "fail  intercom token") || strings.Contains(out, "wrong-token") {
		t.Errorf("exit %d:\n%s", code, out)
	}

	// An intake replica checks NATS only: it has neither the rules nor
	// the token.
	intake := strings.Replace(readFile(t, cfgPath), "wrong-token", "", 1)
	writeFile(t, cfgPath, "role: intake\n"+strings.Replace(intake, "paths: [rules]", "paths: [no-such-dir]", 1))
	code, out = check()
	for _, want := range []string{"skip  rules", "role intake", "ok    stream BRIDGE_EVENTS", "skip  intercom"} {
		if !strings.Contains(out, want) {
			t.Errorf("intake: output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("intake: exit %d:\n%s", code, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A NATS server check cannot reach is named, without the password of
// nats.url.
func TestCheckNATSUnreachableHidesPassword(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, `
nats: {url: "nats://bridge:Pa55-w0rd@127.0.0.1:1", connect_timeout: 500ms}
rules: {paths: [rules]}
`)
	writeFile(t, filepath.Join(dir, "rules/r.yaml"), "rules: []\n")
	var out, errOut bytes.Buffer
	code := runCheck(context.Background(), []string{"-config", cfgPath}, &out, &errOut)
	got := out.String() + errOut.String()
	if code != 1 || !strings.Contains(got, "cannot connect to nats://bridge:xxxxx@127.0.0.1:1") {
		t.Errorf("exit %d:\n%s", code, got)
	}
	if strings.Contains(got, "Pa55-w0rd") {
		t.Errorf("the password is printed:\n%s", got)
	}
}

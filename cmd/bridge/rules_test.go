package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

func TestRulesCommand(t *testing.T) {
	srv := natstest.Start(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rules", "rules.yaml"), backtestDeployed+`  - name: watching
    mode: shadow
    when: event.type == "order.paid"
    message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.user }}'}, body: "<p>Maybe</p>"}
`)
	cfgPath := filepath.Join(dir, "bridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`nats: {url: %q}
http: {listen: "127.0.0.1:0"}
admin: {listen: %q}
sources: [{name: shop, webhook: {auth: {scheme: none}}}]
rules: {paths: [rules]}
intercom: {dry_run: true}
`, srv.ClientURL(), freeAddr(t)))
	run := func() (int, string, string) {
		var out, errOut bytes.Buffer
		code := runRules(context.Background(), []string{"-config", cfgPath}, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	// Not running: the rule files, their modes, no matches.
	code, out, errOut := run()
	if code != 0 || !strings.Contains(errOut, "no bridge answers at http://") ||
		!strings.Contains(dlqLines(out)[5], "watching shadow 0 - "+filepath.Join(dir, "rules", "rules.yaml")+":16:5") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := bridge.Start(context.Background(), cfg, zerolog.Nop(), bridge.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop(context.Background())
	resp, err := http.Post("http://"+svc.WebhookAddr()+"/hooks/shop", "application/json",
		strings.NewReader(`{"type":"order.paid","order":1,"user":"u-1"}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
	if !poll.Until(10*time.Second, func() bool { _, out, _ := run(); return strings.Contains(out, "watching  shadow  1 ") }) {
		_, out, errOut := run()
		t.Fatalf("the shadow rule's match is not listed:\n%s%s", out, errOut)
	}
	code, out, errOut = run()
	lines := dlqLines(out)
	if code != 0 || errOut != "" || lines[0] != "RULE MODE MATCHES LAST MATCH AT" ||
		!strings.HasPrefix(lines[1], "kept live 1 0s ago ") || !strings.HasPrefix(lines[5], "watching shadow 1 0s ago ") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/internal/readme"
)

// readmeOrder is the order.json the README's quick start writes.
const readmeOrder = `{"type":"order.paid","order_id":1001,"amount":149.5,"currency":"EUR","customer":{"id":"u-42","first_name":"Ada"}}`

// TestReadmeRender runs the README's render commands, as written, from
// the repository's root.
func TestReadmeRender(t *testing.T) {
	block := readme.Block(t, "../../README.md", "see the exact\nrequest the bridge would send to Intercom:", "sh")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "order.json"), readmeOrder)
	t.Chdir("../..")
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		args := strings.Fields(strings.TrimPrefix(strings.TrimSpace(cmd), "go run ./cmd/bridge "))
		for i, a := range args {
			if a == "order.json" {
				args[i] = filepath.Join(dir, a)
			}
		}
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 0 || !strings.Contains(out.String(), "order-paid-thanks") {
				t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
			}
		})
	}
}

// TestReadmeBlocksAccountedFor: every yaml and sh block of the README is
// run by a test, or named here as illustrative, with the reason. A new
// block fails this test until it is one or the other.
func TestReadmeBlocksAccountedFor(t *testing.T) {
	// By the start of the block's first line.
	accounted := map[string]string{
		"go run ./cmd/bridge run -config":   "illustrative: the commands .ci/run runs; the example config is run by the security suite",
		"go run ./cmd/fake-intercom":        "illustrative: three terminals; bridge send and the example config are tested (send_test.go, security suite)",
		"secret=ZGV2":                       "the security suite: TestSecurityExampleConfigRefusesPublishedSecret",
		"go run ./cmd/bridge render":        "TestReadmeRender",
		"rules:":                            "rules: TestReadmeExamples",
		"contacts:":                         "rules: TestReadmeExamples",
		"tests:\n  - name: activating":      "rules: TestReadmeWaitingMessage",
		"nats:":                             "bridge/config: TestReadmeNATSListener",
		"admin:":                            "bridge/config: TestReadmeAdminAuth",
		"role:":                             "bridge/config: TestReadmeRoles",
		"sources:\n  - name: shop\n":        "bridge/config: TestReadmeWebhookSources",
		"sources:\n  - name: github":        "bridge/config: TestReadmePresets",
		"sources:\n  - name: shopify":       "bridge/config: TestReadmePresets",
		"sources:\n  - name: stripe":        "bridge/config: TestReadmePresets",
		"sources:\n  - name: clerk":         "bridge/config: TestReadmePresets",
		"sources:\n  - name: billing-hooks": "bridge/config: TestReadmePresets",
		"sources:\n  - name: billing":       "bridge/config: TestReadmeNATSSources",
		"bridge dlq list":                   "illustrative: a synopsis, [brackets] and all; TestDLQ* run each command",
		"docker build":                      "illustrative: needs Docker",
		"livenessProbe:":                    "illustrative: Kubernetes, not the bridge's",
		"go test -race ./...":               "illustrative: what .ci/run runs",
	}
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?m)^```(yaml|sh)\n").FindAllStringIndex(string(data), -1)
	for _, b := range blocks {
		body := string(data[b[1]:])
		found := false
		for start := range accounted {
			if strings.HasPrefix(body, start) {
				found = true
			}
		}
		if !found {
			first, _, _ := strings.Cut(body, "\n")
			t.Errorf("README.md:%d: the block starting %q is neither tested nor named illustrative", bytes.Count(data[:b[0]], []byte("\n"))+1, first)
		}
	}
}

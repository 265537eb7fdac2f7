package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// runSend posts a JSON event to a webhook source of a running bridge,
// signed the way the source's auth scheme wants: for trying a source, or a
// rule, end to end.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("send", "-config FILE -source NAME [-id ID] [-url URL] FILE|-", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file` (for the source's secret and the listen address)")
	source := fs.String("source", "", "webhook source `name`")
	id := fs.String("id", "", "event `id` (webhook-id); default: a new one")
	target := fs.String("url", "", "bridge base `URL`; default: http://<http.listen>")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if *source == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	var auth *config.WebhookAuth
	for _, s := range cfg.Sources {
		if s.Name == *source && s.Webhook != nil {
			auth = &s.Webhook.Auth
		}
	}
	if auth == nil {
		fmt.Fprintf(stderr, "no webhook source %q in %s\n", *source, *configPath)
		return 1
	}
	var body []byte
	if fs.Arg(0) == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	base := *target
	if base == "" {
		host, port, _ := net.SplitHostPort(cfg.HTTP.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/hooks/"+*source, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	req.Header.Set("Content-Type", "application/json")
	if err := sign(req, auth, *id, body); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		fmt.Fprintf(stderr, "bridge send: no bridge is listening at %s: start it with bridge run -config %s, or name its address with -url\n", base, *configPath)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "bridge send: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(stdout, "%s\n%s", resp.Status, answer)
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

// sign adds the headers the source's scheme checks.
func sign(req *http.Request, a *config.WebhookAuth, id string, body []byte) error {
	secrets := a.AllSecrets()
	switch a.Scheme {
	case "standard-webhooks":
		if id == "" {
			id = fmt.Sprintf("msg_%d", time.Now().UnixNano())
		}
		now := time.Now()
		sig, err := webhook.SignStandard(secrets[0], id, now, body)
		if err != nil {
			return err
		}
		req.Header.Set("Webhook-Id", id)
		req.Header.Set("Webhook-Timestamp", fmt.Sprint(now.Unix()))
		req.Header.Set("Webhook-Signature", sig)
	case "stripe":
		req.Header.Set("Stripe-Signature", webhook.SignStripe(secrets[0], time.Now(), body))
	case "hmac-sha256":
		req.Header.Set(a.Header, a.Prefix+webhook.SignHMAC(secrets[0], body, a.Encoding))
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+secrets[0])
	}
	if id != "" && a.Scheme != "standard-webhooks" {
		req.Header.Set("X-Request-Id", id)
	}
	return nil
}

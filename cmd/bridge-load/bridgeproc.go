package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// adminID is the admin the fake knows and the rules send from.
const adminID = "394051"

// bridgeProc is a bridge started as a subprocess on a temp config.
type bridgeProc struct {
	cmd        *exec.Cmd
	exited     chan struct{}
	exitErr    error
	logPath    string
	webhookURL string // http://host:port/hooks/hook
	natsURL    string
	adminURL   string
	secret     string
}

// buildBridge builds ./cmd/bridge of the module the current directory is in.
func buildBridge(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the bridge's Go module: run from it, or pass -bridge PATH")
	}
	bin := filepath.Join(dir, "bridge")
	fmt.Fprintf(stderr, "bridge-load: building the bridge (go build -o %s ./cmd/bridge)\n", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bridge")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return bin, nil
}

// freePort returns a loopback address with a port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// writeRules writes n rules: rule i matches events of kind "k<i>" and sends
// an in-app message to user "u-<n>", deduplicated by the event's n.
func writeRules(path string, n int) error {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - name: r%d
    when: event.kind == "k%d"
    message:
      type: inapp
      to: {type: user, id: '{{ .event.user }}'}
      body: 'Hello {{ .event.user }}, this is event {{ .event.n }}.'
    dedupe: '{{ .event.n }}'
`, i, i)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// bridgeConfig is what the temp config says.
type bridgeConfig struct {
	dir, natsAddr, httpAddr, adminAddr string
	secret, intercomURL, token         string
	rateLimit, workers                 int
}

func (c bridgeConfig) yaml() string {
	return fmt.Sprintf(`# Written by bridge-load.
log: {level: warn, format: json}
data_dir: %q
nats: {listen: %q}
http: {listen: %q}
admin: {listen: %q}
sources:
  - name: hook
    webhook: {auth: {scheme: standard-webhooks, secret: %q}}
  - name: app
    nats: {subjects: ["app.>"]}
intercom:
  base_url: %q
  token: %q
  default_admin_id: %q
  rate_limit_per_minute: %d
rules: {paths: [%q], watch: false}
delivery: {workers: %d}
`, filepath.Join(c.dir, "data"), c.natsAddr, c.httpAddr, c.adminAddr, c.secret,
		c.intercomURL, c.token, adminID, c.rateLimit, filepath.Join(c.dir, "rules.yaml"), c.workers)
}

// startBridge writes the config and rules into dir, starts bin on them and
// waits until /readyz answers 200.
func startBridge(ctx context.Context, bin, dir string, o *options, intercomURL, token string) (*bridgeProc, error) {
	c := bridgeConfig{dir: dir, intercomURL: intercomURL, token: token, rateLimit: o.rateLimit, workers: o.workers}
	for _, a := range []*string{&c.natsAddr, &c.httpAddr, &c.adminAddr} {
		var err error
		if *a, err = freePort(); err != nil {
			return nil, err
		}
	}
	key := make([]byte, 24)
	rand.Read(key)
	c.secret = "whsec_" + base64.StdEncoding.EncodeToString(key)
	if err := writeRules(filepath.Join(dir, "rules.yaml"), o.rules); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "bridge.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml()), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "bridge.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, "run", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &bridgeProc{
		cmd: cmd, exited: make(chan struct{}), logPath: logPath, secret: c.secret,
		webhookURL: "http://" + c.httpAddr + "/hooks/hook",
		natsURL:    "nats://" + c.natsAddr,
		adminURL:   "http://" + c.adminAddr,
	}
	go func() { b.exitErr = cmd.Wait(); close(b.exited) }()
	if err := b.waitReady(ctx, time.Minute); err != nil {
		b.stop()
		return nil, fmt.Errorf("%w\n%s", err, b.logTail(20))
	}
	return b, nil
}

func (b *bridgeProc) pid() int { return b.cmd.Process.Pid }

func (b *bridgeProc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(b.adminURL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-b.exited:
			return fmt.Errorf("the bridge exited at start: %v", b.exitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the bridge was not ready after %s", timeout)
		}
	}
}

// stop asks the bridge to stop (SIGTERM) and kills it if it takes more
// than 30 s.
func (b *bridgeProc) stop() error {
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(30 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
		return errors.New("the bridge did not stop within 30 s; killed")
	}
	var ee *exec.ExitError
	if errors.As(b.exitErr, &ee) {
		return fmt.Errorf("the bridge exited with %v\n%s", b.exitErr, b.logTail(20))
	}
	return b.exitErr
}

// logTail returns the last n lines of the bridge's log.
func (b *bridgeProc) logTail(n int) string {
	data, _ := os.ReadFile(b.logPath)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "bridge log (" + b.logPath + "):\n" + string(bytes.Join(lines, []byte("\n")))
}

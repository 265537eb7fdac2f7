package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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

// child is a subprocess whose output goes to a log file.
type child struct {
	name    string // "the bridge", for messages
	cmd     *exec.Cmd
	exited  chan struct{}
	exitErr error
	logPath string
}

// startChild starts bin with args, its output appended to logPath; env
// (nil: none) is added to this process's environment.
func startChild(name, bin string, args, env []string, logPath string) (*child, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() { c.exitErr = cmd.Wait(); close(c.exited) }()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// stop asks the child to stop (SIGTERM) and kills it if it takes more
// than 30 s.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("%s did not stop within 30 s; killed", c.name)
	}
	var ee *exec.ExitError
	if errors.As(c.exitErr, &ee) {
		return fmt.Errorf("%s exited with %v\n%s", c.name, c.exitErr, c.logTail(20))
	}
	return c.exitErr
}

// logTail returns the last n lines of the child's log.
func (c *child) logTail(n int) string {
	data, _ := os.ReadFile(c.logPath)
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return c.name + " log (" + c.logPath + "):\n" + string(bytes.Join(lines, []byte("\n")))
}

// warnings counts the lines of the child's log at level warn or above (the
// bridge's zerolog JSON), and returns the first one's message and error: a
// run slower than the others usually says why there.
func (c *child) warnings() (n int, first string) {
	data, _ := os.ReadFile(c.logPath)
	for line := range bytes.Lines(data) {
		var l struct{ Level, Message, Error string }
		if json.Unmarshal(line, &l) != nil || (l.Level != "warn" && l.Level != "error" && l.Level != "fatal") {
			continue
		}
		if n++; n == 1 {
			first = l.Message
			if l.Error != "" {
				first += ": " + l.Error
			}
		}
	}
	return n, first
}

// bridgeProc is a bridge started as a subprocess on a temp config.
type bridgeProc struct {
	*child
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
	state                              stateConfig
	// sources is the sources: list; "": a webhook source hook and a
	// capture source app on app.>.
	sources string
	pprof   bool // admin.pprof
}

// defaultSources are the load's sources: %[1]q is the webhook secret.
const defaultSources = `
  - name: hook
    webhook: {auth: {scheme: standard-webhooks, secret: %[1]q}}
  - name: app
    nats: {subjects: ["app.>"]}`

// stateConfig is where the bridge keeps its state and for how long; the
// zero value is the bridge's defaults with the embedded server.
type stateConfig struct {
	natsURL      string        // an external server; "": embedded
	prefix       string        // nats.prefix; "": default
	dedupeWindow time.Duration // delivery.dedupe_window; 0: default
	duplicates   time.Duration // nats.events.duplicates; 0: default
	maxStore     int64         // nats.max_store; 0: default
}

// yaml is the nats: block, followed by the dedupe window if it is set.
func (s stateConfig) yaml(natsAddr string) (nats, delivery string) {
	var f []string
	if s.natsURL != "" {
		f = append(f, fmt.Sprintf("url: %q", s.natsURL))
	} else {
		f = append(f, fmt.Sprintf("listen: %q", natsAddr))
	}
	if s.prefix != "" {
		f = append(f, fmt.Sprintf("prefix: %q", s.prefix))
	}
	if s.duplicates > 0 {
		f = append(f, fmt.Sprintf("events: {duplicates: %s}", s.duplicates))
	}
	if s.maxStore > 0 {
		f = append(f, fmt.Sprintf("max_store: %d", s.maxStore))
	}
	if s.dedupeWindow > 0 {
		delivery = fmt.Sprintf(", dedupe_window: %s", s.dedupeWindow)
	}
	return "{" + strings.Join(f, ", ") + "}", delivery
}

func (c bridgeConfig) yaml() string {
	natsBlock, delivery := c.state.yaml(c.natsAddr)
	return fmt.Sprintf(`# Written by bridge-load.
log: {level: warn, format: json}
data_dir: %q
nats: %s
http: {listen: %q}
admin: {listen: %q, pprof: %t}
sources:%s
intercom:
  base_url: %q
  token: %q
  default_admin_id: %q
  rate_limit_per_minute: %d
rules: {paths: [%q], watch: false}
delivery: {workers: %d%s}
`, filepath.Join(c.dir, "data"), natsBlock, c.httpAddr, c.adminAddr, c.pprof, cmp.Or(c.sources, fmt.Sprintf(defaultSources, c.secret)),
		c.intercomURL, c.token, adminID, c.rateLimit, filepath.Join(c.dir, "rules.yaml"), c.workers, delivery)
}

// startBridge writes the config and rules into dir, calls prepare (nil:
// none) with the config's path, starts bin on them and waits until
// /readyz answers 200.
func startBridge(ctx context.Context, bin, dir string, o *options, intercomURL, token string, prepare func(cfgPath string) error) (*bridgeProc, error) {
	c := bridgeConfig{dir: dir, intercomURL: intercomURL, token: token, rateLimit: o.rateLimit, workers: o.workers, state: o.state, sources: o.sources, pprof: o.pprof}
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
	if prepare != nil {
		if err := prepare(cfgPath); err != nil {
			return nil, err
		}
	}
	ch, err := startChild("the bridge", bin, []string{"run", "-config", cfgPath}, nil, filepath.Join(dir, "bridge.log"))
	if err != nil {
		return nil, err
	}
	b := &bridgeProc{
		child: ch, secret: c.secret,
		webhookURL: "http://" + c.httpAddr + "/hooks/hook",
		natsURL:    cmp.Or(o.state.natsURL, "nats://"+c.natsAddr),
		adminURL:   "http://" + c.adminAddr,
	}
	if err := b.waitReady(ctx, time.Minute); err != nil {
		b.stop()
		return nil, fmt.Errorf("%w\n%s", err, b.logTail(20))
	}
	return b, nil
}

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

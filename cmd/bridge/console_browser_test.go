//go:build browser

package main

// The console in a real browser: Debian's chromium, driven by chromedp,
// against the bridge binary and the fake Intercom. It loads every page,
// replays a dead letter through the forms and sees it delivered, runs the
// playground on a stored event and checks it says exactly what `bridge
// render -explain` prints, and keeps a screenshot of each step in
// $ARTIFACTS/console (default test-artifacts/console at the repository's
// root). .ci/run installs chromium and runs it:
//
//	go test -tags=browser -count=1 -run Browser ./cmd/bridge/

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's; .ci/run installs it.
const chromium = "/usr/bin/chromium"

// artifactDir is where the screenshots go.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(cmp.Or(os.Getenv("ARTIFACTS"), filepath.Join("..", "..", "test-artifacts")), "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// newBrowser starts a headless chromium with a profile of its own and
// everything that reaches for the network turned off: the machine may have
// no internet, and chromium waits on it otherwise.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: apt-get install -y chromium (.ci/run does)", chromium)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium does not start: %v", err)
	}
	return ctx
}

type browserRun struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// do runs steps with a timeout, failing the test with what it was doing.
func (b *browserRun) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// read runs an action that reads a string, failing the test with what.
func (b *browserRun) read(what string, a chromedp.Action[string]) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return s
}

func (b *browserRun) text(sel string) string {
	b.t.Helper()
	return b.read("text of "+sel, chromedp.TextContent(chromedp.CSS(sel)))
}

func (b *browserRun) value(sel string) string {
	b.t.Helper()
	return b.read("value of "+sel, chromedp.Value(chromedp.CSS(sel)))
}

// screenshot keeps the whole page as name.png.
func (b *browserRun) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func TestBrowserConsole(t *testing.T) {
	e := newE2E(t)
	bridge := e.newBridge("console", "info", true)
	bridge.start()
	base := "http://" + bridge.adminAddr + "/console/"

	// A dead letter (Intercom refuses the first message) and a message
	// sent, so that every page has something to show.
	e.ic.FailNext(1, 400)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, "app.events", eventBody(1)); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, func() string { return "the dead letter" }, func() bool {
		info, err := e.js.Stream(ctx, e.names.DLQ.Name)
		return err == nil && info.CachedInfo().State.Msgs == 1
	})
	if _, err := e.js.Publish(ctx, "app.events", eventBody(2)); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, func() string { return "the second message" }, func() bool { return len(e.ic.Messages()) == 1 })

	b := &browserRun{t: t, ctx: newBrowser(t), dir: artifactDir(t)}

	b.do("status", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("ready")))
	if s := b.text("#ready"); s != "Ready" {
		t.Errorf("status: %q", s)
	}
	b.screenshot("status")

	b.do("rules", chromedp.Navigate(base+"rules"), chromedp.WaitVisible(chromedp.ID("rules")))
	if s := b.text("#rules"); !strings.Contains(s, e2eRule) || !strings.Contains(s, "rules.yaml:2:") {
		t.Errorf("rules page: %q", s)
	}
	b.screenshot("rules")

	b.do("scheduled", chromedp.Navigate(base+"scheduled"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	b.screenshot("scheduled")

	// The playground on the newest stored event.
	b.do("playground", chromedp.Navigate(base+"playground"), chromedp.WaitVisible(chromedp.CSS("#recent a")))
	b.screenshot("playground")
	b.do("pick an event", chromedp.Click(chromedp.CSS("#recent a")), chromedp.WaitVisible(chromedp.CSS(`input[name="id"]`)))
	ev := map[string]string{}
	for _, f := range []string{"id", "subject", "time", "type"} {
		ev[f] = b.value(`input[name="` + f + `"]`)
	}
	ev["source"], ev["payload"], ev["headers"] = b.value(`select[name="source"]`), b.value(`textarea[name="payload"]`), b.value(`textarea[name="headers"]`)
	if !strings.Contains(ev["payload"], `"n": 2`) || ev["source"] != "app" {
		t.Fatalf("the picked event: %v", ev)
	}
	b.do("render", chromedp.Click(chromedp.CSS(`#playground button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("result")))
	got := b.text("#result")
	b.screenshot("playground-result")
	eventFile := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(eventFile, []byte(ev["payload"]), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"render", "-explain", "-config", bridge.config, "-event", eventFile, "-source", ev["source"],
		"-subject", ev["subject"], "-id", ev["id"], "-time", ev["time"]}
	if ev["type"] != "" {
		args = append(args, "-type", ev["type"])
	}
	for _, line := range strings.Split(strings.TrimSpace(ev["headers"]), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok {
			args = append(args, "-header", strings.TrimSpace(name)+"="+strings.TrimSpace(value))
		}
	}
	var want, stderr bytes.Buffer
	if code := run(args, &want, &stderr); code != 0 {
		t.Fatalf("bridge %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	if got != want.String() {
		t.Errorf("the playground says\n%s\nbridge render -explain says\n%s", got, want.String())
	}

	// The dead letter: open it, select it, replay it, confirm.
	b.do("dead letters", chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.ID("dead-letters")))
	b.screenshot("dead-letters")
	b.do("open one", chromedp.Click(chromedp.CSS(`#dead-letters td a`)), chromedp.WaitVisible(chromedp.ID("request")))
	if s := b.text("#request"); !strings.Contains(s, "Event 1 for u-1") {
		t.Errorf("the dead letter's request: %q", s)
	}
	b.screenshot("dead-letter")
	b.do("select and replay", chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.ID("dead-letters")),
		chromedp.Click(chromedp.CSS(`input[name="id"]`)), chromedp.Click(chromedp.ID("replay")),
		chromedp.WaitVisible(chromedp.ID("confirm-button")))
	if s := b.text("main h1"); s != "Replay 1 dead letter?" {
		t.Errorf("confirmation: %q", s)
	}
	b.screenshot("replay-confirm")
	b.do("confirm", chromedp.Click(chromedp.ID("confirm-button")), chromedp.WaitVisible(chromedp.CSS(".notice")))
	if s := b.text(".notice"); s != "replayed 1 dead letter" {
		t.Errorf("after the replay: %q", s)
	}
	e.waitFor(30*time.Second, func() string { return "the replayed message at the fake Intercom" }, func() bool {
		for _, m := range e.ic.Messages() {
			if strings.Contains(m.Body, "Event 1 for u-1") {
				return true
			}
		}
		return false
	})
	b.do("dead letters after", chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.ID("no-dead-letters")))
	b.screenshot("dead-letters-after-replay")
	b.do("status after", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.ID("ready")))
	b.screenshot("status-after")
	t.Logf("screenshots in %s", b.dir)
}

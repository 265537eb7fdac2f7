package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
	"github.com/intercom-bridge/bridge/rules"
)

// reloadRuleFile is a valid rule file with one rule; body tells versions apart.
func reloadRuleFile(name, body string) string {
	return fmt.Sprintf("rules:\n  - name: %s\n    message: {type: inapp, from: \"1\", to: {type: user, id: x}, body: %s}\n", name, body)
}

// reloadLogs is a log sink safe for the watcher's goroutine and the test.
type reloadLogs struct{ syncbuf.Buffer }

// lines returns the logged JSON lines.
func (s *reloadLogs) lines(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// reloadHarness is a reloader over real files with the real loader; apply
// stores the set and counts the calls.
type reloadHarness struct {
	r    *reloader
	m    *serviceMetrics
	logs *reloadLogs
	load func() (*rules.Set, error)

	mu      sync.Mutex
	applied int
	set     *rules.Set
}

func newReloadHarness(t *testing.T, paths ...string) *reloadHarness {
	t.Helper()
	h := &reloadHarness{m: newServiceMetrics(prometheus.NewRegistry()), logs: &reloadLogs{}}
	h.load = func() (*rules.Set, error) { return rules.Load(paths, rules.Options{DefaultAdminID: "1"}) }
	apply := func(s *rules.Set) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.applied++
		h.set = s
	}
	h.r = newReloader(h.load, apply, zerolog.New(h.logs).Level(zerolog.DebugLevel), h.m)
	if err := h.r.Reload(); err != nil {
		t.Fatalf("first load: %v", err)
	}
	if h.appliedCount() != 1 {
		t.Fatalf("first load: applied %d times", h.appliedCount())
	}
	return h
}

func (h *reloadHarness) appliedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.applied
}

func (h *reloadHarness) running() *rules.Set {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.set
}

// waitApplied waits until the running set is the one on disk now.
func (h *reloadHarness) waitApplied(t *testing.T, what string) {
	t.Helper()
	want, err := h.load()
	if err != nil {
		t.Fatalf("the files on disk do not load: %v", err)
	}
	poll.For(t, 5*time.Second, what, func() bool { return h.running().Hash() == want.Hash() })
}

// has reports whether the running set has a rule named name.
func (h *reloadHarness) has(name string) bool {
	for _, r := range h.running().Rules() {
		if r.Name == name {
			return true
		}
	}
	return false
}

// watch runs Watch until the test ends and waits until it is set up.
func (h *reloadHarness) watch(t *testing.T, paths []string, reload <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Watch(ctx, paths, 50*time.Millisecond, reload) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	select {
	case <-h.r.ready:
	case err := <-done:
		t.Fatalf("Watch returned early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not set up its watches")
	}
}

func writeRuleFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReloadOnWrite(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)
	h.watch(t, []string{dir}, nil)

	writeRuleFile(t, file, reloadRuleFile("a", "changed"))
	h.waitApplied(t, "the edit to be applied")
	if got := testutil.ToFloat64(h.m.RulesReloadSuccess); got != 1 {
		t.Errorf("reload success gauge = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.m.RulesHash.WithLabelValues(h.running().Hash())); got != 1 {
		t.Errorf("hash gauge for the running set = %v, want 1", got)
	}
}

func TestReloadOnAtomicRename(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	// A file path: watched through its directory, so the rename keeps working.
	h := newReloadHarness(t, file)
	h.watch(t, []string{file}, nil)

	for i, body := range []string{"renamed", "renamed-again"} {
		tmp := file + ".tmp"
		writeRuleFile(t, tmp, reloadRuleFile("a", body))
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
		h.waitApplied(t, fmt.Sprintf("save %d by rename to be applied", i+1))
	}
}

func TestReloadOnNewFileInSubdirectory(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, filepath.Join(dir, "rules.yaml"), reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)
	h.watch(t, []string{dir}, nil)

	// A new subdirectory, then a new file in it: the watch must follow.
	sub := filepath.Join(dir, "team", "billing")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeRuleFile(t, filepath.Join(sub, "more.yaml"), reloadRuleFile("b", "from-sub"))
	h.waitApplied(t, "the new file to be loaded")
	if !h.has("b") {
		t.Fatal("the rule in the new file is not running")
	}

	// An edit inside the new subdirectory, once things are quiet.
	writeRuleFile(t, filepath.Join(sub, "more.yaml"), reloadRuleFile("b", "edited"))
	h.waitApplied(t, "the edit in the subdirectory to be applied")
	if got := h.running().Len(); got != 2 {
		t.Errorf("running rules = %d, want 2", got)
	}
}

func TestReloadOnRequest(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)
	reload := make(chan struct{}, 1)
	h.watch(t, nil, reload) // no file watch: only a request (SIGHUP, in main) can reload

	writeRuleFile(t, file, reloadRuleFile("a", "after-hup"))
	reload <- struct{}{}
	h.waitApplied(t, "SIGHUP to reload")
}

func TestReloadBrokenSaveKeepsRunningRules(t *testing.T) {
	for _, tc := range []struct {
		name, content, pos string // pos: line:col of the error
	}{
		{"yaml syntax", "rules:\n  - name: a\n    message: {type: inapp, from: \"1\"\n", ""},
		{"unknown field", "rules:\n  - name: a\n    colour: red\n    message: {type: inapp, from: \"1\", to: {type: user, id: x}, body: hi}\n", "3:5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "rules.yaml")
			writeRuleFile(t, file, reloadRuleFile("a", "good"))
			h := newReloadHarness(t, dir)
			good := h.running()
			h.watch(t, []string{dir}, nil)

			writeRuleFile(t, file, tc.content)
			poll.For(t, 5*time.Second, "the broken save to be reported", func() bool { return h.r.LastError() != nil })
			if h.running() != good || h.appliedCount() != 1 {
				t.Fatalf("a broken save replaced the running rules (applied %d times)", h.appliedCount())
			}
			var list rules.ErrorList
			if !errors.As(h.r.LastError(), &list) || len(list) == 0 {
				t.Fatalf("LastError = %v, want a rules.ErrorList", h.r.LastError())
			}
			for _, e := range list {
				if e.Pos.File != file || e.Pos.Line < 1 || e.Pos.Col < 1 {
					t.Errorf("error %q: position %+v, want %s:line:col", e, e.Pos, file)
				}
				if want := fmt.Sprintf("%s:%d:%d: ", file, e.Pos.Line, e.Pos.Col); !strings.HasPrefix(e.Error(), want) {
					t.Errorf("error %q does not start with %q", e, want)
				}
			}
			if tc.pos != "" && !strings.HasPrefix(list[0].Error(), file+":"+tc.pos+": ") {
				t.Errorf("error %q, want it at %s:%s", list[0], file, tc.pos)
			}
			if lines := errorLines(h.r.LastError()); len(lines) != len(list) || lines[0] != list[0].Error() {
				t.Errorf("errorLines = %q", lines)
			}
			if got := testutil.ToFloat64(h.m.RulesReloadErrors); got < 1 {
				t.Errorf("reload errors counter = %v, want >= 1", got)
			}
			if got := testutil.ToFloat64(h.m.RulesReloadSuccess); got != 0 {
				t.Errorf("reload success gauge = %v, want 0", got)
			}
			// One log line per error, with its position and the count.
			var logged int
			for _, l := range h.logs.lines(t) {
				if l["file"] == file && l["level"] == "error" {
					logged++
					if l["errors"] != float64(len(list)) || !strings.Contains(l["message"].(string), file+":") {
						t.Errorf("error log line %v", l)
					}
				}
			}
			if logged < len(list) {
				t.Errorf("%d error log lines, want at least %d", logged, len(list))
			}

			// The next good save applies and clears the error.
			writeRuleFile(t, file, reloadRuleFile("a", "fixed"))
			h.waitApplied(t, "the fixed save to be applied")
			poll.For(t, 5*time.Second, "LastError to clear", func() bool { return h.r.LastError() == nil })
			if got := testutil.ToFloat64(h.m.RulesReloadSuccess); got != 1 {
				t.Errorf("reload success gauge = %v, want 1", got)
			}
		})
	}
}

func TestReloadBrokenThenReverted(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)

	writeRuleFile(t, file, "rules: [")
	if err := h.r.Reload(); err == nil || h.r.LastError() == nil {
		t.Fatalf("Reload of a broken file: %v", err)
	}
	// Back to the running content: valid again, nothing to apply.
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	if err := h.r.Reload(); err != nil || h.r.LastError() != nil {
		t.Fatalf("Reload after the revert: %v (LastError %v)", err, h.r.LastError())
	}
	if h.appliedCount() != 1 {
		t.Errorf("applied %d times, want 1", h.appliedCount())
	}
	if got := testutil.ToFloat64(h.m.RulesReloadSuccess); got != 1 {
		t.Errorf("reload success gauge = %v, want 1", got)
	}
}

func TestReloadDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)
	h.watch(t, []string{dir}, nil)

	const writes = 20
	for i := range writes {
		writeRuleFile(t, file, reloadRuleFile("a", fmt.Sprintf("burst-%d", i)))
	}
	h.waitApplied(t, "the last write to be applied")
	n := h.appliedCount() - 1 // the harness applied once before the burst
	if n < 1 || n >= writes {
		t.Errorf("%d writes caused %d applies, want at least 1 and fewer than %d", writes, n, writes)
	}
	t.Logf("%d writes, %d applies, %d reloads", writes, n, h.r.attempts.Load())
}

func TestReloadUnchangedContentDoesNotApply(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	writeRuleFile(t, file, reloadRuleFile("a", "hi"))
	h := newReloadHarness(t, dir)
	h.watch(t, []string{dir}, nil)

	before := h.r.attempts.Load()
	writeRuleFile(t, file, reloadRuleFile("a", "hi")) // same bytes
	poll.For(t, 5*time.Second, "a reload to run", func() bool { return h.r.attempts.Load() > before })
	if err := h.r.Reload(); err != nil { // and once more, directly
		t.Fatal(err)
	}
	if h.appliedCount() != 1 {
		t.Errorf("unchanged content applied: %d applies, want 1", h.appliedCount())
	}
	var unchanged bool
	for _, l := range h.logs.lines(t) {
		if l["level"] == "info" && l["message"] == "rules unchanged (1 rule)" {
			unchanged = true
		}
	}
	if !unchanged {
		t.Errorf("no info line \"rules unchanged (1 rule)\" for the unchanged reload:\n%v", h.logs.lines(t))
	}
}

func TestReloadSetCurrentMakesFirstReloadANoop(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, filepath.Join(dir, "rules.yaml"), reloadRuleFile("a", "hi"))
	load := func() (*rules.Set, error) { return rules.Load([]string{dir}, rules.Options{DefaultAdminID: "1"}) }
	set, err := load()
	if err != nil {
		t.Fatal(err)
	}
	var applied int
	r := newReloader(load, func(*rules.Set) { applied++ }, zerolog.Nop(), newServiceMetrics(prometheus.NewRegistry()))
	r.SetCurrent(set)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if applied != 0 {
		t.Errorf("applied %d times, want 0", applied)
	}
}

// TestReloadOnKubernetesConfigMapUpdate mounts rules the way a ConfigMap
// volume does (rules.yaml -> ..data/rules.yaml, ..data -> ..<timestamp>)
// and updates them the way the kubelet does: a new timestamped directory,
// then ..data swapped to it by a rename.
func TestReloadOnKubernetesConfigMapUpdate(t *testing.T) {
	dir := t.TempDir()
	mount := func(version, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, version), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, version, "rules.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	mount("..v1", reloadRuleFile("one", "hi"))
	if err := os.Symlink(filepath.Join("..data", "rules.yaml"), filepath.Join(dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
	h := newReloadHarness(t, dir)
	h.watch(t, []string{dir}, nil)
	if !h.has("one") {
		t.Fatal("the first version is not loaded")
	}
	mount("..v2", reloadRuleFile("two", "hi"))
	h.waitApplied(t, "the ConfigMap update")
	if !h.has("two") || h.has("one") {
		t.Errorf("running rules: %v", h.running().Rules())
	}
}

package bridge

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/rules"
)

// defaultReloadDebounce is used when Watch is given no debounce.
const defaultReloadDebounce = 200 * time.Millisecond

// reloader reloads the rule set: on demand (Reload), when a rule file
// changes, and on SIGHUP (Watch). A reload loads the whole set; only a set
// that loaded without any error replaces the running one, in one atomic
// step done by apply, so an event being matched always sees one whole set.
// A broken edit leaves the running rules in place; its errors are logged,
// counted and kept for /readyz (LastError).
type reloader struct {
	load  func() (*rules.Set, error)
	apply func(*rules.Set)
	log   zerolog.Logger
	m     *serviceMetrics

	mu      sync.Mutex // serialises reloads; guards current
	current string     // hash of the running set; "" before the first

	errMu   sync.Mutex // separate from mu: /readyz must not wait for a load
	lastErr error

	attempts  atomic.Int64  // reloads tried, for tests and debugging
	ready     chan struct{} // closed once Watch has set up its watches
	readyOnce sync.Once
}

// newReloader returns a reloader that loads sets with load and installs
// them with apply, which must store the set atomically (for example
// Service.rules.Store). m and log report reloads.
func newReloader(load func() (*rules.Set, error), apply func(*rules.Set), log zerolog.Logger, m *serviceMetrics) *reloader {
	return &reloader{load: load, apply: apply, log: log, m: m, ready: make(chan struct{})}
}

// SetCurrent records set as the running set without applying it (the
// caller already did, at start), so that reloading the same content is a
// no-op.
func (r *reloader) SetCurrent(set *rules.Set) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current = set.Hash()
}

// Reload loads the whole rule set and, when it loaded without error and its
// content differs from the running set, applies it. On error the running
// rules stay; the error is logged (one line per problem, at file:line:col),
// counted, and returned by LastError until a reload succeeds.
func (r *reloader) Reload() error { return r.reload("manual") }

// LastError is nil when the last reload succeeded, else its error: a
// rules.ErrorList for problems in the rule files.
func (r *reloader) LastError() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.lastErr
}

func (r *reloader) setLastError(err error) (prev error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	prev, r.lastErr = r.lastErr, err
	return prev
}

func (r *reloader) reload(trigger string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts.Add(1)
	start := time.Now()
	set, err := r.load()
	if err == nil && set == nil {
		err = errors.New("rules: the loader returned no rule set")
	}
	if err != nil {
		r.fail(trigger, err)
		return err
	}
	hash := set.Hash()
	if hash == r.current {
		r.log.Info().Str("trigger", trigger).Str("hash", shortHash(hash)).Msg(unchanged(set.Len()))
		if r.setLastError(nil) != nil {
			// A broken edit was reverted: valid again, nothing to swap.
			r.m.RulesReloadSuccess.Set(1)
			r.log.Info().Str("trigger", trigger).Str("hash", shortHash(hash)).Msg("rule files valid again; the running rules are unchanged")
		}
		return nil
	}
	r.apply(set)
	prev := r.current
	r.current = hash
	r.setLastError(nil)
	r.m.SetRules(set.Len(), hash)
	r.log.Info().Str("trigger", trigger).Int("rules", set.Len()).Str("hash", shortHash(hash)).
		Str("previous_hash", shortHash(prev)).Dur("took_ms", time.Since(start)).Msg("rules reloaded")
	return nil
}

// fail records a failed reload: the running rules stay.
func (r *reloader) fail(trigger string, err error) {
	r.setLastError(err)
	r.m.RulesReloadErrors.Inc()
	r.m.RulesReloadSuccess.Set(0)
	var list rules.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		for i, e := range list {
			r.log.Error().Str("trigger", trigger).Str("file", e.Pos.File).Int("line", e.Pos.Line).Int("col", e.Pos.Col).
				Int("n", i+1).Int("errors", len(list)).Msg("rule reload: " + e.Error())
		}
	} else {
		r.log.Error().Str("trigger", trigger).Int("n", 1).Int("errors", 1).Msg("rule reload: " + err.Error())
	}
	r.log.Warn().Str("trigger", trigger).Int("errors", max(len(list), 1)).Str("running_hash", shortHash(r.current)).
		Msg("rule reload failed; the running rules stay")
}

// errorLines splits a reload error into one line per problem
// ("file:line:col: message"), for /readyz; nil for nil.
func errorLines(err error) []string {
	if err == nil {
		return nil
	}
	var list rules.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// Watch reloads when the rule files under paths change and when a value
// arrives on reload (at once), until ctx is done; then it returns nil.
//
// It watches directories, never files, because editors save by renaming a
// new file over the old one and a watch on the file would be lost: a
// directory path is watched with all its subdirectories (new ones are
// added as they appear; hidden ones are skipped, as rules.Discover skips
// them), a file path through its parent directory, with events filtered to
// that file. In a watched tree only *.yaml and *.yml files count (not
// *.test.yaml, nor editor temp files: names starting with '.' or '#', or
// ending with '~', '.swp' or '.tmp'), plus Kubernetes' "..data" symlink,
// which is how a mounted ConfigMap changes. A burst of events within
// debounce (200 ms when 0) causes one reload, at most 10 debounces after
// the first event of the burst. After the watches are set up, Watch reloads
// once, to catch edits made since the caller's first load.
//
// With no paths, Watch only serves reload. An error is returned at once,
// and nothing is served, when the watches cannot be set up; the caller may
// then call Watch(ctx, nil, 0, reload) to keep reloads on request working.
func (r *reloader) Watch(ctx context.Context, paths []string, debounce time.Duration, reload <-chan struct{}) error {
	if debounce <= 0 {
		debounce = defaultReloadDebounce
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
		fw     *fileWatch
	)
	if len(paths) > 0 {
		var err error
		if fw, err = newFileWatch(paths, r.log); err != nil {
			return err
		}
		defer fw.w.Close()
		events, errs = fw.w.Events, fw.w.Errors
		r.reload("watch-start")
	}
	r.readyOnce.Do(func() { close(r.ready) })

	var (
		timer  *time.Timer
		timerC <-chan time.Time
		first  time.Time // first event of the pending burst
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	schedule := func() {
		now := time.Now()
		if timerC == nil {
			first = now
		}
		wait := debounce
		if limit := first.Add(10 * debounce).Sub(now); wait > limit {
			wait = max(limit, 0)
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		timerC = timer.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-reload:
			if !ok {
				reload = nil
				continue
			}
			r.log.Info().Msg("reload asked for (SIGHUP): reloading the rules")
			r.reload("request")
		case <-timerC:
			timerC = nil
			r.reload("watch")
		case ev, ok := <-events:
			if !ok {
				return errors.New("rules: the file watcher stopped")
			}
			if fw.relevant(ev) {
				r.log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("rule file changed")
				schedule()
			}
		case err, ok := <-errs:
			if !ok {
				return errors.New("rules: the file watcher stopped")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				r.log.Warn().Err(err).Msg("rules: file events were lost; reloading")
				schedule()
				continue
			}
			r.log.Warn().Err(err).Msg("rules: file watcher error")
		}
	}
}

// fileWatch is the fsnotify side of Watch; only Watch's goroutine uses it.
type fileWatch struct {
	w   *fsnotify.Watcher
	log zerolog.Logger
	// dirs are the watched directories (absolute); true for those in a
	// watched tree, false for those watched only for file paths in them.
	dirs  map[string]bool
	files map[string]bool // file paths given to Watch (absolute)
}

func newFileWatch(paths []string, log zerolog.Logger) (_ *fileWatch, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("rules: watch: %w", err)
	}
	fw := &fileWatch{w: w, log: log, dirs: map[string]bool{}, files: map[string]bool{}}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("rules: watch %s: %w", p, err)
		}
		info, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("rules: watch: %w", err)
		}
		if info.IsDir() {
			if err := fw.addTree(abs, true); err != nil {
				return nil, err
			}
			continue
		}
		fw.files[abs] = true
		dir := filepath.Dir(abs)
		if _, ok := fw.dirs[dir]; ok {
			continue
		}
		if err := w.Add(dir); err != nil {
			return nil, fmt.Errorf("rules: watch %s: %w", dir, err)
		}
		fw.dirs[dir] = false
	}
	return fw, nil
}

// addTree watches root and its subdirectories, skipping hidden ones. An
// error on root is returned when strict; anything else is logged.
func (fw *fileWatch) addTree(root string, strict bool) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && strict {
				return fmt.Errorf("rules: watch: %w", err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				fw.log.Warn().Err(err).Str("dir", p).Msg("rules: cannot watch a directory")
			}
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && hiddenName(d.Name()) {
			return filepath.SkipDir
		}
		if fw.dirs[p] {
			return nil
		}
		if err := fw.w.Add(p); err != nil {
			if p == root && strict {
				return fmt.Errorf("rules: watch %s: %w", p, err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				fw.log.Warn().Err(err).Str("dir", p).Msg("rules: cannot watch a directory")
			}
			return filepath.SkipDir
		}
		fw.dirs[p] = true
		return nil
	})
}

// dropTree forgets dir and the directories under it (removed or moved
// away; a directory moved within the tree comes back as a Create).
func (fw *fileWatch) dropTree(dir string) {
	prefix := dir + string(filepath.Separator)
	for d, tree := range fw.dirs {
		if tree && (d == dir || strings.HasPrefix(d, prefix)) {
			fw.w.Remove(d) // already gone with the directory, mostly
			delete(fw.dirs, d)
		}
	}
}

// relevant reports whether ev may change the rule set, and keeps the
// directory watches up to date.
func (fw *fileWatch) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod || ev.Op == 0 {
		return false
	}
	name := filepath.Clean(ev.Name)
	if fw.files[name] {
		return true
	}
	if !fw.dirs[filepath.Dir(name)] {
		return false // a sibling of a watched file
	}
	base := filepath.Base(name)
	if base == "..data" { // a Kubernetes ConfigMap or Secret volume was updated
		return true
	}
	if ignoredRuleFileName(base) {
		return false
	}
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if fw.dirs[name] {
			fw.dropTree(name)
			return true
		}
	}
	if ev.Has(fsnotify.Create) {
		if info, err := os.Lstat(name); err == nil && info.IsDir() {
			fw.addTree(name, false)
			return true // files may be in it already
		}
	}
	return isRuleFileName(base)
}

// isRuleFileName reports a name that rules.Load reads from a directory.
func isRuleFileName(base string) bool {
	return (strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml")) && !rules.IsTestFile(base)
}

// ignoredRuleFileName reports the names editors and tools leave beside the
// files they save.
func ignoredRuleFileName(base string) bool {
	return hiddenName(base) || strings.HasSuffix(base, "~") ||
		strings.HasSuffix(base, ".swp") || strings.HasSuffix(base, ".tmp")
}

// hiddenName reports a name rules.Discover skips.
func hiddenName(base string) bool {
	return strings.HasPrefix(base, ".") || strings.HasPrefix(base, "#")
}

// unchanged is the line for a reload that found the rules as they were.
func unchanged(n int) string {
	if n == 1 {
		return "rules unchanged (1 rule)"
	}
	return fmt.Sprintf("rules unchanged (%d rules)", n)
}

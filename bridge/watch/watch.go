// Package watch tells when the rule files under some paths change, so that
// the service can load them again.
//
// It watches directories, never files, because editors save by renaming a
// new file over the old one and a watch on the file would be lost: a
// directory path is watched with all its subdirectories (new ones are
// added as they appear; hidden ones are skipped, as rules.Discover skips
// them), a file path through its parent directory, with events filtered to
// that file. In a watched tree only *.yaml and *.yml files count (not
// *.test.yaml, nor editor temp files: names starting with '.' or '#', or
// ending with '~', '.swp' or '.tmp'), plus Kubernetes' "..data" symlink,
// which is how a mounted ConfigMap changes.
//
// It owns the fsnotify side and the debouncing; it imports rules (which
// names are rule files) and nothing else of the bridge's.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/rules"
)

// DefaultDebounce is used when Start is given no debounce.
const DefaultDebounce = 200 * time.Millisecond

// Start watches paths until ctx is done. The channel it returns receives
// one value per burst of changes: events within debounce of each other
// (DefaultDebounce when 0) count once, and a burst is reported at most 10
// debounces after its first event. The channel is closed when ctx is done
// or when the watcher stops. An error is returned at once, and nothing is
// watched, when the watches cannot be set up.
func Start(ctx context.Context, paths []string, debounce time.Duration, log zerolog.Logger) (<-chan struct{}, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	fw, err := newFileWatch(paths, log)
	if err != nil {
		return nil, err
	}
	changes := make(chan struct{}, 1)
	go func() {
		defer close(changes)
		defer fw.w.Close()
		fw.run(ctx, debounce, changes)
	}()
	return changes, nil
}

// run reports bursts of relevant events on changes until ctx is done or
// the watcher stops.
func (fw *fileWatch) run(ctx context.Context, debounce time.Duration, changes chan<- struct{}) {
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
			return
		case <-timerC:
			timerC = nil
			select {
			case changes <- struct{}{}:
			default: // one is waiting already: it covers this burst too
			}
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if fw.relevant(ev) {
				fw.log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("rule file changed")
				schedule()
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				fw.log.Warn().Err(err).Msg("rules: file events were lost; reloading")
				schedule()
				continue
			}
			fw.log.Warn().Err(err).Msg("rules: file watcher error")
		}
	}
}

// fileWatch is the fsnotify side; only its goroutine uses it.
type fileWatch struct {
	w   *fsnotify.Watcher
	log zerolog.Logger
	// dirs are the watched directories (absolute); true for those in a
	// watched tree, false for those watched only for file paths in them.
	dirs  map[string]bool
	files map[string]bool // file paths given to Start (absolute)
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

package bridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/watch"
	"github.com/intercom-bridge/bridge/rules"
)

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
	// onRequest, when set, runs on each reload asked for (SIGHUP) before
	// the rules reload: the service re-reads its webhook secret files.
	onRequest func()

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
// Which changes count, and how a burst of them becomes one reload, is
// package watch's business. After the watches are set up, Watch reloads
// once, to catch edits made since the caller's first load.
//
// With no paths, Watch only serves reload. An error is returned at once,
// and nothing is served, when the watches cannot be set up; the caller may
// then call Watch(ctx, nil, 0, reload) to keep reloads on request working.
func (r *reloader) Watch(ctx context.Context, paths []string, debounce time.Duration, reload <-chan struct{}) error {
	var changes <-chan struct{}
	if len(paths) > 0 {
		var err error
		if changes, err = watch.Start(ctx, paths, debounce, r.log); err != nil {
			return err
		}
		r.reload("watch-start")
	}
	r.readyOnce.Do(func() { close(r.ready) })
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-reload:
			if !ok {
				reload = nil
				continue
			}
			r.log.Info().Msg("reload asked for (SIGHUP): reloading the secret files and the rules")
			if r.onRequest != nil {
				r.onRequest()
			}
			r.reload("request")
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("rules: the file watcher stopped")
			}
			r.reload("watch")
		}
	}
}

// unchanged is the line for a reload that found the rules as they were.
func unchanged(n int) string {
	if n == 1 {
		return "rules unchanged (1 rule)"
	}
	return fmt.Sprintf("rules unchanged (%d rules)", n)
}

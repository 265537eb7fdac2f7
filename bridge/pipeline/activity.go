package pipeline

import (
	"sync"
	"time"
)

// Activity is what each rule matched since the process started: how many
// events, and when it last did. Stage 1 records it; the admin listener's
// /rules shows it. Each replica knows its own matches only.
type Activity struct {
	mu    sync.Mutex
	rules map[string]RuleActivity
}

// RuleActivity is one rule's matches in this process.
type RuleActivity struct {
	Matches   uint64
	LastMatch time.Time // zero: none yet
}

// NewActivity returns an empty record.
func NewActivity() *Activity { return &Activity{rules: map[string]RuleActivity{}} }

// matched records a match of rule at time at.
func (a *Activity) matched(rule string, at time.Time) {
	if a == nil {
		return
	}
	a.mu.Lock()
	r := a.rules[rule]
	r.Matches++
	r.LastMatch = at
	a.rules[rule] = r
	a.mu.Unlock()
}

// Of returns rule's activity.
func (a *Activity) Of(rule string) RuleActivity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rules[rule]
}

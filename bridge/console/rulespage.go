package console

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/rules"
)

// ruleRow is one rule of the rules page.
type ruleRow struct {
	Name, Pos, Mode string
	Hour            RuleCounts
	Matches         uint64 // since the process started
	LastMatch       time.Time
	Tests           []testRow
}

type testRow struct {
	Name, Pos string
	Passed    bool
	Failures  []string
}

type rulesData struct {
	Hash      string
	Rules     []ruleRow
	Unnamed   []testRow // cases that name no rule (the ones that expect nothing)
	TestError string    // test files that do not parse, or none found
	// TestsRunning: the tests of this rule set have not finished yet.
	TestsRunning bool
	Passed       int
	Failed       int
}

func (c *Console) rulesPage(w http.ResponseWriter, r *http.Request) {
	set := c.opts.Rules()
	res, ready := c.tests.results(set, c.runTests)
	d := rulesData{Hash: set.Hash(), TestError: res.err, Unnamed: res.unnamed, TestsRunning: !ready}
	now := c.opts.Sample()
	for _, rule := range set.Rules() {
		a := c.opts.Activity(rule.Name)
		row := ruleRow{Name: rule.Name, Pos: rule.Pos.String(), Mode: rule.Mode, Hour: c.opts.History.LastHour(rule.Name, now),
			Matches: a.Matches, LastMatch: a.LastMatch, Tests: res.byRule[rule.Name]}
		d.Rules = append(d.Rules, row)
	}
	d.Passed, d.Failed = res.passed, res.failed
	c.render(w, r, "rules", d)
}

// testResults are the rule tests' results for one rule set.
type testResults struct {
	byRule         map[string][]testRow
	unnamed        []testRow
	err            string
	passed, failed int
}

// testCache keeps the results of the last rule set the tests ran for.
// The tests run once per rule set, when the rules page is first opened
// after a (re)load, in the background: a page waits for them up to
// testWait, and past it says they are running, so that a thousand rules'
// tests do not hold the page.
type testCache struct {
	mu   sync.Mutex
	hash string
	done chan struct{} // closed when res is the results for hash
	res  testResults
}

// testWait is how long the rules page waits for the tests.
const testWait = 20 * time.Millisecond

// results returns the results for set, and false while they are not in
// within testWait.
func (tc *testCache) results(set *rules.Set, run func(*rules.Set) testResults) (testResults, bool) {
	tc.mu.Lock()
	if tc.hash != set.Hash() || tc.done == nil {
		hash, done := set.Hash(), make(chan struct{})
		tc.hash, tc.done = hash, done
		go func() {
			res := run(set)
			tc.mu.Lock()
			if tc.hash == hash {
				tc.res = res
			}
			tc.mu.Unlock()
			close(done)
		}()
	}
	done, hash := tc.done, tc.hash
	tc.mu.Unlock()
	select {
	case <-done:
	case <-time.After(testWait):
		return testResults{}, false
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.res, tc.hash == hash
}

// runTests runs the *.test.yaml files beside the rules against set, as
// `bridge test -config` does, and files each case under the rules it
// expects something of.
func (c *Console) runTests(set *rules.Set) testResults {
	res := testResults{byRule: map[string][]testRow{}}
	_, files, err := rules.Discover(testDirs(c.opts.RulePaths))
	if err == nil {
		var tests []*rules.TestFile
		tests, err = rules.LoadTests(files)
		for _, tf := range tests {
			request := render.TestRequest(c.opts.IntercomVersion, tf)
			for _, tcase := range tf.Cases {
				row := testRow{Name: tcase.Name, Pos: tcase.Pos.String()}
				if perr := c.opts.Prepare(&tcase.Event); perr != nil {
					row.Failures = []string{perr.Error()}
				} else {
					row.Failures = tcase.Run(set, request).Failures
				}
				row.Passed = len(row.Failures) == 0
				if row.Passed {
					res.passed++
				} else {
					res.failed++
				}
				named := namedRules(tcase)
				if len(named) == 0 {
					res.unnamed = append(res.unnamed, row)
				}
				for _, n := range named {
					res.byRule[n] = append(res.byRule[n], row)
				}
			}
		}
	}
	if err != nil {
		res.err = err.Error()
	}
	return res
}

// namedRules are the rules a case (and its later events) expects a
// message, an error or a cancel of.
func namedRules(tc *rules.TestCase) []string {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, e := range tc.Expect {
		add(e.Rule)
	}
	for _, e := range tc.Errors {
		add(e.Rule)
	}
	for _, e := range tc.Cancels {
		add(e.Rule)
	}
	for _, later := range tc.Then {
		for _, n := range namedRules(later) {
			add(n)
		}
	}
	return out
}

// testDirs are where the tests of rules at paths are: a directory named,
// or the directory of a rule file named (its tests sit beside it).
func testDirs(paths []string) []string {
	var out []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			p = filepath.Dir(p)
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

package rules

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// TestFile is a parsed *.test.yaml file: cases that feed an event to the
// rule set and say which messages must come out.
type TestFile struct {
	Name  string
	Cases []*TestCase
	// Contacts stand in for Intercom's contacts when the cases' requests
	// are checked: recipients named by user_id or email are looked up
	// among them.
	Contacts []TestContact
}

// TestContact is a contact of a test file's contacts: block.
type TestContact struct {
	ID, Role, ExternalID, Email string
}

// TestCase is one event and what the rules must produce for it.
type TestCase struct {
	Name   string
	Pos    Pos
	Event  Event
	Expect []Expectation // no entries: no message at all
	Errors []ExpectedError
	// Cancels are the waiting messages the event cancels; one it cancels
	// that is not listed fails the case.
	Cancels []Cancel
	// Then are later events, in time order, each with its own time and
	// expectations. They see what the earlier events left waiting: a
	// message whose time has come went out, and is no longer there to
	// cancel.
	Then []*TestCase
}

// Expectation describes one message. Rule is required; every other field is
// checked only when the test gives it.
type Expectation struct {
	Rule         string
	Pos          Pos
	Type         *string
	Template     *string
	From         *string
	To, Cc, Bcc  []Recipient // nil: not checked
	Subject      *string
	Body         *string
	BodyContains []string
	Dedupe       *string
	Throttle     *Throttle
	Schedule     *ExpectedSchedule // nil: not checked
	// Request is the body of POST /messages as Intercom gets it (YAML or
	// JSON), checked when the runner is given a way to build it.
	Request any
}

// ExpectedSchedule is when an expected message waits until, and its key;
// each is checked when given.
type ExpectedSchedule struct {
	At  *time.Time // compared as instants
	Key *string
}

// ExpectedError is a rule that must fail for the event, with an error that
// contains the given text.
type ExpectedError struct {
	Rule     string
	Contains string
}

// testEpoch is the time a test event carries unless the case sets one, so
// that templates that print the time render the same on every run.
var testEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// LoadTests reads and parses rule test files; the error, if any, lists
// every problem of every file.
func LoadTests(names []string) ([]*TestFile, error) {
	var out []*TestFile
	var errs ErrorList
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		tf, err := ParseTests(File{Name: name, Data: data})
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) {
				return nil, err
			}
			errs = append(errs, list...)
			continue
		}
		out = append(out, tf)
	}
	return out, errs.Err()
}

// ParseTests parses one rule test file. The error, if any, is an ErrorList.
func ParseTests(f File) (*TestFile, error) {
	var errs ErrorList
	tf := &TestFile{Name: f.Name}
	doc, err := parseYAML(f.Data)
	if err != nil {
		errs = append(errs, YAMLError(f, err))
		return nil, errs
	}
	if doc == nil {
		return tf, nil
	}
	d := &decoder{src: newSource(f.Name, f.Data), errs: &errs}
	d.fields(doc, "the test file", map[string]func(*yaml.Node){
		"contacts": func(n *yaml.Node) { tf.Contacts = d.testContacts(n) },
		"tests": func(n *yaml.Node) {
			if n.Kind != yaml.SequenceNode {
				d.errorf(n, "tests must be a list, got %s", kindName(n))
				return
			}
			for i, item := range n.Content {
				if tc := d.testCase(item, i+1, ""); tc != nil {
					tf.Cases = append(tf.Cases, tc)
				}
			}
		},
	})
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	return tf, nil
}

// testContacts decodes contacts: [{id, role, external_id, email}, ...].
func (d *decoder) testContacts(n *yaml.Node) []TestContact {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "contacts must be a list, got %s", kindName(n))
		return nil
	}
	var out []TestContact
	for i, item := range n.Content {
		var c TestContact
		what := fmt.Sprintf("contacts[%d]", i)
		d.fields(item, what, map[string]func(*yaml.Node){
			"id":          func(v *yaml.Node) { c.ID, _ = d.str(v, what+".id") },
			"role":        func(v *yaml.Node) { c.Role, _ = d.str(v, what+".role") },
			"external_id": func(v *yaml.Node) { c.ExternalID, _ = d.str(v, what+".external_id") },
			"email":       func(v *yaml.Node) { c.Email, _ = d.str(v, what+".email") },
		})
		switch {
		case c.ID == "":
			d.errorf(item, "%s has no id (Intercom's contact id)", what)
		case c.Role != "user" && c.Role != "lead":
			d.errorf(item, "%s.role must be user or lead, got %q", what, c.Role)
		default:
			out = append(out, c)
		}
	}
	return out
}

// testCase decodes a test case, or with later set (then[0], ...) one of
// its later events, which has no name and no later events of its own but
// must have a time.
func (d *decoder) testCase(n *yaml.Node, num int, later string) *TestCase {
	n = resolve(n)
	tc := &TestCase{Pos: d.src.pos(n), Event: Event{ID: fmt.Sprintf("test-%d", num), Time: testEpoch}}
	var eventNode, expectNode, timeNode, thenNode *yaml.Node
	handlers := map[string]func(*yaml.Node){
		"source":  func(v *yaml.Node) { tc.Event.Source, _ = d.str(v, "source") },
		"subject": func(v *yaml.Node) { tc.Event.Subject, _ = d.str(v, "subject") },
		"id":      func(v *yaml.Node) { tc.Event.ID, _ = d.str(v, "id") },
		"type":    func(v *yaml.Node) { tc.Event.Type, _ = d.str(v, "type") },
		"time": func(v *yaml.Node) {
			timeNode = v
			tc.Event.Time, _ = d.rfc3339(v, "time")
		},
		"headers": func(v *yaml.Node) {
			if v = resolve(v); v.Kind != yaml.MappingNode {
				d.errorf(v, "headers must be a mapping, got %s", kindName(v))
				return
			}
			tc.Event.Headers = map[string]string{}
			for _, p := range d.pairs(v) {
				s, _ := d.str(p.value, "header "+p.key.Value)
				tc.Event.Headers[strings.ToLower(p.key.Value)] = s
			}
		},
		"event": func(v *yaml.Node) {
			eventNode = v
			var data any
			if err := resolve(v).Decode(&data); err != nil {
				d.errorf(v, "event: %v", err)
				return
			}
			tc.Event.Data = Normalize(data)
		},
		"expect": func(v *yaml.Node) {
			expectNode = v
			v = resolve(v)
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "expect must be a list of messages (expect: [] for none), got %s", kindName(v))
				return
			}
			for _, item := range v.Content {
				if e := d.expectation(item); e != nil {
					tc.Expect = append(tc.Expect, *e)
				}
			}
		},
		"errors": func(v *yaml.Node) {
			v = resolve(v)
			if v.Kind != yaml.SequenceNode {
				d.errorf(v, "errors must be a list, got %s", kindName(v))
				return
			}
			for _, item := range v.Content {
				var e ExpectedError
				d.fields(item, "an expected error", map[string]func(*yaml.Node){
					"rule":     func(v *yaml.Node) { e.Rule, _ = d.str(v, "rule") },
					"contains": func(v *yaml.Node) { e.Contains, _ = d.str(v, "contains") },
				})
				if e.Rule == "" {
					d.errorf(item, "an expected error needs a rule")
				}
				tc.Errors = append(tc.Errors, e)
			}
		},
		"cancels": func(v *yaml.Node) { tc.Cancels = d.expectedCancels(v) },
	}
	what := "a test"
	if later == "" {
		handlers["name"] = func(v *yaml.Node) { tc.Name, _ = d.str(v, "name") }
		handlers["then"] = func(v *yaml.Node) { thenNode = v }
	} else {
		what = "a later event (" + later + ")"
		tc.Event.ID = fmt.Sprintf("test-%s", later)
	}
	if !d.fields(n, what, handlers) {
		return nil
	}
	if tc.Name == "" {
		tc.Name = fmt.Sprintf("case %d", num)
	}
	switch {
	case eventNode == nil && later != "":
		d.errorf(n, "%s has no event", later)
	case eventNode == nil:
		d.errorf(n, "test %q has no event", tc.Name)
	}
	switch {
	case expectNode == nil && later != "":
		d.errorf(n, "%s has no expect (write expect: [] when no message may be sent)", later)
	case expectNode == nil:
		d.errorf(n, "test %q has no expect (write expect: [] when no message may be sent)", tc.Name)
	}
	if later != "" && timeNode == nil {
		d.errorf(n, "%s has no time: a later event needs one, after the event before it", later)
	}
	if thenNode != nil {
		tc.Then = d.laterEvents(thenNode, num, tc.Event.Time)
	}
	return tc
}

// laterEvents decodes a test case's then: its later events, in time order
// from the case's own event at start.
func (d *decoder) laterEvents(n *yaml.Node, num int, start time.Time) []*TestCase {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.errorf(n, "then must be a list of later events, got %s", kindName(n))
		return nil
	}
	var out []*TestCase
	prev := start
	for i, item := range n.Content {
		later := fmt.Sprintf("then[%d]", i)
		step := d.testCase(item, num, later)
		if step == nil {
			continue
		}
		if step.Event.Time.Before(prev) {
			d.errorf(item, "%s.time %s is before the event before it (%s)", later, step.Event.Time.Format(time.RFC3339), prev.Format(time.RFC3339))
		}
		prev = step.Event.Time
		out = append(out, step)
	}
	return out
}

// rfc3339 decodes a time written as RFC 3339.
func (d *decoder) rfc3339(n *yaml.Node, what string) (time.Time, bool) {
	s, _ := d.str(n, what)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d.errorf(n, "%s must be RFC 3339, like 2025-01-01T09:00:00Z, got %q", what, s)
		return t, false
	}
	return t, true
}

// expectedCancels decodes cancels: [{rule, key}, ...].
func (d *decoder) expectedCancels(n *yaml.Node) []Cancel {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "cancels must be a list of {rule, key} (cancels: [] for none), got %s", kindName(n))
		return nil
	}
	out := []Cancel{}
	for i, item := range n.Content {
		var c Cancel
		what := fmt.Sprintf("cancels[%d]", i)
		d.fields(item, what, map[string]func(*yaml.Node){
			"rule": func(v *yaml.Node) { c.Rule, _ = d.str(v, what+".rule") },
			"key":  func(v *yaml.Node) { c.Key, _ = d.str(v, what+".key") },
		})
		if c.Rule == "" || c.Key == "" {
			d.errorf(item, "%s needs a rule and a key", what)
			continue
		}
		out = append(out, c)
	}
	return out
}

func (d *decoder) expectation(n *yaml.Node) *Expectation {
	n = resolve(n)
	e := &Expectation{Pos: d.src.pos(n)}
	optStr := func(dst **string, what string) func(*yaml.Node) {
		return func(v *yaml.Node) {
			if s, ok := d.str(v, what); ok {
				*dst = &s
			}
		}
	}
	d.fields(n, "an expected message", map[string]func(*yaml.Node){
		"rule":     func(v *yaml.Node) { e.Rule, _ = d.str(v, "rule") },
		"type":     optStr(&e.Type, "type"),
		"template": optStr(&e.Template, "template"),
		"from":     optStr(&e.From, "from"),
		"subject":  optStr(&e.Subject, "subject"),
		"body":     optStr(&e.Body, "body"),
		"dedupe":   optStr(&e.Dedupe, "dedupe"),
		"body_contains": func(v *yaml.Node) {
			if v = resolve(v); v.Kind == yaml.ScalarNode {
				s, _ := d.str(v, "body_contains")
				e.BodyContains = []string{s}
				return
			}
			e.BodyContains, _ = d.strList(v, "body_contains")
		},
		"to": func(v *yaml.Node) { e.To = d.expectedRecipients(v, "to") },
		"request": func(v *yaml.Node) {
			if err := resolve(v).Decode(&e.Request); err != nil {
				d.errorf(v, "request: %v", err)
			}
		},
		"cc":  func(v *yaml.Node) { e.Cc = d.expectedRecipients(v, "cc") },
		"bcc": func(v *yaml.Node) { e.Bcc = d.expectedRecipients(v, "bcc") },
		"schedule": func(v *yaml.Node) {
			e.Schedule = &ExpectedSchedule{}
			d.fields(v, "schedule", map[string]func(*yaml.Node){
				"at": func(v *yaml.Node) {
					if t, ok := d.rfc3339(v, "schedule.at"); ok {
						e.Schedule.At = &t
					}
				},
				"key": optStr(&e.Schedule.Key, "schedule.key"),
			})
		},
		"throttle": func(v *yaml.Node) {
			e.Throttle = &Throttle{}
			d.fields(v, "throttle", map[string]func(*yaml.Node){
				"key": func(v *yaml.Node) { e.Throttle.Key, _ = d.str(v, "throttle.key") },
				"per": func(v *yaml.Node) {
					s, _ := d.str(v, "throttle.per")
					per, err := time.ParseDuration(s)
					if err != nil {
						d.errorf(v, "throttle.per: %q is not a duration", s)
					}
					e.Throttle.Per = per
				},
			})
		},
	})
	if e.Rule == "" {
		d.errorf(n, "an expected message needs the rule that sends it")
		return nil
	}
	return e
}

// expectedRecipients decodes the recipients an expectation names: one, or
// a list.
func (d *decoder) expectedRecipients(n *yaml.Node, what string) []Recipient {
	n = resolve(n)
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	out := []Recipient{}
	for i, v := range items {
		field := what
		if n.Kind == yaml.SequenceNode {
			field = fmt.Sprintf("%s[%d]", what, i)
		}
		var r Recipient
		d.fields(v, field, map[string]func(*yaml.Node){
			"type":    func(v *yaml.Node) { r.Type, _ = d.str(v, field+".type") },
			"id":      func(v *yaml.Node) { r.ID, _ = d.str(v, field+".id") },
			"user_id": func(v *yaml.Node) { r.UserID, _ = d.str(v, field+".user_id") },
			"email":   func(v *yaml.Node) { r.Email, _ = d.str(v, field+".email") },
		})
		out = append(out, r)
	}
	return out
}

// CaseResult is the outcome of one test case; it passed when Failures is
// empty.
type CaseResult struct {
	Case     *TestCase
	Failures []string
}

// Passed reports whether the case passed.
func (r CaseResult) Passed() bool { return len(r.Failures) == 0 }

// Run feeds the case's event to the set and compares what comes out with
// what the case expects, then does the same with each of its later events.
//
// request, when not nil, builds the body of POST /messages for a message,
// as Intercom would get it; an expectation's request is checked against it.
func (tc *TestCase) Run(s *Set, request func(Message) ([]byte, error)) CaseResult {
	res := CaseResult{Case: tc}
	w := waitingMessages{}
	res.Failures = tc.runEvent(s, request, w)
	for i, later := range tc.Then {
		for _, f := range later.runEvent(s, request, w) {
			res.Failures = append(res.Failures, fmt.Sprintf("then[%d] (%s): %s", i, later.Event.Time.Format(time.RFC3339), f))
		}
	}
	return res
}

// waitingMessages are the messages that a case's events scheduled, by
// rule and key, with when each goes out; a zero time is one that went out
// or was cancelled.
type waitingMessages map[Cancel]time.Time

// runEvent runs one of a case's events: what it sends and cancels, given
// the messages that the case's earlier events left waiting.
func (tc *TestCase) runEvent(s *Set, request func(Message) ([]byte, error), waiting waitingMessages) []string {
	var failures []string
	fail := func(format string, args ...any) { failures = append(failures, fmt.Sprintf(format, args...)) }
	ev := tc.Event
	out := s.Evaluate(&ev)

	got := map[string]*Delivery{}
	for i := range out.Deliveries {
		got[out.Deliveries[i].Rule] = &out.Deliveries[i]
	}
	var explained []Explanation // computed once, when a failure needs it
	why := func(rule string) string {
		if explained == nil {
			explained = s.Explain(&ev)
		}
		for _, x := range explained {
			if x.Rule == rule {
				switch x.Outcome {
				case Skipped:
					return "skipped: " + x.Reason
				case NoMatch:
					return "its condition was false"
				case Failed:
					return "it failed: " + x.Err.Error()
				}
			}
		}
		return "there is no such rule"
	}
	for _, want := range tc.Expect {
		d := got[want.Rule]
		if d == nil {
			fail("rule %s: expected a message, got none (%s)", want.Rule, why(want.Rule))
			continue
		}
		delete(got, want.Rule)
		for _, f := range want.compare(d) {
			fail("rule %s: %s", want.Rule, f)
		}
		if want.Request != nil && request != nil {
			if f := compareRequest(want.Request, d.Message, request); f != "" {
				fail("rule %s: request:\n%s", want.Rule, f)
			}
		}
	}
	for _, d := range out.Deliveries {
		if got[d.Rule] != nil {
			fail("rule %s: sent a message the test does not expect (%s to %s)", d.Rule, d.Message.MessageType, recipientsString(d.Message.To))
		}
	}
	for _, e := range out.Errors {
		expected := slices.ContainsFunc(tc.Errors, func(x ExpectedError) bool {
			return x.Rule == e.Rule && strings.Contains(e.Err.Error(), x.Contains)
		})
		reported := slices.ContainsFunc(tc.Expect, func(x Expectation) bool { return x.Rule == e.Rule })
		if !expected && !reported {
			fail("rule %s: unexpected error: %v", e.Rule, e.Err)
		}
	}
	for _, x := range tc.Errors {
		if !slices.ContainsFunc(out.Errors, func(e *EvalError) bool {
			return x.Rule == e.Rule && strings.Contains(e.Err.Error(), x.Contains)
		}) {
			fail("rule %s: expected an error containing %q, got none", x.Rule, x.Contains)
		}
	}
	failures = append(failures, waiting.update(ev.Time, out, tc.Cancels)...)
	return failures
}

// update moves the waiting messages on to an event at now with result
// out: those whose time has come went out, the event's cancels take theirs
// away, and its own waiting messages join. It says how the cancels differ
// from those expected. A cancel of a message that went out already
// cancels nothing; one of a message no event of the case scheduled is
// taken as the event makes it.
func (w waitingMessages) update(now time.Time, out Result, want []Cancel) []string {
	var failures []string
	var got []Cancel
	moot := map[Cancel]string{} // cancels of messages no longer waiting, and why
	for _, c := range out.Cancels {
		at, known := w[c]
		switch {
		case !known:
			got = append(got, c)
		case at.IsZero():
			moot[c] = "it went out or was cancelled before this event"
		case !at.After(now):
			moot[c] = "it went out at " + at.UTC().Format(time.RFC3339) + ", before this event"
		default:
			got = append(got, c)
		}
		if known {
			w[c] = time.Time{}
		}
	}
	for _, c := range want {
		if !slices.Contains(got, c) {
			why := cmp.Or(moot[c], "the event does not cancel it")
			failures = append(failures, fmt.Sprintf("rule %s: expected to cancel the message waiting with key %q, but %s", c.Rule, c.Key, why))
		}
	}
	for _, c := range got {
		if !slices.Contains(want, c) {
			failures = append(failures, fmt.Sprintf("rule %s: cancels the message waiting with key %q, which the test does not expect", c.Rule, c.Key))
		}
	}
	for _, d := range out.Deliveries {
		if d.Schedule != nil && d.Schedule.At.After(now) {
			w[Cancel{Rule: d.Rule, Key: d.Schedule.Key}] = d.Schedule.At
		}
	}
	return failures
}

func recipientsString(rs []Recipient) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ", ")
}

// compare lists how d differs from the expectation.
func (e *Expectation) compare(d *Delivery) []string {
	var diffs []string
	check := func(field string, want *string, got string) {
		if want != nil && *want != got {
			diffs = append(diffs, field+":\n"+Diff(*want, got))
		}
	}
	m := d.Message
	check("type", e.Type, m.MessageType)
	check("template", e.Template, m.Template)
	check("from", e.From, m.From.ID)
	check("subject", e.Subject, m.Subject)
	check("body", e.Body, m.Body)
	check("dedupe", e.Dedupe, d.DedupeKey)
	for _, l := range []struct {
		field     string
		want, got []Recipient
	}{{"to", e.To, m.To}, {"cc", e.Cc, m.Cc}, {"bcc", e.Bcc, m.Bcc}} {
		if l.want != nil && !slices.Equal(l.want, l.got) {
			diffs = append(diffs, l.field+":\n"+Diff(recipientsString(l.want), recipientsString(l.got)))
		}
	}
	for _, s := range e.BodyContains {
		if !strings.Contains(m.Body, s) {
			diffs = append(diffs, fmt.Sprintf("body does not contain %q; body is:\n%s", s, indent(m.Body)))
		}
	}
	if e.Schedule != nil {
		diffs = append(diffs, e.Schedule.compare(d.Schedule)...)
	}
	if e.Throttle != nil {
		got := "none"
		if d.Throttle != nil {
			got = fmt.Sprintf("key %q per %s", d.Throttle.Key, d.Throttle.Per)
		}
		want := fmt.Sprintf("key %q per %s", e.Throttle.Key, e.Throttle.Per)
		if e.Throttle.Per == 0 { // only the key given
			want = fmt.Sprintf("key %q", e.Throttle.Key)
			if d.Throttle != nil {
				got = fmt.Sprintf("key %q", d.Throttle.Key)
			}
		}
		if want != got {
			diffs = append(diffs, "throttle:\n"+Diff(want, got))
		}
	}
	return diffs
}

// compare lists how a delivery's schedule differs from the expected one.
func (e *ExpectedSchedule) compare(got *Schedule) []string {
	if got == nil {
		return []string{"schedule: expected the message to wait, but it is sent at once (the rule has no schedule)"}
	}
	var diffs []string
	if e.At != nil && !e.At.Equal(got.At) {
		diffs = append(diffs, "schedule.at:\n"+Diff(e.At.UTC().Format(time.RFC3339), got.At.UTC().Format(time.RFC3339)))
	}
	if e.Key != nil && *e.Key != got.Key {
		diffs = append(diffs, "schedule.key:\n"+Diff(*e.Key, got.Key))
	}
	return diffs
}

func indent(s string) string {
	return "    | " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    | ")
}

// Diff shows two texts line by line: lines only in want start with "- ",
// lines only in got with "+ ", shared lines with spaces.
func Diff(want, got string) string { return DiffAs("want", "got", want, got) }

// DiffAs is Diff with other names than want and got for the two sides.
func DiffAs(wantName, gotName, want, got string) string {
	a := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	b := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(a) == 1 && len(b) == 1 {
		width := max(len(wantName), len(gotName)) + 1
		return fmt.Sprintf("    - %-*s %q\n    + %-*s %q", width, wantName+":", want, width, gotName+":", got)
	}
	// Longest common subsequence of lines; bodies are short.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	out := []string{"    (- " + wantName + ", + " + gotName + ")"}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			out = append(out, "      "+a[i])
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "    - "+a[i])
			i++
		default:
			out = append(out, "    + "+b[j])
			j++
		}
	}
	return strings.Join(out, "\n")
}

// FilterCases keeps the cases whose "file: name" matches re.
func FilterCases(tf *TestFile, re *regexp.Regexp) []*TestCase {
	if re == nil {
		return tf.Cases
	}
	var out []*TestCase
	for _, c := range tf.Cases {
		if re.MatchString(tf.Name + ": " + c.Name) {
			out = append(out, c)
		}
	}
	return out
}

// compareRequest compares an expected request body with the one built for
// m, as JSON values; "" when they are the same.
func compareRequest(want any, m Message, request func(Message) ([]byte, error)) string {
	body, err := request(m)
	if err != nil {
		return err.Error()
	}
	var got any
	if err := json.Unmarshal(body, &got); err != nil {
		return err.Error()
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		return err.Error()
	}
	var wantV any
	if err := json.Unmarshal(wantJSON, &wantV); err != nil {
		return err.Error()
	}
	if reflect.DeepEqual(wantV, got) {
		return ""
	}
	return Diff(indentJSON(wantV), indentJSON(got))
}

// indentJSON is v as indented JSON, with HTML left as it is.
func indentJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	return b.String()
}

package rules

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

const testRules = `rules:
  - name: paid
    on: {sources: [shop]}
    when: event.amount > 100
    message:
      type: email
      from: "1"
      to: {type: user, user_id: '{{ .event.user }}'}
      subject: 'Thanks {{ .event.name }}'
      body: |
        <p>Hello {{ .event.name }},</p>
        <p>Paid.</p>
    throttle: {key: '{{ .event.user }}', per: 1h}
`

func runCases(t *testing.T, tests string) []CaseResult {
	t.Helper()
	set, err := Parse([]File{{Name: "r.yaml", Data: []byte(testRules)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tf, err := ParseTests(File{Name: "r.test.yaml", Data: []byte(tests)})
	if err != nil {
		t.Fatal(err)
	}
	var out []CaseResult
	for _, c := range tf.Cases {
		out = append(out, c.Run(set, nil))
	}
	return out
}

func TestRuleTestCases(t *testing.T) {
	tests := []struct {
		name     string
		tests    string
		failures []string // one entry per failure, a part of its text
	}{
		{"all fields match", `tests:
  - name: ok
    source: shop
    event: {amount: 150, user: u1, name: Ann}
    expect:
      - rule: paid
        type: email
        template: plain
        from: "1"
        to: {type: user, user_id: u1}
        subject: Thanks Ann
        body: |
          <p>Hello Ann,</p>
          <p>Paid.</p>
        body_contains: [Hello Ann, Paid]
        dedupe: shop:test-1
        throttle: {key: u1, per: 1h}
`, nil},
		{"no message expected", "tests:\n  - {source: shop, event: {amount: 5}, expect: []}\n", nil},
		{"wrong subject", "tests:\n  - {source: shop, event: {amount: 150, user: u1, name: Ann}, expect: [{rule: paid, subject: Thanks Bob}]}\n",
			[]string{"rule paid: subject:\n    - want: \"Thanks Bob\"\n    + got:  \"Thanks Ann\""}},
		{"wrong body line", `tests:
  - source: shop
    event: {amount: 150, user: u1, name: Ann}
    expect:
      - rule: paid
        body: |
          <p>Hello Bob,</p>
          <p>Paid.</p>
`, []string{"rule paid: body:\n    (- want, + got)\n    - <p>Hello Bob,</p>\n    + <p>Hello Ann,</p>\n      <p>Paid.</p>"}},
		{"missing text in body", "tests:\n  - {source: shop, event: {amount: 150, user: u1, name: Ann}, expect: [{rule: paid, body_contains: Goodbye}]}\n",
			[]string{`rule paid: body does not contain "Goodbye"`}},
		{"wrong recipient and throttle", "tests:\n  - {source: shop, event: {amount: 150, user: u1, name: A}, expect: [{rule: paid, to: {type: user, email: a@b.c}, throttle: {key: u2}}]}\n",
			[]string{"rule paid: to:\n    - want: \"user email a@b.c\"\n    + got:  \"user user_id u1\"", "rule paid: throttle:\n    - want: \"key \\\"u2\\\"\"\n    + got:  \"key \\\"u1\\\"\""}},
		{"expected message not sent: false", "tests:\n  - {source: shop, event: {amount: 5}, expect: [{rule: paid}]}\n",
			[]string{"rule paid: expected a message, got none (its condition was false)"}},
		{"expected message not sent: skipped", "tests:\n  - {source: pos, event: {amount: 500}, expect: [{rule: paid}]}\n",
			[]string{`rule paid: expected a message, got none (skipped: source "pos" is not in on.sources [shop])`}},
		{"expected message not sent: error", "tests:\n  - {source: shop, event: {name: x}, expect: [{rule: paid}]}\n",
			[]string{"rule paid: expected a message, got none (it failed: r.yaml:4:24: when: invalid operation: <nil> > int)"}},
		{"unexpected message", "tests:\n  - {source: shop, event: {amount: 150, user: u1, name: A}, expect: []}\n",
			[]string{"rule paid: sent a message the test does not expect (email to user user_id u1)"}},
		{"unexpected error", "tests:\n  - {source: shop, event: {amount: 150, user: u1}, expect: []}\n",
			[]string{`rule paid: unexpected error: r.yaml:9:33: message.subject: .event.name: no field "name"`}},
		{"expected error", "tests:\n  - {source: shop, event: {amount: 150, user: u1}, expect: [], errors: [{rule: paid, contains: 'no field \"name\"'}]}\n", nil},
		{"expected error missing", "tests:\n  - {source: shop, event: {amount: 1}, expect: [], errors: [{rule: paid, contains: boom}]}\n",
			[]string{`rule paid: expected an error containing "boom", got none`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCases(t, tc.tests)
			if len(res) != 1 {
				t.Fatalf("want one case, got %d", len(res))
			}
			checkFailures(t, res[0].Failures, tc.failures)
		})
	}
}

// checkFailures checks that a case failed as often as want says, each
// failure containing its entry of want.
func checkFailures(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("want %d failures, got %d:\n%s", len(want), len(got), strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("failure %d:\n%s\nwant it to contain:\n%s", i, got[i], want[i])
		}
	}
}

func TestParseTestsErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"tests:\n  - name: a\n    event: {}\n", `r.test.yaml:2:5: test "a" has no expect (write expect: [] when no message may be sent)`},
		{"tests:\n  - name: a\n    expect: []\n", `r.test.yaml:2:5: test "a" has no event`},
		{"tests:\n  - {event: {}, expect: [{subject: x}]}\n", "r.test.yaml:2:26: an expected message needs the rule that sends it"},
		{"tests:\n  - {event: {}, expect: [{rule: r, colour: x}]}\n", `r.test.yaml:2:36: unknown field "colour" in an expected message`},
		{"tests:\n  - {event: {}, expect: none}\n", "r.test.yaml:2:25: expect must be a list of messages (expect: [] for none), got \"none\""},
		{"tests:\n  - {event: {}, expect: [], time: tomorrow}\n", `r.test.yaml:2:35: time must be RFC 3339, like 2025-01-01T09:00:00Z, got "tomorrow"`},
		{"tests: {}\n", "r.test.yaml:1:8: tests must be a list, got a mapping"},
	}
	for _, tc := range tests {
		_, err := ParseTests(File{Name: "r.test.yaml", Data: []byte(tc.src)})
		var list ErrorList
		if !errors.As(err, &list) || !strings.HasPrefix(list[0].Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

func TestTestCaseDefaultsAndFilter(t *testing.T) {
	tf, err := ParseTests(File{Name: "x.test.yaml", Data: []byte(`tests:
  - name: first
    event: {a: 1}
    headers: {X-Tenant: acme}
    expect: []
  - event: {a: 2}
    id: custom
    time: 2026-05-01T10:00:00Z
    expect: []
`)})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := tf.Cases[0], tf.Cases[1]
	if c1.Event.ID != "test-1" || !c1.Event.Time.Equal(testEpoch) || c1.Event.Headers["x-tenant"] != "acme" {
		t.Errorf("case 1 defaults: %+v", c1.Event)
	}
	if c2.Name != "case 2" || c2.Event.ID != "custom" || c2.Event.Time.Month() != 5 {
		t.Errorf("case 2: %+v", c2)
	}
	if got := FilterCases(tf, regexp.MustCompile("first")); len(got) != 1 || got[0] != c1 {
		t.Errorf("filter: %v", got)
	}
}

// A case can check when a message waits until, and follow it with later
// events that cancel it, or come too late to.
func TestRuleTestWaitingMessages(t *testing.T) {
	set, err := Parse([]File{{Name: "r.yaml", Data: []byte(cancelRules)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const signup = "  - time: 2026-03-14T09:00:00Z\n    source: shop\n    event: {type: signed_up, user: u1}\n    expect: [{rule: plain}, "
	tests := []struct {
		name     string
		tests    string
		failures []string // one entry per failure, a part of its text
	}{
		{"when, compared as instants", signup + "{rule: nudge, schedule: {at: '2026-03-15T10:00:00+01:00', key: u1}}]\n", nil},
		{"the wrong time", signup + "{rule: nudge, schedule: {at: '2026-03-15T10:00:00Z'}}]\n",
			[]string{"rule nudge: schedule.at:\n    - want: \"2026-03-15T10:00:00Z\"\n    + got:  \"2026-03-15T09:00:00Z\""}},
		{"the wrong key", signup + "{rule: nudge, schedule: {key: u2}}]\n",
			[]string{"rule nudge: schedule.key:\n    - want: \"u2\"\n    + got:  \"u1\""}},
		{"a message sent at once", "  - {source: shop, event: {type: signed_up, user: u1}, expect: [{rule: nudge}, {rule: plain, schedule: {key: u1}}]}\n",
			[]string{"rule plain: schedule: expected the message to wait, but it is sent at once (the rule has no schedule)"}},
		{"cancelled while it waits", signup + "{rule: nudge}]\n    then:\n      - time: 2026-03-14T18:00:00Z\n        event: {type: activated, user: u1}\n        expect: []\n        cancels: [{rule: nudge, key: u1}]\n", nil},
		{"too late to cancel", signup + "{rule: nudge}]\n    then:\n      - time: 2026-03-15T09:00:00Z\n        event: {type: activated, user: u1}\n        expect: []\n        cancels: []\n", nil},
		{"too late to cancel, but the test says it cancels", signup + "{rule: nudge}]\n    then:\n      - time: 2026-03-16T00:00:00Z\n        event: {type: activated, user: u1}\n        expect: []\n        cancels: [{rule: nudge, key: u1}]\n",
			[]string{`then[0] (2026-03-16T00:00:00Z): rule nudge: expected to cancel the message waiting with key "u1", but it went out at 2026-03-15T09:00:00Z, before this event`}},
		{"a cancel the test does not expect", signup + "{rule: nudge}]\n    then:\n      - time: 2026-03-14T10:00:00Z\n        event: {type: activated, user: u1}\n        expect: []\n",
			[]string{`then[0] (2026-03-14T10:00:00Z): rule nudge: cancels the message waiting with key "u1", which the test does not expect`}},
		{"cancelled once only", signup + "{rule: nudge}]\n    then:\n      - {time: 2026-03-14T10:00:00Z, event: {type: activated, user: u1}, expect: [], cancels: [{rule: nudge, key: u1}]}\n      - {time: 2026-03-14T11:00:00Z, event: {type: activated, user: u1}, expect: [], cancels: [{rule: nudge, key: u1}]}\n",
			[]string{`then[1] (2026-03-14T11:00:00Z): rule nudge: expected to cancel the message waiting with key "u1", but it went out or was cancelled before this event`}},
		{"a second signup replaces the first", signup + "{rule: nudge}]\n    then:\n      - {time: 2026-03-14T21:00:00Z, source: shop, event: {type: signed_up, user: u1}, expect: [{rule: plain}, {rule: nudge, schedule: {at: '2026-03-15T21:00:00Z'}}]}\n      - {time: 2026-03-15T12:00:00Z, event: {type: activated, user: u1}, expect: [], cancels: [{rule: nudge, key: u1}]}\n", nil},
		{"an event alone cancels what may wait", "tests:\n  - {event: {type: activated, user: u1}, expect: [], cancels: [{rule: nudge, key: u1}]}\n", nil},
		{"a cancel that does not happen", "tests:\n  - {event: {type: activated, user: u1}, expect: [], cancels: [{rule: nudge, key: u2}]}\n",
			[]string{`rule nudge: expected to cancel the message waiting with key "u2", but the event does not cancel it`, `rule nudge: cancels the message waiting with key "u1", which the test does not expect`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.tests
			if strings.HasPrefix(src, "  - ") {
				src = "tests:\n" + src
			}
			tf, err := ParseTests(File{Name: "r.test.yaml", Data: []byte(src)})
			var got []string
			if err != nil {
				got = []string{err.Error()}
			} else if len(tf.Cases) != 1 {
				t.Fatalf("want one case, got %d", len(tf.Cases))
			} else {
				got = tf.Cases[0].Run(set, nil).Failures
			}
			checkFailures(t, got, tc.failures)
		})
	}
}

func TestParseLaterEventsErrors(t *testing.T) {
	const head = "tests:\n  - time: 2026-03-14T09:00:00Z\n    event: {}\n    expect: []\n"
	tests := []struct{ src, want string }{
		{head + "    then:\n      - {event: {}, expect: []}\n", "r.test.yaml:6:9: then[0] has no time: a later event needs one, after the event before it"},
		{head + "    then:\n      - {time: 2026-03-14T08:00:00Z, event: {}, expect: []}\n", "r.test.yaml:6:9: then[0].time 2026-03-14T08:00:00Z is before the event before it (2026-03-14T09:00:00Z)"},
		{head + "    then:\n      - {time: 2026-03-14T10:00:00Z, event: {}}\n", "r.test.yaml:6:9: then[0] has no expect (write expect: [] when no message may be sent)"},
		{head + "    then:\n      - {name: x, time: 2026-03-14T10:00:00Z, event: {}, expect: []}\n", `r.test.yaml:6:10: unknown field "name" in a later event (then[0]) (known fields: cancels, errors, event, expect, headers, id, source, subject, time, type)`},
		{head + "    then: []\n", "r.test.yaml:5:11: then must be a list of later events, got a list"},
		{head + "    cancels: nudge\n", `r.test.yaml:5:14: cancels must be a list of {rule, key} (cancels: [] for none), got "nudge"`},
		{head + "    cancels: [{rule: nudge}]\n", "r.test.yaml:5:15: cancels[0] needs a rule and a key"},
		{"tests:\n  - {event: {}, expect: [{rule: r, schedule: {at: soon}}]}\n", `r.test.yaml:2:51: schedule.at must be RFC 3339, like 2025-01-01T09:00:00Z, got "soon"`},
	}
	for _, tc := range tests {
		_, err := ParseTests(File{Name: "r.test.yaml", Data: []byte(tc.src)})
		var list ErrorList
		if !errors.As(err, &list) || list[0].Error() != tc.want {
			t.Errorf("%q:\n got %v\nwant %s", tc.src, err, tc.want)
		}
	}
}

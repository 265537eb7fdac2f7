package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rule wraps a rule's body lines in a file, so that each case can show the
// one thing it breaks. The rule's keys start on line 3, column 5.
func rule(lines ...string) string {
	return "rules:\n  - name: r\n    " + strings.Join(lines, "\n    ") + "\n"
}

const validMessage = `message:
      type: email
      from: "1"
      to: {type: user, user_id: '{{ .event.user }}'}
      subject: Hi
      body: <p>Hi</p>`

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // "line:col: message" (the file name is added)
	}{
		{"unknown field", rule("colour: red", validMessage), "3:5: unknown field \"colour\" in a rule (known fields: dedupe, description, message, mode, name, on, schedule, throttle, when)"},
		{"mode invalid", rule("mode: dry", validMessage), "3:11: mode must be live or shadow, got \"dry\""},
		{"duplicate key", rule(validMessage, "when: 'true'", "when: 'false'"), "10:5: duplicate key \"when\" (first at line 9)"},
		{"wrong type for on.sources", rule("on: {sources: shop}", validMessage), "3:19: on.sources must be a list, e.g. [shop], got \"shop\""},
		{"wrong type for message", rule("message: hello"), "3:14: message must be a mapping, got \"hello\""},
		{"rules not a list", "rules: {name: r}\n", "1:8: rules must be a list, got a mapping"},
		{"top-level unknown", "rule:\n  - name: r\n", "1:1: unknown field \"rule\" in the file (known fields: rules)"},
		{"invalid YAML", "rules:\n  - name: r\n\t  when: x\n", "3:1: invalid YAML: found a tab character that violates indentation"},
		{"name missing", "rules:\n  - " + strings.TrimPrefix(strings.ReplaceAll(validMessage, "\n    ", "\n  "), "") + "\n", "2:5: rule has no name"},
		{"bad name", "rules:\n  - name: Order Paid\n    " + validMessage + "\n", "2:11: name \"Order Paid\" may only hold a-z, 0-9, '.', '_' and '-'"},
		{"no message", rule("when: 'true'"), "2:5: rule \"r\" has no message"},

		{"condition not boolean", rule(`when: 'source + "x"'`, validMessage), "3:12: when: the condition must be true or false, but gives string"},
		{"condition unknown name, plain", rule("when: event.type == 'a' && evnt.x", validMessage), "3:32: when: unknown name evnt"},
		{"condition unknown name, double-quoted", rule(`when: "event.type == \"a\" && evnt.x"`, validMessage), "3:35: when: unknown name evnt"},
		{"condition unknown name, single-quoted", rule(`when: 'event.type == ''a'' && evnt.x'`, validMessage), "3:35: when: unknown name evnt"},
		{"condition unknown name, literal block", rule("when: |", "  event.type == \"a\" &&", "    evnt.x", validMessage), "5:9: when: unknown name evnt"},
		{"condition unknown name, folded block", rule("when: >", "  event.type == \"a\" &&", "  evnt.x", validMessage), "5:7: when: unknown name evnt"},
		{"condition syntax error", rule("when: event.amount >> 3", validMessage), "3:25: when: unexpected token Operator(\">\")"},

		{"subject template parse error", rule(strings.Replace(validMessage, "subject: Hi", "subject: 'Hi {{ .event.name '", 1)), "7:17: message.subject: unclosed action"},
		{"body unknown function", rule(strings.Replace(validMessage, "body: <p>Hi</p>", "body: |\n        <p>Hi</p>\n        <p>{{ .event.x | shout }}</p>", 1)), "10:9: message.body: function \"shout\" not defined"},
		{"body unclosed HTML", rule(strings.Replace(validMessage, "body: <p>Hi</p>", `body: '<a href="{{ .event.url }}'`, 1)), "8:14: message.body: the HTML ends inside a tag, an attribute or a script: close it"},
		{"recipient template error", rule(strings.Replace(validMessage, "'{{ .event.user }}'", "'{{ .event.user '", 1)), "6:34: message.to.user_id: unclosed action"},

		{"type missing", rule("message: {from: '1', to: {type: user, id: x}, body: b}"), "3:14: message has no type (email or inapp)"},
		{"type invalid", rule(strings.Replace(validMessage, "type: email", "type: sms", 1)), "4:13: message.type must be email or inapp, got \"sms\""},
		{"type in_app", rule(strings.Replace(validMessage, "type: email", "type: in_app", 1)), "4:13: message.type \"in_app\": write inapp"},
		{"email without subject", rule(strings.Replace(validMessage, "subject: Hi", "template: plain", 1)), "4:7: message.subject is required for email messages"},
		{"inapp with subject", rule(strings.Replace(validMessage, "type: email", "type: inapp", 1)), "7:16: message.subject is only used for email messages; remove it from this inapp message"},
		{"inapp with template", rule("message: {type: inapp, template: plain, from: '1', to: {type: user, id: x}, body: b}"), "3:38: message.template is only valid for email messages"},
		{"template invalid", rule(strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      template: fancy", 1)), "8:17: message.template must be plain or personal, got \"fancy\""},
		{"body missing", rule(strings.Replace(validMessage, "body: <p>Hi</p>", "template: plain", 1)), "4:7: message.body is required"},
		{"body empty", rule(strings.Replace(validMessage, "body: <p>Hi</p>", "body: ' '", 1)), "8:13: message.body must not be empty"},
		{"from not an id", rule(strings.Replace(validMessage, `from: "1"`, "from: admin@example.com", 1)), "5:13: message.from must be an Intercom admin id (digits), got \"admin@example.com\""},
		{"from missing, no default", rule(strings.Replace(validMessage, "from: \"1\"\n      ", "", 1)), "4:7: message.from is not set and no default admin id is configured (intercom.default_admin_id)"},
		{"to missing", rule("message: {type: inapp, from: '1', body: b}"), "3:14: message.to is required"},
		{"to type invalid", rule(strings.Replace(validMessage, "type: user,", "type: visitor,", 1)), "6:18: message.to.type must be user, lead or contact, got \"visitor\""},
		{"to no identifier", rule(strings.Replace(validMessage, "user_id: '{{ .event.user }}'", "name: x", 1)), "6:24: unknown field \"name\" in message.to (known fields: email, id, type, user_id)"},
		{"to without identifier", rule(strings.Replace(validMessage, "{type: user, user_id: '{{ .event.user }}'}", "{type: user}", 1)), "6:11: message.to needs one of id, user_id or email"},
		{"to two identifiers", rule(strings.Replace(validMessage, "user_id: '{{ .event.user }}'", "user_id: a, email: b", 1)), "6:43: message.to must have exactly one of id, user_id or email; it has user_id and email"},
		{"to empty list", rule(strings.Replace(validMessage, "{type: user, user_id: '{{ .event.user }}'}", "[]", 1)), "6:11: message.to must not be an empty list"},
		{"to list item without type", rule(strings.Replace(validMessage, "{type: user, user_id: '{{ .event.user }}'}", "[{type: user, id: a}, {id: b}]", 1)), "6:33: message.to[1] has no type (user, lead or contact)"},
		{"cc two identifiers", rule(strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      cc: {type: lead, id: a, email: b}", 1)), "8:38: message.cc must have exactly one of id, user_id or email; it has id and email"},
		{"created_at empty", rule(strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      created_at: ' '", 1)), "8:19: message.created_at must not be empty: write event, or a template giving unix seconds or an RFC 3339 time"},
		{"created_at template error", rule(strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      created_at: '{{ .event.at '", 1)), "8:20: message.created_at: unclosed action"},

		{"throttle without per", rule(validMessage, "throttle: {key: k}"), "9:15: throttle.per is required (a duration such as 24h)"},
		{"throttle bad per", rule(validMessage, "throttle: {key: k, per: 1d}"), "9:29: throttle.per: \"1d\" is not a duration (use units h, m, s: 24h, 90m)"},
		{"throttle negative per", rule(validMessage, "throttle: {key: k, per: -1h}"), "9:29: throttle.per must be positive, got -1h"},
		{"throttle without key", rule(validMessage, "throttle: {per: 1h}"), "9:15: throttle.key is required"},
		{"schedule unknown field", rule(validMessage, "schedule: {delay: 1h, wait: 2}"), "9:27: unknown field \"wait\" in schedule (known fields: at, cancel_on, delay, key, offset, quiet_hours)"},
		{"schedule not a mapping", rule(validMessage, "schedule: 24h"), "9:15: schedule must be a mapping, got \"24h\""},
		{"schedule without delay or at", rule(validMessage, "schedule: {key: k}"), "9:15: schedule needs delay (a duration such as 24h) or at (a template giving an RFC 3339 time)"},
		{"schedule with delay and at", rule(validMessage, "schedule: {delay: 1h, at: x}"), "9:31: schedule has both delay and at: give one"},
		{"schedule bad delay", rule(validMessage, "schedule: {delay: 1d}"), "9:23: schedule.delay: \"1d\" is not a duration (use units h, m, s: 24h, 90m)"},
		{"schedule zero delay", rule(validMessage, "schedule: {delay: 0s}"), "9:23: schedule.delay must be positive, got 0s"},
		{"schedule delay a list", rule(validMessage, "schedule: {delay: [1h]}"), "9:23: schedule.delay must be a string, got a list"},
		{"schedule offset with delay", rule(validMessage, "schedule: {delay: 1h, offset: -1h}"), "9:35: schedule.offset only goes with at; with delay, change the delay"},
		{"schedule bad offset", rule(validMessage, "schedule: {at: '{{ .event.at }}', offset: 2 days}"), "9:47: schedule.offset: \"2 days\" is not a duration (use units h, m, s: 24h, 90m)"},
		{"schedule at template error", rule(validMessage, "schedule: {at: '{{ .event.at '}"), "9:21: schedule.at: unclosed action"},
		{"schedule at empty", rule(validMessage, "schedule: {at: ''}"), "9:20: schedule.at must not be empty"},
		{"schedule key template error", rule(validMessage, "schedule: {delay: 1h, key: '{{ .event.u | nope }}'}"), "9:33: schedule.key: function \"nope\" not defined"},
		{"quiet hours unknown field", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '08:00', tz: UTC}}"), "9:69: unknown field \"tz\" in schedule.quiet_hours (known fields: from, timezone, to)"},
		{"quiet hours bad clock", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '9pm', to: '08:00', timezone: UTC}}"), "9:47: schedule.quiet_hours.from: \"9pm\" is not a time of day (HH:MM, 00:00 to 23:59)"},
		{"quiet hours past midnight", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '24:00', timezone: UTC}}"), "9:60: schedule.quiet_hours.to: \"24:00\" is not a time of day (HH:MM, 00:00 to 23:59)"},
		{"quiet hours without to", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', timezone: UTC}}"), "9:40: schedule.quiet_hours.to is required (a time of day such as 21:00)"},
		{"quiet hours empty window", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '08:00', to: '08:00', timezone: UTC}}"), "9:60: schedule.quiet_hours: from and to are both 08:00; the window must not be empty"},
		{"quiet hours without a zone", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '08:00'}}"), "9:40: schedule.quiet_hours.timezone is required (an IANA zone such as Europe/Berlin, or a template giving one)"},
		{"quiet hours unknown zone", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '08:00', timezone: Europe/Bonn}}"), "9:79: schedule.quiet_hours.timezone: unknown time zone \"Europe/Bonn\""},
		{"quiet hours the machine's zone", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '08:00', timezone: Local}}"), "9:79: schedule.quiet_hours.timezone: unknown time zone \"Local\""},
		{"quiet hours zone template error", rule(validMessage, "schedule: {delay: 1h, quiet_hours: {from: '21:00', to: '08:00', timezone: '{{ .event.tz '}}"), "9:80: schedule.quiet_hours.timezone: unclosed action"},
		{"cancel_on not a list", rule(validMessage, "schedule: {delay: 1h, cancel_on: {when: 'true', key: k}}"), "9:38: schedule.cancel_on must be a list of {when, key}, got a mapping"},
		{"cancel_on empty", rule(validMessage, "schedule: {delay: 1h, cancel_on: []}"), "9:38: schedule.cancel_on must be a list of {when, key}, got a list"},
		{"cancel_on unknown field", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{when: 'true', key: k, on: x}]}"), "9:62: unknown field \"on\" in schedule.cancel_on[0] (known fields: key, when)"},
		{"cancel_on without key", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{when: 'true'}]}"), "9:39: schedule.cancel_on[0].key is required (the key of the waiting message it cancels)"},
		{"cancel_on without when", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{key: k}]}"), "9:39: schedule.cancel_on[0].when is required (the condition of the events that cancel)"},
		{"cancel_on empty when", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{when: '', key: k}]}"), "9:46: schedule.cancel_on[0].when must not be empty"},
		{"cancel_on when unknown name", rule(validMessage, "schedule:", "  delay: 1h", "  cancel_on:", "    - when: event.type == 'a' && evnt.x", "      key: k"), "12:38: schedule.cancel_on[0].when: unknown name evnt"},
		{"cancel_on when not boolean", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{when: 'source', key: k}]}"), "9:47: schedule.cancel_on[0].when: the condition must be true or false, but gives string"},
		{"cancel_on key empty", rule(validMessage, "schedule: {delay: 1h, cancel_on: [{when: 'true', key: ' '}]}"), "9:59: schedule.cancel_on[0].key must not be empty"},
		{"subject pattern wildcard inside a token", rule("on: {subjects: [orders.pa*]}", validMessage), "3:21: on.subjects: subject \"orders.pa*\": wildcards must be whole tokens"},
		{"subject pattern > not last", rule("on: {subjects: ['orders.>.paid']}", validMessage), "3:21: on.subjects: subject \"orders.>.paid\": '>' must be the last token"},
		{"subject pattern empty token", rule("on: {subjects: ['orders..paid']}", validMessage), "3:21: on.subjects: subject \"orders..paid\" has an empty token"},
		{"merge of a scalar", rule("<<: 3", validMessage), "3:9: << must merge a mapping, got \"3\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]File{{Name: "r.yaml", Data: []byte(tc.src)}}, Options{})
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("want an ErrorList, got %v\n--- file:\n%s", err, tc.src)
			}
			want := "r.yaml:" + tc.want
			for _, e := range list {
				if e.Error() == want {
					return
				}
			}
			t.Errorf("want error\n  %s\ngot\n  %s", want, strings.ReplaceAll(list.Error(), "\n", "\n  "))
		})
	}
}

// What the configured Intercom version cannot send is refused at load.
func TestLoadRefusesWhatTheVersionCannotSend(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"list under to", strings.Replace(validMessage, "{type: user, user_id: '{{ .event.user }}'}", "[{type: user, id: a}, {type: lead, id: b}]", 1),
			"6:11: a list of recipients needs Intercom-Version 2.14 or later (intercom.version is 2.11); send one message per recipient, with one rule each"},
		{"cc", strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      cc: {type: user, email: a@example.com}", 1),
			"8:11: message.cc needs Intercom-Version 2.14 or later (intercom.version is 2.11); send one message per recipient, with one rule each"},
		{"bcc", strings.Replace(validMessage, "subject: Hi", "subject: Hi\n      bcc: [{type: user, email: a@example.com}]", 1),
			"8:12: message.bcc needs Intercom-Version 2.14 or later (intercom.version is 2.11); send one message per recipient, with one rule each"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := rule(tc.msg)
			if _, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{}); err != nil {
				t.Fatalf("refused at the default version: %v", err)
			}
			_, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{NoRecipientLists: true, IntercomVersion: "2.11"})
			if err == nil || !strings.Contains(err.Error(), "r.yaml:"+tc.want) {
				t.Errorf("error %v\nwant r.yaml:%s", err, tc.want)
			}
		})
	}
}

func TestLoadReportsEveryProblemInEveryFile(t *testing.T) {
	a := rule("colour: red", validMessage) + "  - name: s\n    when: nope\n    " + validMessage + "\n"
	b := rule("when: 1 +", validMessage)
	_, err := Parse([]File{{Name: "a.yaml", Data: []byte(a)}, {Name: "b.yaml", Data: []byte(b)}}, Options{})
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("want an ErrorList, got %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Pos.String())
	}
	want := []string{"a.yaml:3:5", "a.yaml:11:11", "b.yaml:3:13"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("positions: got %v, want %v\n%v", got, want, list)
	}
}

func TestRunawayConditionsAreBounded(t *testing.T) {
	huge := rule("when: "+strings.Repeat("event.a == 1 || ", 1000)+"true", validMessage)
	_, err := Parse([]File{{Name: "r.yaml", Data: []byte(huge)}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "exceeds maximum allowed nodes") {
		t.Errorf("a condition of 3,000 nodes compiled: %v", err)
	}

	greedy := rule("when: 'len(map(1..10000000, #)) > 0'", validMessage)
	s, err := Parse([]File{{Name: "r.yaml", Data: []byte(greedy)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(&Event{ID: "1", Data: map[string]any{"user": "u"}})
	if len(res.Deliveries) != 0 || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "memory budget exceeded") {
		t.Errorf("a condition that builds 10 million elements: %+v", res)
	}
}

func TestDuplicateRuleNamesNameBothPlaces(t *testing.T) {
	src := rule(validMessage)
	_, err := Parse([]File{{Name: "a.yaml", Data: []byte(src)}, {Name: "b.yaml", Data: []byte(src)}}, Options{})
	want := `b.yaml:2:5: rule "r" is defined twice: here and at a.yaml:2:5`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestUnknownSource(t *testing.T) {
	src := rule("on: {sources: [shop, shp]}", validMessage)
	_, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{Sources: []string{"shop", "billing"}})
	want := `r.yaml:3:26: on.sources: unknown source "shp" (configured: shop, billing)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestDefaultAdminAndDefaults(t *testing.T) {
	src := rule(strings.Replace(validMessage, "from: \"1\"\n      ", "", 1))
	s, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{DefaultAdminID: "394051"})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(&Event{ID: "e1", Data: map[string]any{"user": "u1"}})
	if len(res.Deliveries) != 1 {
		t.Fatalf("want one delivery, got %+v", res)
	}
	m := res.Deliveries[0].Message
	if m.From != (Admin{Type: "admin", ID: "394051"}) || m.Template != "plain" || res.Deliveries[0].DedupeKey != "e1" {
		t.Errorf("defaults not applied: %+v, dedupe %q", m, res.Deliveries[0].DedupeKey)
	}
}

func TestAnchorsAndMerge(t *testing.T) {
	src := `common: &msg
  type: inapp
  from: "7"
  to: {type: contact, user_id: '{{ .event.who }}'}
rules:
  - name: a
    message:
      <<: *msg
      body: hello
  - name: b
    message:
      <<: *msg
      from: "8"
      body: bye
`
	// "common" is not a known top-level key: anchors must live under rules.
	if _, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{}); err == nil {
		t.Fatal("unknown top-level key accepted")
	}
	src = strings.Replace(src, "common: &msg\n  type: inapp\n  from: \"7\"\n  to: {type: contact, user_id: '{{ .event.who }}'}\nrules:\n  - name: a\n    message:\n      <<: *msg\n",
		"rules:\n  - name: a\n    message: &msg\n      type: inapp\n      from: \"7\"\n      to: {type: contact, user_id: '{{ .event.who }}'}\n", 1)
	s, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(&Event{ID: "1", Data: map[string]any{"who": "w"}})
	if len(res.Deliveries) != 2 || res.Deliveries[1].Message.From.ID != "8" || res.Deliveries[1].Message.Body != "bye" || res.Deliveries[1].Message.To[0].UserID != "w" {
		t.Errorf("merge: %+v %v", res.Deliveries, res.Errors)
	}
}

func TestEmptyFilesHoldNoRules(t *testing.T) {
	for _, src := range []string{"", "# nothing yet\n", "rules:\n", "rules: []\n"} {
		s, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{})
		if err != nil || s.Len() != 0 {
			t.Errorf("%q: got %v, %v", src, s, err)
		}
	}
}

func TestDiscoverAndLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", rule(validMessage))
	write("team/b.yml", strings.Replace(rule(validMessage), "name: r", "name: s", 1))
	write("a.test.yaml", "tests: []\n")
	write(".hidden.yaml", "not: [valid")
	write(".git/c.yaml", "not: [valid")
	write("notes.txt", "not yaml")
	write("#a.yaml#", "")
	ruleFiles, testFiles, err := Discover([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(ruleFiles) != 2 || filepath.Base(ruleFiles[0]) != "a.yaml" || filepath.Base(ruleFiles[1]) != "b.yml" {
		t.Errorf("rule files: %v", ruleFiles)
	}
	if len(testFiles) != 1 || filepath.Base(testFiles[0]) != "a.test.yaml" {
		t.Errorf("test files: %v", testFiles)
	}
	s, err := Load([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Hash() == "" {
		t.Errorf("loaded %d rules, hash %q", s.Len(), s.Hash())
	}
	if _, err := Load([]string{filepath.Join(dir, "missing")}, Options{}); err == nil {
		t.Error("a missing path loaded")
	}
}

func TestMode(t *testing.T) {
	for _, tc := range []struct{ lines, want string }{{"", ModeLive}, {"mode: live", ModeLive}, {"mode: shadow", ModeShadow}} {
		set, err := Parse([]File{{Name: "r.yaml", Data: []byte(rule(tc.lines, validMessage))}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r := set.Rule("r"); r.Mode != tc.want || r.Shadow() != (tc.want == ModeShadow) {
			t.Errorf("%q: mode %q, want %q", tc.lines, r.Mode, tc.want)
		}
	}
}

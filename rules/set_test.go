package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// envelope is a test event file: the event's metadata and its payload.
type envelope struct {
	ID      string            `json:"id"`
	Source  string            `json:"source"`
	Subject string            `json:"subject"`
	Type    string            `json:"type"`
	Headers map[string]string `json:"headers"`
	Data    json.RawMessage   `json:"data"`
}

func readEvent(t testing.TB, path string) *Event {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := DecodeJSON(env.Data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &Event{ID: env.ID, Source: env.Source, Subject: env.Subject, Type: env.Type, Headers: env.Headers,
		Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Data: data}
}

func mustLoad(t testing.TB, paths ...string) *Set {
	t.Helper()
	s, err := Load(paths, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRenderGolden renders each testdata/render/*.event.json and compares
// the deliveries and errors with the .golden.json beside it.
func TestRenderGolden(t *testing.T) {
	set := mustLoad(t, "testdata/render/rules.yaml")
	events, _ := filepath.Glob("testdata/render/*.event.json")
	if len(events) == 0 {
		t.Fatal("no events")
	}
	for _, path := range events {
		name := strings.TrimSuffix(filepath.Base(path), ".event.json")
		t.Run(name, func(t *testing.T) {
			res := set.Evaluate(readEvent(t, path))
			type throttle struct{ Key, Per string }
			type out struct {
				Rule, DedupeKey string
				Throttle        *throttle `json:",omitempty"`
				Message         Message
			}
			got := struct {
				Deliveries []out
				Errors     []string
			}{Deliveries: []out{}, Errors: []string{}}
			for _, d := range res.Deliveries {
				o := out{Rule: d.Rule, DedupeKey: d.DedupeKey, Message: d.Message}
				if d.Throttle != nil {
					o.Throttle = &throttle{d.Throttle.Key, d.Throttle.Per.String()}
				}
				got.Deliveries = append(got.Deliveries, o)
			}
			for _, e := range res.Errors {
				got.Errors = append(got.Errors, e.Error())
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(got); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata/render", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./rules -run TestRenderGolden -update)", err)
			}
			if buf.String() != string(want) {
				t.Errorf("%s differs:\n%s", golden, Diff(string(want), buf.String()))
			}
		})
	}
}

func oneRule(t testing.TB, lines ...string) *Set {
	t.Helper()
	s, err := Parse([]File{{Name: "r.yaml", Data: []byte(rule(lines...))}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func inapp(body string) string {
	return "message: {type: inapp, from: '1', to: {type: user, id: x}, body: '" + strings.ReplaceAll(body, "'", "''") + "'}"
}

func TestConditions(t *testing.T) {
	tests := []struct {
		when    string
		data    string
		matched bool
		err     string // part of the error, when the condition must fail
	}{
		{`event.amount > 100`, `{"amount": 150}`, true, ""},
		{`event.amount > 100`, `{"amount": 50}`, false, ""},
		{`event.amount > 100`, `{"amount": 100.5}`, true, ""},
		{`event.amount > 100`, `{}`, false, "r.yaml:3:25: when: invalid operation: <nil> > int"},
		{`event.flag`, `{}`, false, "when: the condition gave nil (a missing field?), not true or false"},
		{`event.flag`, `{"flag": "yes"}`, false, `when: the condition gave string yes, not true or false`},
		{`event?.customer?.tier == "gold"`, `{}`, false, ""},
		{`event?.customer?.tier == "gold"`, `{"customer": {"tier": "gold"}}`, true, ""},
		{`(event?.customer?.tier ?? "free") == "free"`, `{"customer": {}}`, true, ""},
		{`"vip" in event.tags`, `{"tags": ["new", "vip"]}`, true, ""},
		{`event.email endsWith "@example.com"`, `{"email": "a@example.com"}`, true, ""},
		{`source == "shop" && subject startsWith "orders." && id == "e1"`, `{}`, true, ""},
		{`headers["x-tenant"] == "acme"`, `{}`, true, ""},
		{`(headers["x-missing"] ?? "none") == "none"`, `{}`, true, ""},
		{`event.user_id == 1000000`, `{"user_id": 1000000}`, true, ""},
		{`event.customer.name == "x"`, `[1, 2]`, false, "when:"},
	}
	for _, tc := range tests {
		t.Run(tc.when+" "+tc.data, func(t *testing.T) {
			s := oneRule(t, "when: '"+strings.ReplaceAll(tc.when, "'", "''")+"'", inapp("hi"))
			data, err := DecodeJSON([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			res := s.Evaluate(&Event{ID: "e1", Source: "shop", Subject: "orders.paid", Headers: map[string]string{"x-tenant": "acme"}, Data: data})
			if tc.err != "" {
				if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), tc.err) {
					t.Fatalf("want an error containing %q, got %+v", tc.err, res)
				}
				if len(res.Deliveries) != 0 {
					t.Errorf("a failed condition sent a message")
				}
				return
			}
			if len(res.Errors) != 0 {
				t.Fatalf("unexpected errors: %v", res.Errors)
			}
			if got := len(res.Deliveries) == 1; got != tc.matched {
				t.Errorf("matched = %v, want %v", got, tc.matched)
			}
		})
	}
}

func TestTemplates(t *testing.T) {
	tests := []struct {
		body string
		data string
		want string // the rendered body, or the error when err is set
		err  bool
	}{
		{`Hi {{ .event.name }}`, `{"name": "Ada"}`, "Hi Ada", false},
		{`Hi {{ .event.name }}`, `{}`, `r.yaml:3:83: message.body: .event.name: no field "name"`, true},
		{`Hi {{ .event.user.name }}`, `{"user": {}}`, `message.body: .event.user.name: no field "name"`, true},
		{`Hi {{ .event.name | default "there" }}`, `{}`, "Hi there", false},
		{`Hi {{ .event.name | default "there" }}`, `{"name": ""}`, "Hi there", false},
		{`Hi {{ .event.user.name | default "there" }}`, `{}`, "Hi there", false},
		{`Hi {{ default "there" .event.user.name }}`, `{"user": {"name": "Bo"}}`, "Hi Bo", false},
		{`{{ with optional .event.coupon }}Code {{ . }}{{ else }}No code{{ end }}`, `{}`, "No code", false},
		{`{{ with optional .event.coupon }}Code {{ . }}{{ else }}No code{{ end }}`, `{"coupon": "X1"}`, "Code X1", false},
		{`{{ $c := .event.customer }}{{ $c.name | default "friend" }}`, `{"customer": {}}`, "friend", false},
		{`{{ if .event.vip }}VIP{{ end }}`, `{}`, `no field "vip"`, true},
		{`{{ .event.name }}`, `{"name": "<script>x</script>"}`, "&lt;script&gt;x&lt;/script&gt;", false},
		{`<a href="/u?n={{ .event.name }}">x</a>`, `{"name": "a b&c"}`, `<a href="/u?n=a%20b%26c">x</a>`, false},
		{`<a href="{{ .event.url }}">x</a>`, `{"url": "javascript:alert(1)"}`, `<a href="#ZgotmplZ">x</a>`, false},
		{`<a title="{{ .event.name }}">x</a>`, `{"name": "\" onmouseover=\"x"}`, `<a title="&#34; onmouseover=&#34;x">x</a>`, false},
		{`{{ .event.id }} {{ .event.big }} {{ .event.f }}`, `{"id": 1000000, "big": 12345678901234567890, "f": 0.1}`, "1000000 12345678901234567000 0.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.body+" "+tc.data, func(t *testing.T) {
			s := oneRule(t, inapp(tc.body))
			data, err := DecodeJSON([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			res := s.Evaluate(&Event{ID: "e1", Data: data})
			if tc.err {
				if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), tc.want) {
					t.Fatalf("want an error containing %q, got %+v", tc.want, res)
				}
				return
			}
			if len(res.Errors) != 0 || len(res.Deliveries) != 1 {
				t.Fatalf("got %+v", res)
			}
			if got := res.Deliveries[0].Message.Body; got != tc.want {
				t.Errorf("body:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSingleFieldTemplatesFailLikeTemplates(t *testing.T) {
	s := oneRule(t, `message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.customer.id }}'}, body: b}`, `dedupe: '{{.event.key}}'`)
	for data, want := range map[string]string{
		`{"customer": {}, "key": 1}`:            `r.yaml:3:84: message.to.user_id: .event.customer.id: no field "id"`,
		`{"key": 1}`:                            `r.yaml:3:75: message.to.user_id: .event.customer.id: no field "customer"`,
		`{"customer": {"id": 7}}`:               `r.yaml:4:22: dedupe: .event.key: no field "key"`,
		`{"customer": {"id": "a"}, "key": [1]}`: ``,
	} {
		v, _ := DecodeJSON([]byte(data))
		res := s.Evaluate(&Event{ID: "e", Data: v})
		if want == "" {
			if len(res.Errors) != 0 || res.Deliveries[0].DedupeKey != "[1]" {
				t.Errorf("%s: %+v", data, res)
			}
			continue
		}
		if len(res.Errors) != 1 || res.Errors[0].Err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", data, res.Errors, want)
		}
	}
	v, _ := DecodeJSON([]byte(`{"customer": {"id": 1234567.5}, "key": null}`))
	res := s.Evaluate(&Event{ID: "e", Data: v})
	if len(res.Errors) != 1 || res.Errors[0].Err.Error() != "r.yaml:4:14: dedupe rendered empty" {
		t.Errorf("null key: %+v", res)
	}
	v, _ = DecodeJSON([]byte(`{"customer": {"id": 1234567.5}, "key": "k"}`))
	if d := s.Evaluate(&Event{ID: "e", Data: v}).Deliveries; len(d) != 1 || d[0].Message.To[0].UserID != "1234567.5" {
		t.Errorf("float id: %+v", d)
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	s := oneRule(t, `message: {type: email, from: "1", to: {type: user, email: '{{ .event.to }}'}, subject: 'Hi {{ .event.name }}', body: b}`)
	res := s.Evaluate(&Event{ID: "e", Data: map[string]any{"to": "a@b.c", "name": "Ann\r\nBcc: evil@example.com\n"}})
	if len(res.Deliveries) != 1 {
		t.Fatalf("got %+v", res)
	}
	if got := res.Deliveries[0].Message.Subject; got != "Hi AnnBcc: evil@example.com" {
		t.Errorf("subject %q still has line breaks or was changed otherwise", got)
	}
}

func TestEmptyRenderingsAreErrors(t *testing.T) {
	s := oneRule(t, `message: {type: inapp, from: "1", to: {type: user, user_id: '{{ .event.u }}'}, body: b}`, `dedupe: '{{ .event.k }}'`)
	for data, want := range map[string]string{
		`{"u": " ", "k": "1"}`: "message.to.user_id rendered empty",
		`{"u": "x", "k": ""}`:  "dedupe rendered empty",
	} {
		v, _ := DecodeJSON([]byte(data))
		res := s.Evaluate(&Event{ID: "e", Data: v})
		if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), want) {
			t.Errorf("%s: want %q, got %+v", data, want, res)
		}
	}
}

func TestOneFailingRuleDoesNotStopTheOthers(t *testing.T) {
	src := rule(inapp("{{ .event.missing }}")) + "  - name: s\n    " + inapp("ok") + "\n"
	s, err := Parse([]File{{Name: "r.yaml", Data: []byte(src)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Evaluate(&Event{ID: "e", Data: map[string]any{}})
	if len(res.Deliveries) != 1 || res.Deliveries[0].Rule != "s" || len(res.Errors) != 1 || res.Errors[0].Rule != "r" {
		t.Errorf("got %+v", res)
	}
}

func TestExplain(t *testing.T) {
	set := mustLoad(t, "testdata/render/rules.yaml")
	ev := readEvent(t, "testdata/render/condition-error.event.json")
	got := set.Explain(ev)
	if len(got) != 2 {
		t.Fatalf("want an explanation per rule, got %+v", got)
	}
	if got[0].Rule != "order-email" || got[0].Outcome != Failed || !strings.Contains(got[0].Err.Error(), "invalid operation: <nil> > int") {
		t.Errorf("order-email: %+v", got[0])
	}
	if got[1].Rule != "lead-inapp" || got[1].Outcome != Skipped || got[1].Reason != `subject "orders.eu.paid" matches none of on.subjects [crm.>]` {
		t.Errorf("lead-inapp: %+v", got[1])
	}

	ev = readEvent(t, "testdata/render/small-order.event.json")
	if x := set.Explain(ev)[0]; x.Outcome != NoMatch {
		t.Errorf("small order: %+v", x)
	}
	ev = readEvent(t, "testdata/render/order.event.json")
	if x := set.Explain(ev)[0]; x.Outcome != Matched || x.Delivery == nil || x.Delivery.DedupeKey != "order-1000000" {
		t.Errorf("order: %+v", x)
	}
	ev.Source = "pos"
	if x := set.Explain(ev)[0]; x.Outcome != Skipped || x.Reason != `source "pos" is not in on.sources [shop]` {
		t.Errorf("other source: %+v", x)
	}
}

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"orders.paid", "orders.paid", true},
		{"orders.paid", "orders.paid.eu", false},
		{"orders.paid.eu", "orders.paid", false},
		{"orders.*", "orders.paid", true},
		{"orders.*", "orders.paid.eu", false},
		{"orders.*.paid", "orders.eu.paid", true},
		{"orders.>", "orders.eu.paid", true},
		{"orders.>", "orders", false},
		{">", "a", true},
		{"*", "a.b", false},
		{"a.b", "", false},
	}
	for _, tc := range tests {
		if got := SubjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", tc.pattern, tc.subject, got, tc.want)
		}
	}
}

// TestIndexAgreesWithFilters compares the index with a plain check of every
// rule's filters over random rules and events.
func TestIndexAgreesWithFilters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tokens := []string{"a", "b", "c"}
	subjectOf := func(wild bool) string {
		n := 1 + rng.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = tokens[rng.IntN(len(tokens))]
			if wild && rng.IntN(4) == 0 {
				parts[i] = "*"
			}
		}
		if wild && rng.IntN(5) == 0 {
			parts[n-1] = ">"
		}
		return strings.Join(parts, ".")
	}
	sources := []string{"s1", "s2", "s3"}
	var rules []*Rule
	for i := range 300 {
		r := &Rule{Name: fmt.Sprint(i)}
		for range rng.IntN(3) {
			r.Subjects = append(r.Subjects, subjectOf(true))
		}
		for range rng.IntN(3) {
			r.Sources = append(r.Sources, sources[rng.IntN(len(sources))])
		}
		rules = append(rules, r)
	}
	x := newIndex(rules)
	for range 2000 {
		source, subject := sources[rng.IntN(len(sources))], subjectOf(false)
		if rng.IntN(10) == 0 {
			subject = ""
		}
		var want []int
		for i, r := range rules {
			okSubject := len(r.Subjects) == 0 || slices.ContainsFunc(r.Subjects, func(p string) bool { return SubjectMatches(p, subject) })
			if okSubject && admitsSource(r, source) {
				want = append(want, i)
			}
		}
		got := x.candidates(source, subject, nil)
		if !slices.Equal(got, want) {
			t.Fatalf("candidates(%q, %q) = %v, want %v", source, subject, got, want)
		}
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	set := mustLoad(t, "testdata/render/rules.yaml")
	ev := readEvent(t, "testdata/render/order.event.json")
	want := set.Evaluate(ev).Deliveries[0].Message.Body
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 200 {
				res := set.Evaluate(ev)
				if len(res.Deliveries) != 1 || res.Deliveries[0].Message.Body != want {
					errs <- fmt.Sprintf("%+v", res)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestRenderRecipientsAndCreatedAt(t *testing.T) {
	src := `rules:
  - name: r
    message:
      type: email
      from: "1"
      to: [{type: user, user_id: '{{ .event.user }}'}, {type: contact, email: '{{ .event.email }}'}]
      cc: {type: lead, id: '{{ .event.lead }}'}
      bcc: [{type: user, email: audit@example.com}]
      subject: Hi
      body: <p>Hi</p>
      created_at: CREATED
`
	evTime := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		created string
		at      any // the event's "at"; nil: none
		want    int64
		wantErr string
	}{
		{"event", nil, evTime.Unix(), ""},
		{"'{{ .event.at }}'", int64(1700000000), 1700000000, ""},
		{"'{{ .event.at }}'", "2025-01-02T03:04:05Z", time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Unix(), ""},
		{"'{{ .event.at }}'", "yesterday", 0, `r.yaml:11:20: message.created_at: "yesterday" is neither unix seconds nor an RFC 3339 time`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.created, " ", tt.at), func(t *testing.T) {
			set, err := Parse([]File{{Name: "r.yaml", Data: []byte(strings.Replace(src, "CREATED", tt.created, 1))}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			data := map[string]any{"user": "u-1", "email": "a@example.com", "lead": "l-1"}
			if tt.at != nil {
				data["at"] = tt.at
			}
			res := set.Evaluate(&Event{ID: "e1", Source: "s", Time: evTime, Data: data})
			if tt.wantErr != "" {
				if len(res.Errors) != 1 || res.Errors[0].Err.Error() != tt.wantErr {
					t.Fatalf("errors %v, want %s", res.Errors, tt.wantErr)
				}
				return
			}
			if len(res.Deliveries) != 1 {
				t.Fatalf("deliveries %v, errors %v", res.Deliveries, res.Errors)
			}
			m := res.Deliveries[0].Message
			wantTo := []Recipient{{Type: "user", UserID: "u-1"}, {Type: "contact", Email: "a@example.com"}}
			if !slices.Equal(m.To, wantTo) || !slices.Equal(m.Cc, []Recipient{{Type: "lead", ID: "l-1"}}) ||
				!slices.Equal(m.Bcc, []Recipient{{Type: "user", Email: "audit@example.com"}}) {
				t.Errorf("recipients to %v cc %v bcc %v", m.To, m.Cc, m.Bcc)
			}
			if m.CreatedAt != tt.want {
				t.Errorf("created_at %d, want %d", m.CreatedAt, tt.want)
			}
		})
	}
}

// A message stored by an earlier version has one recipient under "to".
func TestMessageReadsASingleRecipient(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`{"message_type":"inapp","body":"b","from":{"type":"admin","id":"1"},"to":{"type":"user","user_id":"u-1"}}`, "user user_id u-1"},
		{`{"message_type":"inapp","body":"b","from":{"type":"admin","id":"1"},"to":[{"type":"lead","id":"c1"},{"type":"user","email":"a@b.c"}]}`, "lead id c1, user email a@b.c"},
		{`{"message_type":"inapp","body":"b","from":{"type":"admin","id":"1"},"to":null}`, ""},
		{`{"message_type":"inapp","body":"b","from":{"type":"admin","id":"1"}}`, ""},
	} {
		var m Message
		if err := json.Unmarshal([]byte(tt.in), &m); err != nil {
			t.Fatal(err)
		}
		if got := recipientsString(m.To); got != tt.want || m.Body != "b" || m.From.ID != "1" {
			t.Errorf("%s: to %q body %q from %q", tt.in, got, m.Body, m.From.ID)
		}
	}
	for _, in := range []string{`{"to":{"type":1}}`, `{"to":[{"type":1}]}`, `{"to":"u-1"}`} {
		var m Message
		if err := json.Unmarshal([]byte(in), &m); err == nil || !strings.Contains(err.Error(), "to: ") {
			t.Errorf("%s: %v, want an error about to", in, err)
		}
	}
}

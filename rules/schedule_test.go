package rules

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// Quiet hours move a message to the next end of the window, by the clock
// of the zone, on days the clock changes too. 2026's changes: Berlin
// skips 02:00-03:00 on March 29 (at 01:00Z) and repeats 02:00-03:00 on
// October 25 (at 01:00Z); New York skips 02:00-03:00 on March 8 (at 07:00Z)
// and repeats 01:00-02:00 on November 1 (at 06:00Z).
func TestQuietHours(t *testing.T) {
	tests := []struct {
		name      string
		zone      string
		from, to  string
		due, want string
	}{
		{"outside the window", "Europe/Berlin", "21:00", "08:00", "2026-03-14T12:00:00Z", "2026-03-14T12:00:00Z"},
		{"in the evening, to the next morning", "Europe/Berlin", "21:00", "08:00", "2026-03-14T21:30:00Z", "2026-03-15T07:00:00Z"},
		{"in the early morning, to that morning", "Europe/Berlin", "21:00", "08:00", "2026-03-15T05:00:00Z", "2026-03-15T07:00:00Z"},
		{"at the window's start", "Europe/Berlin", "21:00", "08:00", "2026-03-14T20:00:00Z", "2026-03-15T07:00:00Z"},
		{"at the window's end", "Europe/Berlin", "21:00", "08:00", "2026-03-15T07:00:00Z", "2026-03-15T07:00:00Z"},
		{"a minute before the end", "Europe/Berlin", "21:00", "08:00", "2026-03-15T06:59:59Z", "2026-03-15T07:00:00Z"},
		{"a window within a day", "Europe/Berlin", "09:00", "17:00", "2026-03-29T07:30:00Z", "2026-03-29T15:00:00Z"},

		{"Berlin spring: over the night the clock skips an hour", "Europe/Berlin", "21:00", "08:00", "2026-03-28T21:00:00Z", "2026-03-29T06:00:00Z"},
		{"Berlin spring: the end is in the skipped hour", "Europe/Berlin", "22:00", "02:30", "2026-03-28T22:00:00Z", "2026-03-29T01:00:00Z"},
		{"Berlin spring: the window is all in the skipped hour", "Europe/Berlin", "02:15", "02:45", "2026-03-29T00:50:00Z", "2026-03-29T00:50:00Z"},
		{"Berlin spring: just after the skipped hour", "Europe/Berlin", "02:15", "02:45", "2026-03-29T01:00:00Z", "2026-03-29T01:00:00Z"},
		{"Berlin spring: from before the skipped hour to inside it", "Europe/Berlin", "01:30", "02:30", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"},
		{"Berlin autumn: over the night the clock repeats an hour", "Europe/Berlin", "21:00", "08:00", "2026-10-24T20:00:00Z", "2026-10-25T07:00:00Z"},
		{"Berlin autumn: the end is in the doubled hour, its first reading", "Europe/Berlin", "22:00", "02:30", "2026-10-24T21:00:00Z", "2026-10-25T00:30:00Z"},
		{"Berlin autumn: inside the doubled hour, first pass", "Europe/Berlin", "02:00", "02:30", "2026-10-25T00:10:00Z", "2026-10-25T00:30:00Z"},
		{"Berlin autumn: inside the doubled hour, second pass", "Europe/Berlin", "02:00", "02:30", "2026-10-25T01:10:00Z", "2026-10-25T01:30:00Z"},

		{"New York spring: over the night", "America/New_York", "21:00", "08:00", "2026-03-08T02:00:00Z", "2026-03-08T12:00:00Z"},
		{"New York spring: the end is in the skipped hour", "America/New_York", "23:00", "02:30", "2026-03-08T05:00:00Z", "2026-03-08T07:00:00Z"},
		{"New York autumn: the end is in the doubled hour, its first reading", "America/New_York", "00:00", "01:30", "2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z"},
		{"New York autumn: inside the doubled hour, second pass", "America/New_York", "01:00", "01:30", "2026-11-01T06:10:00Z", "2026-11-01T06:30:00Z"},
		{"New York autumn: over the night", "America/New_York", "22:00", "07:00", "2026-11-01T03:00:00Z", "2026-11-01T12:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from, err1 := parseClock(tc.from)
			to, err2 := parseClock(tc.to)
			loc, err3 := loadZone(tc.zone)
			if err := errors.Join(err1, err2, err3); err != nil {
				t.Fatal(err)
			}
			q := &quietHours{from: from, to: to}
			due := utc(tc.due)
			got := q.next(due, loc)
			if !got.Equal(utc(tc.want)) {
				t.Errorf("due %s (%s): got %s (%s), want %s", due.In(loc), tc.due, got.UTC().Format(time.RFC3339), got.In(loc), tc.want)
			}
			if got.Before(due) {
				t.Errorf("moved earlier than due")
			}
			if again := q.next(got, loc); !again.Equal(got) {
				t.Errorf("%s is still in quiet hours: next gives %s", got.In(loc), again.In(loc))
			}
		})
	}
}

func TestParseClock(t *testing.T) {
	for s, want := range map[string]int{"00:00": 0, "08:00": 480, "21:30": 1290, "23:59": 1439} {
		if got, err := parseClock(s); err != nil || got != want {
			t.Errorf("parseClock(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "8:00", "24:00", "12:60", "12:5", "12-00", "+1:00", "12:00:00", " 12:00"} {
		if _, err := parseClock(s); err == nil {
			t.Errorf("parseClock(%q) accepted", s)
		}
	}
}

// FuzzParseClock: a clock it accepts prints back as it was written.
func FuzzParseClock(f *testing.F) {
	for _, s := range []string{"08:00", "23:59", "24:00", "8:0", "+1:-1", "١٢:٠٠"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseClock(s)
		if err != nil {
			return
		}
		if m < 0 || m >= 24*60 || formatClock(m) != s {
			t.Fatalf("parseClock(%q) = %d, which prints as %q", s, m, formatClock(m))
		}
	})
}

// scheduled is a rule with the given schedule lines (at column 7) and an
// in-app message.
func scheduled(lines ...string) []string {
	return []string{inapp("hi"), "schedule:\n      " + strings.Join(lines, "\n      ")}
}

func TestSchedules(t *testing.T) {
	evTime := utc("2026-03-14T20:30:00Z") // 21:30 in Berlin
	tests := []struct {
		name string
		rule []string
		data string
		want *Schedule // nil: sent at once
		err  string    // part of the error, when the rule must fail
	}{
		{"a delay after the event, keyed by the dedupe key", scheduled("delay: 2h"), `{}`,
			&Schedule{At: utc("2026-03-14T22:30:00Z"), Key: "shop:e1"}, ""},
		{"a key of its own", scheduled("delay: 2h", "key: '{{ .event.user }}'"), `{"user": "u-42"}`,
			&Schedule{At: utc("2026-03-14T22:30:00Z"), Key: "u-42"}, ""},
		{"at, from the event", scheduled("at: '{{ .event.ends_at }}'"), `{"ends_at": "2026-04-01T09:00:00+02:00"}`,
			&Schedule{At: utc("2026-04-01T07:00:00Z"), Key: "shop:e1"}, ""},
		{"at in unix seconds, with an offset", scheduled("at: '{{ .event.ends_at }}'", "offset: -48h"), `{"ends_at": 1775034000}`,
			&Schedule{At: utc("2026-03-30T09:00:00Z"), Key: "shop:e1"}, ""},
		{"at in the past stays as it is", scheduled("at: '{{ .event.ends_at }}'"), `{"ends_at": "2026-01-01T00:00:00Z"}`,
			&Schedule{At: utc("2026-01-01T00:00:00Z"), Key: "shop:e1"}, ""},
		{"quiet hours in a literal zone", scheduled("delay: 1h", "quiet_hours: {from: '21:00', to: '08:00', timezone: Europe/Berlin}"), `{}`,
			&Schedule{At: utc("2026-03-15T07:00:00Z"), Key: "shop:e1"}, ""},
		{"quiet hours in the event's zone", scheduled("delay: 1h", `quiet_hours: {from: '21:00', to: '08:00', timezone: '{{ .event.tz | default "UTC" }}'}`), `{"tz": "America/New_York"}`,
			&Schedule{At: utc("2026-03-14T21:30:00Z"), Key: "shop:e1"}, ""},
		{"quiet hours in the default zone", scheduled("delay: 1h", `quiet_hours: {from: '21:00', to: '08:00', timezone: '{{ .event.tz | default "UTC" }}'}`), `{}`,
			&Schedule{At: utc("2026-03-15T08:00:00Z"), Key: "shop:e1"}, ""},
		{"a throttle as well", append(scheduled("delay: 2h"), "throttle: {key: k, per: 24h}"), `{}`,
			&Schedule{At: utc("2026-03-14T22:30:00Z"), Key: "shop:e1"}, ""},

		{"an unknown zone", scheduled("delay: 1h", "quiet_hours: {from: '21:00', to: '08:00', timezone: '{{ .event.tz }}'}"), `{"tz": "Mars/Olympus"}`,
			nil, `r.yaml:6:60: schedule.quiet_hours.timezone: unknown time zone "Mars/Olympus"`},
		{"the machine's zone is no zone", scheduled("delay: 1h", "quiet_hours: {from: '21:00', to: '08:00', timezone: '{{ .event.tz }}'}"), `{"tz": "Local"}`,
			nil, `unknown time zone "Local"`},
		{"at that is no time", scheduled("at: '{{ .event.ends_at }}'"), `{"ends_at": "next tuesday"}`,
			nil, `r.yaml:5:12: schedule.at: "next tuesday" is neither an RFC 3339 time nor unix seconds`},
		{"at missing", scheduled("at: '{{ .event.ends_at }}'"), `{}`,
			nil, `schedule.at: .event.ends_at: no field "ends_at"`},
		{"a key that renders empty", scheduled("delay: 1h", "key: '{{ .event.user }}'"), `{"user": ""}`,
			nil, "schedule.key rendered empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := oneRule(t, tc.rule...)
			data, err := DecodeJSON([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			res := s.Evaluate(&Event{ID: "e1", Source: "shop", Time: evTime, Data: data})
			if tc.err != "" {
				if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), tc.err) {
					t.Fatalf("errors %v, want one containing %q", res.Errors, tc.err)
				}
				return
			}
			if len(res.Errors) != 0 || len(res.Deliveries) != 1 {
				t.Fatalf("got %+v", res)
			}
			got := res.Deliveries[0].Schedule
			if got == nil || !got.At.Equal(tc.want.At) || got.Key != tc.want.Key {
				t.Errorf("schedule %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A message may not wait longer than the events stream keeps events.
func TestScheduleMaxDelay(t *testing.T) {
	opts := Options{MaxDelay: 72 * time.Hour}
	_, err := Parse([]File{{Name: "r.yaml", Data: []byte(rule(scheduled("delay: 96h")...))}}, opts)
	if want := "r.yaml:5:14: schedule.delay 96h is longer than the events stream keeps an event (nats.events.max_age 72h0m0s)"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
	set, err := Parse([]File{{Name: "r.yaml", Data: []byte(rule(scheduled("at: '{{ .event.at }}'")...))}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{ID: "e", Time: utc("2026-03-01T00:00:00Z"), Data: map[string]any{"at": "2026-03-05T00:00:00Z"}}
	res := set.Evaluate(ev)
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "r.yaml:5:7: schedule: the message would wait until 2026-03-05T00:00:00Z, longer after the event than the events stream keeps it") {
		t.Errorf("errors %v", res.Errors)
	}
	ev.Data = map[string]any{"at": "2026-03-04T00:00:00Z"}
	if res := set.Evaluate(ev); len(res.Errors) != 0 || len(res.Deliveries) != 1 {
		t.Errorf("72h: %+v", res)
	}
}

// cancelRules are a waiting rule that listens on shop only, with two
// cancel_on entries, and a rule without a schedule.
const cancelRules = `rules:
  - name: nudge
    on: {sources: [shop]}
    when: event.type == "signed_up"
    message: {type: inapp, from: '1', to: {type: user, user_id: '{{ .event.user }}'}, body: hi}
    schedule:
      delay: 24h
      key: '{{ .event.user }}'
      cancel_on:
        - {when: 'event.type == "activated"', key: '{{ .event.user }}'}
        - {when: 'event.type == "deleted" && event.hard', key: '{{ .event.account.owner }}'}
  - name: plain
    on: {sources: [shop]}
    message: {type: inapp, from: '1', to: {type: user, id: x}, body: hi}
`

// Every event is checked against every cancel_on, whatever the rule's own
// on: and when.
func TestCancels(t *testing.T) {
	set, err := Parse([]File{{Name: "r.yaml", Data: []byte(cancelRules)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, source, data string
		want               []Cancel
		err                string
	}{
		{"the event that schedules cancels nothing", "shop", `{"type": "signed_up", "user": "u-1"}`, nil, ""},
		{"an event of another source cancels", "app", `{"type": "activated", "user": "u-1"}`, []Cancel{{"nudge", "u-1"}}, ""},
		{"the second entry", "app", `{"type": "deleted", "hard": true, "account": {"owner": "u-2"}}`, []Cancel{{"nudge", "u-2"}}, ""},
		{"a condition that fails is an error", "app", `{"type": "deleted"}`, nil,
			"rule nudge: r.yaml:11:19: schedule.cancel_on[1].when: the condition gave nil (a missing field?), not true or false"},
		{"a key that fails is an error", "app", `{"type": "activated"}`, nil,
			`rule nudge: r.yaml:10:62: schedule.cancel_on[0].key: .event.user: no field "user"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := DecodeJSON([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			ev := &Event{ID: "e", Source: tc.source, Time: utc("2026-03-01T00:00:00Z"), Data: data}
			res := set.Evaluate(ev)
			if !slices.Equal(res.Cancels, tc.want) {
				t.Errorf("cancels %v, want %v", res.Cancels, tc.want)
			}
			var errs []string
			for _, e := range res.Errors {
				errs = append(errs, e.Error())
			}
			if tc.err == "" && len(errs) != 0 || tc.err != "" && (len(errs) != 1 || errs[0] != tc.err) {
				t.Errorf("errors %q, want %q", errs, tc.err)
			}
			// Explain tells the same.
			for _, x := range set.Explain(ev) {
				if x.Rule == "nudge" && (!slices.Equal(x.Cancels, tc.want) || (x.CancelErr != nil) != (tc.err != "")) {
					t.Errorf("explain: cancels %v, error %v", x.Cancels, x.CancelErr)
				}
			}
		})
	}
}

func TestExplainSaysWhenAMessageGoesOut(t *testing.T) {
	tests := []struct {
		name string
		rule []string
		want string
	}{
		{"a delay", scheduled("delay: 2h"), "waits until 2026-03-14T22:30:00Z"},
		{"quiet hours", scheduled("delay: 1h", "quiet_hours: {from: '21:00', to: '08:00', timezone: Europe/Berlin}"),
			"waits until 2026-03-15T07:00:00Z (due 2026-03-14T21:30:00Z, in quiet hours 21:00-08:00 Europe/Berlin)"},
		{"a time in the past", scheduled("at: '2026-01-01T00:00:00Z'"), "sent at once: its time, 2026-01-01T00:00:00Z, is not after the event's"},
		{"no schedule", []string{inapp("hi")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := oneRule(t, tc.rule...).Explain(&Event{ID: "e", Time: utc("2026-03-14T20:30:00Z")})
			if x[0].Outcome != Matched || x[0].Wait != tc.want {
				t.Errorf("outcome %s, wait %q; want %q", x[0].Outcome, x[0].Wait, tc.want)
			}
		})
	}
}

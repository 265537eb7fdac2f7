package console

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

func TestHistoryIsBounded(t *testing.T) {
	h := NewHistory()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var at time.Time
	for i := range 3 * outcomeSlots { // three hours of samples, 6 sends a sample
		at = start.Add(time.Duration(i) * SampleEvery)
		h.Add(Sample{At: at, Outcomes: map[string]float64{"sent": float64(6 * i)},
			Rules: map[string]RuleCounts{"r": {Matches: float64(i), Sent: float64(i)}}})
	}
	if len(h.outcomes) != outcomeSlots || len(h.rules) > ruleSlots {
		t.Fatalf("kept %d outcome and %d rule samples", len(h.outcomes), len(h.rules))
	}
	now := Sample{At: at, Outcomes: map[string]float64{"sent": float64(6 * (3*outcomeSlots - 1))},
		Rules: map[string]RuleCounts{"r": {Matches: float64(3*outcomeSlots - 1)}}}
	series := h.Rates([]string{"sent", "dead_letter"}, now)
	if len(series) != 1 || series[0].Outcome != "sent" {
		t.Fatalf("series: %+v", series)
	}
	for _, p := range series[0].Points {
		if p.PerMinute != 36 && p.PerMinute != 0 { // 6 per 10 s; the last point is "now" again
			t.Fatalf("rate %v at %v", p.PerMinute, p.At)
		}
	}
	// An hour of minute samples: 60 minutes of 6 matches a minute.
	if got := h.LastHour("r", now).Matches; got < 350 || got > 366 {
		t.Errorf("matches in the last hour: %v", got)
	}
	if !strings.Contains(string(chart(series, at)), "<polyline") {
		t.Error("no line in the chart")
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0.3: 0.5, 1: 1, 7: 10, 12: 20, 4000: 5000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestAuthAndCSRF(t *testing.T) {
	a := Auth{Bearer: "tok", User: "ops", Password: "pw"}
	ok := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct {
		name   string
		set    func(*http.Request)
		status int
	}{
		{"none", func(*http.Request) {}, 401},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }, 200},
		{"wrong bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer to") }, 401},
		{"basic", func(r *http.Request) { r.SetBasicAuth("ops", "pw") }, 200},
		{"wrong user", func(r *http.Request) { r.SetBasicAuth("op", "pw") }, 401},
	} {
		r := httptest.NewRequest("GET", "/console/", nil)
		tc.set(r)
		w := httptest.NewRecorder()
		ok.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		}
		if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: no basic challenge for the browser", tc.name)
		}
	}
	c, other := newCSRF(), newCSRF()
	if c.token("basic:ops") == c.token("bearer") || c.token("") == other.token("") {
		t.Error("tokens do not depend on the identity and the process")
	}
}

// A dead letter that left its payload out says what, and where it is.
func TestDeadLetterPageShowsOmitted(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	e := dlq.Entry{Seq: 9, DeadLetter: pipeline.DeadLetter{Reason: pipeline.ReasonRender, Rule: "paid", Error: "boom",
		Omitted: &pipeline.Omitted{What: "event", Bytes: 1048700, Stream: "BRIDGE_EVENTS", Seq: 17}}}
	var buf bytes.Buffer
	if err := pages["deadletter"].ExecuteTemplate(&buf, "layout", page{Nav: "deadletter", Data: deadLetterData{Entry: e}}); err != nil {
		t.Fatal(err)
	}
	want := "<dt>left out</dt><dd>the event: with it the dead letter would have been 1048700 bytes, more than the NATS server takes (max_payload); it is stored in BRIDGE_EVENTS at sequence 17, for as long as that stream keeps it</dd>"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("the page lacks %q:\n%s", want, buf.String())
	}
}

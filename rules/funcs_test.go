package rules

import (
	"strings"
	"testing"
	"time"
)

func TestTemplateHelpers(t *testing.T) {
	tests := []struct {
		tmpl string
		data string
		want string
	}{
		{`{{ .event.s | upper }}`, `{"s": "abc"}`, "ABC"},
		{`{{ .event.s | lower }}`, `{"s": "ÀBC"}`, "àbc"},
		{`{{ .event.s | title }}`, `{"s": "ada lovelace-byron"}`, "Ada Lovelace-Byron"},
		{`[{{ .event.s | trim }}]`, `{"s": "  x \n"}`, "[x]"},
		{`{{ .event.s | truncate 5 }}`, `{"s": "abcdefgh"}`, "abcd…"},
		{`{{ .event.s | truncate 5 }}`, `{"s": "abcde"}`, "abcde"},
		{`{{ .event.s | truncate 3 }}`, `{"s": "żółwik"}`, "żó…"},
		{`{{ .event.l | join ", " }}`, `{"l": ["a", 1, 2.5, true]}`, "a, 1, 2.5, true"},
		{`{{ .event.n | upper }}`, `{"n": 12}`, "12"},
		{`{{ date "date" .event.t }}`, `{"t": 1767225600}`, "2026-01-01"},
		{`{{ date "rfc3339" .event.t }}`, `{"t": "2026-01-01T10:00:00+02:00"}`, "2026-01-01T08:00:00Z"},
		{`{{ date "2 Jan 2006 15:04" .event.t }}`, `{"t": 1767225600.5}`, "1 Jan 2026 00:00"},
		{`{{ date "long" .event.t }}`, `{"t": "1767225600"}`, "January 1, 2026"},
		{`{{ dateIn "Europe/Paris" "datetime" .event.t }}`, `{"t": 1767225600}`, "2026-01-01 01:00"},
		{`{{ date "date" .time }}`, `{}`, "2026-03-01"},
		{`{{ money .event.a "USD" }}`, `{"a": 1234567.891}`, "$1,234,567.89"},
		{`{{ money .event.a .event.c }}`, `{"a": "99.5", "c": "eur"}`, "€99.50"},
		{`{{ money .event.a "JPY" }}`, `{"a": 1500}`, "¥1,500"},
		{`{{ money .event.a "SEK" }}`, `{"a": -12}`, "-12.00 SEK"},
		{`{{ money .event.a "KWD" }}`, `{"a": 1.5}`, "1.500 KWD"},
		{`{{ moneyMinor .event.a "USD" }}`, `{"a": 123456}`, "$1,234.56"},
		{`{{ moneyMinor .event.a "JPY" }}`, `{"a": 500}`, "¥500"},
		{`{{ json .event.o }}`, `{"o": {"b": [1, "x<y"], "a": null}}`, `{"a":null,"b":[1,"x<y"]}`},
		{`{{ .event.missing | default 0 }}`, `{}`, "0"},
		{`[{{ .event.n }}]`, `{"n": null}`, "[]"},
		{`{{ .event.f }}`, `{"f": 1234567.5}`, "1234567.5"},
		{`{{ .headers.h | default "none" }}`, `{}`, "none"},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			s := oneRule(t, `message: {type: email, from: "1", to: {type: user, id: x}, subject: '`+strings.ReplaceAll(tc.tmpl, "'", "''")+`', body: b}`)
			data, err := DecodeJSON([]byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			res := s.Evaluate(&Event{ID: "e", Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Data: data})
			if len(res.Errors) > 0 || len(res.Deliveries) != 1 {
				t.Fatalf("got %+v %v", res.Deliveries, res.Errors)
			}
			if got := res.Deliveries[0].Message.Subject; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTemplateHelperErrors(t *testing.T) {
	tests := []struct {
		tmpl, data, want string
	}{
		{`{{ money .event.a "USD" }}`, `{"a": "ten"}`, `money: "ten" is not a number`},
		{`{{ money .event.a "dollars" }}`, `{"a": 1}`, `money: currency must be a 3-letter ISO 4217 code, got "dollars"`},
		{`{{ date "date" .event.t }}`, `{"t": "yesterday"}`, `date: "yesterday" is neither RFC 3339 nor unix seconds`},
		{`{{ dateIn "Mars/Olympus" "date" .event.t }}`, `{"t": 1}`, `dateIn: unknown time zone "Mars/Olympus"`},
		{`{{ .event.s | join ", " }}`, `{"s": "abc"}`, `join: want a list, got string`},
		{`{{ .event.s | truncate 0 }}`, `{"s": "abc"}`, `truncate: length must be at least 1, got 0`},
	}
	for _, tc := range tests {
		t.Run(tc.tmpl, func(t *testing.T) {
			s := oneRule(t, `message: {type: email, from: "1", to: {type: user, id: x}, subject: '`+tc.tmpl+`', body: b}`)
			data, _ := DecodeJSON([]byte(tc.data))
			res := s.Evaluate(&Event{ID: "e", Data: data})
			if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), tc.want) {
				t.Errorf("want an error containing %q, got %+v", tc.want, res)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"i": 42, "f": 1.5, "big": 1e300, "l": [1, {"x": 2}]}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["i"] != int64(42) || m["f"] != 1.5 || m["big"] != 1e300 || m["l"].([]any)[1].(map[string]any)["x"] != int64(2) {
		t.Errorf("got %#v", m)
	}
	for _, bad := range []string{``, `{`, `{} {}`, `{"a": 1,}`} {
		if _, err := DecodeJSON([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

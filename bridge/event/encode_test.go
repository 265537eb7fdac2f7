package event

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// marshalled is what encoding/json writes for e, without HTML escaping
// (which JSON does not need): the output appendJSON must match.
func marshalled(t testing.TB, e *Envelope) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestEnvelopeJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 16, 4, 5, 120000000, time.UTC)
	for _, tc := range []struct {
		name string
		env  Envelope
	}{
		{"plain", Envelope{ID: "e-1", Source: "shop", Subject: "bridge.in.shop", Time: at, Data: json.RawMessage(`{"a":1}`)}},
		{"type and headers", Envelope{ID: "e-2", Source: "s", Subject: "x", Type: "order.paid", Time: at,
			Headers: map[string]string{"z-last": "1", "a-first": "2", "content-type": "application/json"}, Data: json.RawMessage(`[1,2]`)}},
		{"no data", Envelope{ID: "e-3", Source: "s", Subject: "x", Time: at}},
		{"escapes", Envelope{ID: "quote\" backslash\\ nl\n cr\r tab\t nul\x00 bell\x07 bs\b ff\f del\x7f", Source: "<s>&", Subject: "x",
			Time: at, Headers: map[string]string{"h\u2028": "\u2029 é 日本"}, Data: json.RawMessage(`"<&>"`)}},
		{"invalid UTF-8", Envelope{ID: "a\xffb\xc3", Source: "s", Subject: "\xe2\x82", Time: at, Data: json.RawMessage(`null`)}},
		{"zero time", Envelope{ID: "e", Source: "s", Subject: "x", Data: json.RawMessage(`{}`)}},
		{"zone", Envelope{ID: "e", Source: "s", Subject: "x", Time: at.In(time.FixedZone("x", -3*3600)), Data: json.RawMessage(`{}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.env.appendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := marshalled(t, &tc.env); !bytes.Equal(got, want) {
				t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestEnvelopeJSONRefusesAYearJSONCannotWrite(t *testing.T) {
	e := Envelope{ID: "e", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Data: json.RawMessage(`{}`)}
	if _, err := e.appendJSON(nil); err == nil {
		t.Fatal("year 10000 written")
	}
	if _, err := e.Msg("x"); err == nil {
		t.Fatal("Msg stored year 10000")
	}
}

// FuzzEnvelopeJSON checks appendJSON against encoding/json on any strings,
// times and (compact) payloads.
func FuzzEnvelopeJSON(f *testing.F) {
	f.Add("e-1", "shop", "bridge.in.shop", "", "content-type", "application/json", `{"a":1}`, int64(1764600000123456789))
	f.Add("\"\\\n\x00", "<&>", "\u2028", "t", "\xff", "\xc3\x28", `[1,"\u0000"]`, int64(0))
	f.Add("", "", "", "", "", "", ``, int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, id, source, subject, typ, hk, hv, data string, nanos int64) {
		e := Envelope{ID: id, Source: source, Subject: subject, Type: typ, Time: time.Unix(0, nanos).UTC()}
		if hk != "" {
			e.Headers = map[string]string{hk: hv, "x-" + hk: id}
		}
		if data != "" {
			var c bytes.Buffer
			if json.Compact(&c, []byte(data)) != nil {
				return
			}
			e.Data = c.Bytes()
		}
		got, err := e.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalled(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON\n got %q\nwant %q", got, want)
		}
	})
}

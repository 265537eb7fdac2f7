package event

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// marshalled is what encoding/json writes for e, without HTML escaping
// (which JSON does not need): the output appendJSON must match.
func marshalled(t testing.TB, e *Envelope) []byte {
	t.Helper()
	b, err := jsonout.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
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
		// Read back by stage 1: as json.Unmarshal reads it.
		if back, ok := decodeEnvelope(got); ok {
			var want Envelope
			if err := json.Unmarshal(got, &want); err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("%q read back as %#v, json.Unmarshal: %#v, %v", got, back, want, err)
			}
		}
	})
}

func TestDecodeEnvelope(t *testing.T) {
	at := time.Date(2026, 12, 1, 16, 4, 5, 120000000, time.UTC)
	written := func(e Envelope) string {
		b, err := e.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		in   string
		fast bool // read without encoding/json
	}{
		{"written", written(Envelope{ID: "e-1", Source: "shop", Subject: "bridge.in.shop", Type: "t", Time: at,
			Headers: map[string]string{"a": "1", "b": "é"}, Data: json.RawMessage(`{"a":[1,{"b":"}"}]}`)}), true},
		{"no headers, no type", written(Envelope{ID: "e", Source: "s", Subject: "x", Time: at, Data: json.RawMessage(`7`)}), true},
		{"json.Marshal's", string(must(json.Marshal(&Envelope{ID: "e", Source: "s", Subject: "x", Time: at,
			Headers: map[string]string{}, Data: json.RawMessage(`{"x":"y"}`)}))), true},
		{"white space", " {\n \"id\" : \"e\",\t\"source\":\"s\" ,\"subject\":\"x\",\"time\":\"2026-12-01T16:04:05Z\" , \"data\" : [ 1 , 2 ] \r\n} ", true},
		{"no data", written(Envelope{ID: "e", Source: "s", Subject: "x", Time: at}), true},
		{"an escape", written(Envelope{ID: "a\"b", Source: "s", Subject: "x", Time: at, Data: json.RawMessage(`{}`)}), false},
		{"HTML escaped", `{"id":"\u003c","source":"s","subject":"x","time":"2026-12-01T16:04:05Z","data":{}}`, false},
		{"data first", `{"data":{},"id":"e","source":"s","subject":"x","time":"2026-12-01T16:04:05Z"}`, false},
		{"a key twice", `{"id":"a","id":"b","source":"s","subject":"x","time":"2026-12-01T16:04:05Z","data":{}}`, false},
		{"a header twice", `{"id":"a","headers":{"k":"1","k":"2"},"data":{}}`, false},
		{"another key", `{"id":"a","extra":"b","data":{}}`, false},
		{"key in capitals", `{"ID":"a","data":{}}`, false},
		{"null type", `{"id":"a","type":null,"data":{}}`, false},
		{"invalid UTF-8", "{\"id\":\"a\xff\",\"data\":{}}", false},
		{"bad time", `{"id":"a","time":"yesterday","data":{}}`, false},
		{"bad data", `{"id":"a","data":{"x":}}`, false},
		{"data then a key", `{"id":"a","data":1,"source":"s"}`, false},
		{"two objects", `{"id":"a","data":{}}{}`, false},
		{"unclosed", `{"id":"a","data":{"x":1}`, false},
		{"empty", `{}`, false},
		{"not an object", `[]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeEnvelope([]byte(tc.in))
			if ok != tc.fast {
				t.Fatalf("read without encoding/json: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			var want Envelope
			if err := json.Unmarshal([]byte(tc.in), &want); err != nil {
				t.Fatalf("accepted what json.Unmarshal refuses: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decodeEnvelope\n got %#v\nwant %#v", got, want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzDecodeEnvelope checks that what decodeEnvelope reads, json.Unmarshal
// reads the same.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(`{"id":"e-1","source":"shop","subject":"bridge.in.shop","type":"t","time":"2026-12-01T16:04:05.12Z","headers":{"a":"1"},"data":{"a":[1,{"b":"}"}]}}`)
	f.Add(`{"id":"e","source":"s","subject":"x","time":"2026-12-01T16:04:05Z","data":null}`)
	f.Add(` { "id" : "e" , "headers" : { } , "data" : "}" } `)
	f.Add(`{"id":"a","data":1,"source":"s"}`)
	f.Fuzz(func(t *testing.T, in string) {
		got, ok := decodeEnvelope([]byte(in))
		if !ok {
			return
		}
		var want Envelope
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("accepted what json.Unmarshal refuses (%v): %q", err, in)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %#v\nwant %#v", in, got, want)
		}
	})
}

// benchEnvelope is a webhook's envelope as the load tool sends them.
var benchEnvelope = Envelope{ID: "evt-000123", Source: "shop", Subject: "bridge.in.shop", Type: "order.paid",
	Time:    time.Date(2026, 12, 1, 16, 4, 5, 123456789, time.UTC),
	Headers: map[string]string{"content-type": "application/json", "user-agent": "load/1.0"},
	Data:    json.RawMessage(`{"kind":"k3","n":123,"user":"u-123","email":"u-123@example.com","amount":42.5,"items":[{"sku":"a","qty":1}]}`)}

// BenchmarkEnvelopeWrite compares appendJSON with json.Marshal.
func BenchmarkEnvelopeWrite(b *testing.B) {
	b.Run("appendJSON", func(b *testing.B) {
		for b.Loop() {
			if _, err := benchEnvelope.appendJSON(make([]byte, 0, 160+len(benchEnvelope.Data))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&benchEnvelope); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEnvelopeRead compares decodeEnvelope with json.Unmarshal.
func BenchmarkEnvelopeRead(b *testing.B) {
	in := must(benchEnvelope.appendJSON(nil))
	b.Run("decodeEnvelope", func(b *testing.B) {
		for b.Loop() {
			if _, ok := decodeEnvelope(in); !ok {
				b.Fatal("not read")
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			var e Envelope
			if err := json.Unmarshal(in, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDecoderReadsEveryEnvelope: what Msg stores, Decode reads back whole,
// by either path, and an envelope an earlier version stored (json.Marshal,
// HTML escaped) too.
func TestDecoderReadsEveryEnvelope(t *testing.T) {
	d := &Decoder{Stream: "EV"}
	at := time.Date(2026, 12, 1, 16, 4, 5, 120000000, time.UTC)
	for _, env := range []*Envelope{
		{ID: "e1", Source: "shop", Subject: "bridge.in.shop", Type: "order.paid", Time: at,
			Headers: map[string]string{"content-type": "application/json"}, Data: json.RawMessage(`{"a":1}`)},
		{ID: `msg_"quoted"\back`, Source: "shop", Subject: "bridge.in.shop", Time: at,
			Headers: map[string]string{"x-note": "tab\there <b>&</b>"}, Data: json.RawMessage("{\n  \"name\": \"Zoë <b>\"\n}")},
	} {
		m, err := env.Msg(env.Subject)
		if err != nil {
			t.Fatal(err)
		}
		old := must(json.Marshal(env)) // as earlier versions stored it
		for name, data := range map[string][]byte{"stored": m.Data, "stored by json.Marshal": old} {
			got, err := d.Decode(m.Subject, m.Header, data, 1, time.Now())
			if err != nil {
				t.Fatalf("%s %s: %v", name, data, err)
			}
			var wantData, gotData any
			if json.Unmarshal(env.Data, &wantData) != nil || json.Unmarshal(got.Data, &gotData) != nil || !reflect.DeepEqual(gotData, wantData) {
				t.Errorf("%s: data %s, want %s", name, got.Data, env.Data)
			}
			want := *env
			got.Data, want.Data = nil, nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("%s:\n got %#v\nwant %#v", name, *got, want)
			}
		}
	}
}

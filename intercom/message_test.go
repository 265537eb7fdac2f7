package intercom

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Intercom's answers differ between API versions; the client reads them all.
func TestDecodeSentMessage(t *testing.T) {
	wash := &Admin{Type: "admin", ID: "394051", Name: "Wash", Email: "wash@serenity.example"}
	tests := []struct {
		name string
		body string
		want SentMessage
	}{
		{
			name: "the seed's answer",
			body: `{"type":"admin_message","id":"2001","created_at":1401916877,"message_type":"email","subject":"Hey",
				"body":"Ponies, cute small horses or something more sinister?","template":"plain",
				"owner":{"email":"wash@serenity.example","id":"394051","name":"Wash","type":"admin"}}`,
			want: SentMessage{Type: "admin_message", ID: "2001", CreatedAt: time.Unix(1401916877, 0), MessageType: "email",
				Subject: "Hey", Body: "Ponies, cute small horses or something more sinister?", Template: "plain", Owner: wash},
		},
		{
			name: "type message, numeric ids, unknown fields",
			body: `{"type":"message","id":2001,"created_at":1401916877,"message_type":"inapp","body":"Hi",
				"conversation_id":null,"owner":{"type":"admin","id":394051,"name":"Wash","email":"wash@serenity.example","away_mode_enabled":false}}`,
			want: SentMessage{Type: "message", ID: "2001", CreatedAt: time.Unix(1401916877, 0), MessageType: "inapp", Body: "Hi", Owner: wash},
		},
		{
			name: "created_at as a string, no owner",
			body: `{"type":"admin_message","id":"7","created_at":"1401916877"}`,
			want: SentMessage{Type: "admin_message", ID: "7", CreatedAt: time.Unix(1401916877, 0)},
		},
		{
			name: "created_at unreadable",
			body: `{"type":"admin_message","id":"7","created_at":"yesterday"}`,
			want: SentMessage{Type: "admin_message", ID: "7"},
		},
		{
			name: "nulls",
			body: `{"type":"admin_message","id":null,"created_at":null,"owner":null}`,
			want: SentMessage{Type: "admin_message"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w wireSentMessage
			if err := json.Unmarshal([]byte(tt.body), &w); err != nil {
				t.Fatal(err)
			}
			if got := w.sentMessage(); !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseUnix(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1401916877", time.Unix(1401916877, 0), true},
		{"1401916877.250", time.UnixMilli(1401916877250), true},
		{"1401916877.2509", time.UnixMilli(1401916877251), true},
		{"", time.Time{}, false},
		{"0", time.Time{}, false},
		{"-5", time.Time{}, false},
		{"1e300", time.Time{}, false},
		{"NaN", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseUnix(tt.in)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("parseUnix(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// BenchmarkDecodeSentMessage measures reading CreateMessage's answer, which
// every send does once.
func BenchmarkDecodeSentMessage(b *testing.B) {
	body := []byte(`{"type":"admin_message","id":"2001","created_at":1401916877,"message_type":"inapp",` +
		`"body":"<p>Your order 12345 has shipped: it arrives on Tuesday.</p>",` +
		`"owner":{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"},"conversation_id":"1002001"}`)
	b.ReportAllocs()
	for b.Loop() {
		var w wireSentMessage
		if err := json.Unmarshal(body, &w); err != nil || w.ID != "2001" {
			b.Fatal(err, w.ID)
		}
	}
}

// An id reads the same by the fast paths as by encoding/json.
func TestFlexString(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{`"2001"`, "2001", false},
		{`2001`, "2001", false},
		{`-1.5e3`, "-1.5e3", false},
		{`null`, "", false},
		{`""`, "", false},
		{`"a\"b"`, `a"b`, false},
		{`"caf\u00e9"`, "café", false},
		{`"café"`, "café", false},
		{"\"\xff\"", "\ufffd", false},
		{`true`, "", true},
		{`{"id":1}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var w struct {
				ID flexString `json:"id"`
			}
			err := json.Unmarshal([]byte(`{"id":`+tt.in+`}`), &w)
			if (err != nil) != tt.err || string(w.ID) != tt.want {
				t.Errorf("id %s: got %q, %v; want %q, error %v", tt.in, w.ID, err, tt.want, tt.err)
			}
		})
	}
}

// FuzzFlexString checks the fast paths against encoding/json: any string
// reads as json.Unmarshal reads it into a string, any number as its text.
func FuzzFlexString(f *testing.F) {
	for _, s := range []string{`"2001"`, `2001`, `-0.5E+7`, `"a\"b"`, `"caf\u00e9"`, "\"\xff\"", `null`, `"\u0000"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		var w struct {
			ID flexString `json:"id"`
		}
		err := json.Unmarshal([]byte(`{"id":`+token+`}`), &w)
		var want struct {
			ID any `json:"id"`
		}
		doc := `{"id":` + token + `}`
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if !json.Valid([]byte(doc)) || dec.Decode(&want) != nil {
			return // not one valid token
		}
		switch v := want.ID.(type) {
		case string:
			if err != nil || string(w.ID) != v {
				t.Errorf("%s: got %q, %v; want %q", token, w.ID, err, v)
			}
		case json.Number:
			if err != nil || string(w.ID) != v.String() {
				t.Errorf("%s: got %q, %v; want %q", token, w.ID, err, v)
			}
		case nil:
			if err != nil || w.ID != "" {
				t.Errorf("%s: got %q, %v; want nothing", token, w.ID, err)
			}
		default:
			if err == nil {
				t.Errorf("%s: got %q, want an error", token, w.ID)
			}
		}
	})
}

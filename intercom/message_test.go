package intercom

import (
	"encoding/json"
	"reflect"
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

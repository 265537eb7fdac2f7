package event

import (
	"errors"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseCloudEvent(t *testing.T) {
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	binary := func(kv ...string) http.Header {
		h := http.Header{
			"Ce-Id":          {"evt-1"},
			"Ce-Source":      {"/shop"},
			"Ce-Specversion": {"1.0"},
			"Ce-Type":        {"order.paid"},
			"Content-Type":   {"application/json"},
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				h.Del(kv[i])
			} else {
				h.Set(kv[i], kv[i+1])
			}
		}
		return h
	}
	when := time.Date(2024, 5, 1, 12, 30, 0, 0, time.UTC)

	tests := []struct {
		name    string
		header  http.Header
		body    string
		wantOK  bool
		want    *CloudEvent
		wantErr string // substring; "" = no error
	}{
		{
			name:   "structured",
			header: structured,
			body: `{"specversion":"1.0","id":"evt-1","source":"/shop","type":"order.paid","subject":"order/42",
				"time":"2024-05-01T12:30:00Z","datacontenttype":"application/json","data":{"order_id":42},"ext":"x"}`,
			wantOK: true,
			want: &CloudEvent{ID: "evt-1", Source: "/shop", SpecVersion: "1.0", Type: "order.paid", Subject: "order/42",
				DataContentType: "application/json", Time: when, Data: []byte(`{"order_id":42}`)},
		},
		{
			name:   "structured with charset and odd case",
			header: http.Header{"Content-Type": {"Application/CloudEvents+JSON; charset=utf-8"}},
			body:   `{"specversion":"1.0","id":"a","source":"s","type":"t","data":[1,2]}`,
			wantOK: true,
			want:   &CloudEvent{ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", Data: []byte(`[1,2]`)},
		},
		{
			name:   "structured without data",
			header: structured,
			body:   `{"specversion":"1.0","id":"a","source":"s","type":"t"}`,
			wantOK: true,
			want:   &CloudEvent{ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", Data: []byte(`null`)},
		},
		{
			name:   "structured with string data",
			header: structured,
			body:   `{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"text/plain","data":"hi"}`,
			wantOK: true,
			want:   &CloudEvent{ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", DataContentType: "text/plain", Data: []byte(`"hi"`)},
		},
		{
			name:   "structured data_base64 holding JSON",
			header: structured,
			body:   `{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"application/json","data_base64":"eyJrIjoxfQ=="}`,
			wantOK: true,
			want:   &CloudEvent{ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", DataContentType: "application/json", Data: []byte(`{"k":1}`)},
		},
		{
			name:   "binary",
			header: binary("Ce-Subject", "order/42", "Ce-Time", "2024-05-01T12:30:00Z"),
			body:   `{"order_id":42}`,
			wantOK: true,
			want: &CloudEvent{ID: "evt-1", Source: "/shop", SpecVersion: "1.0", Type: "order.paid", Subject: "order/42",
				DataContentType: "application/json", Time: when, Data: []byte(`{"order_id":42}`)},
		},
		{
			name:   "binary percent-encoded and +json",
			header: binary("Ce-Source", "https://example.com/a%20b", "Content-Type", "application/vnd.shop+json; charset=utf-8"),
			body:   `[]`,
			wantOK: true,
			want: &CloudEvent{ID: "evt-1", Source: "https://example.com/a b", SpecVersion: "1.0", Type: "order.paid",
				DataContentType: "application/vnd.shop+json; charset=utf-8", Data: []byte(`[]`)},
		},
		{
			name:   "binary without data",
			header: binary("Content-Type", ""),
			body:   ``,
			wantOK: true,
			want:   &CloudEvent{ID: "evt-1", Source: "/shop", SpecVersion: "1.0", Type: "order.paid", Data: []byte(`null`)},
		},

		{name: "plain JSON", header: http.Header{"Content-Type": {"application/json"}}, body: `{"a":1}`},
		{name: "no headers", header: http.Header{}, body: `{"specversion":"1.0"}`},
		{name: "unrelated ce- header", header: http.Header{"Ce-Traceparent": {"x"}}, body: `{}`},

		{name: "structured invalid JSON", header: structured, body: `{"id":`, wantOK: true, wantErr: "invalid JSON"},
		{name: "structured array", header: structured, body: `[{"id":"a"}]`, wantOK: true, wantErr: "must be a JSON object"},
		{name: "structured null", header: structured, body: `null`, wantOK: true, wantErr: "must be a JSON object"},
		{name: "structured missing attributes", header: structured, body: `{"specversion":"1.0","source":"s"}`, wantOK: true, wantErr: "missing required attributes: id, type"},
		{name: "structured empty id", header: structured, body: `{"specversion":"1.0","id":"","source":"s","type":"t"}`, wantOK: true, wantErr: "missing required attributes: id"},
		{name: "structured numeric id", header: structured, body: `{"specversion":"1.0","id":7,"source":"s","type":"t"}`, wantOK: true, wantErr: "attribute id must be a string"},
		{name: "structured old specversion", header: structured, body: `{"specversion":"0.3","id":"a","source":"s","type":"t"}`, wantOK: true, wantErr: `specversion must be "1.0"`},
		{name: "structured bad time", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","time":"yesterday"}`, wantOK: true, wantErr: "RFC 3339"},
		{name: "structured data and data_base64", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","data":1,"data_base64":"MQ=="}`, wantOK: true, wantErr: "both data and data_base64"},
		{name: "structured data_base64 not JSON", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":"aGVsbG8="}`, wantOK: true, wantErr: "data_base64 does not hold JSON"},
		{name: "structured data_base64 binary type", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"image/png","data_base64":"MQ=="}`, wantOK: true, wantErr: "only supported with a JSON datacontenttype"},
		{name: "structured data_base64 bad base64", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":"!!"}`, wantOK: true, wantErr: "not valid base64"},
		{name: "structured data_base64 not a string", header: structured, body: `{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":5}`, wantOK: true, wantErr: "data_base64 must be a string"},
		{name: "batch", header: http.Header{"Content-Type": {"application/cloudevents-batch+json"}}, body: `[]`, wantOK: true, wantErr: "a batch holds several events"},

		{name: "binary missing type", header: binary("Ce-Type", ""), body: `{}`, wantOK: true, wantErr: "missing required attributes: type"},
		{name: "binary only specversion", header: http.Header{"Ce-Specversion": {"1.0"}}, body: `{}`, wantOK: true, wantErr: "missing required attributes: id, source, type"},
		{name: "binary wrong specversion", header: binary("Ce-Specversion", "0.3"), body: `{}`, wantOK: true, wantErr: `specversion must be "1.0"`},
		{name: "binary text body", header: binary("Content-Type", "text/plain"), body: `hello`, wantOK: true, wantErr: "needs a JSON body"},
		{name: "binary no content type", header: binary("Content-Type", ""), body: `{}`, wantOK: true, wantErr: "needs a JSON body"},
		{name: "binary invalid JSON", header: binary(), body: `{"a":`, wantOK: true, wantErr: "body is not valid JSON"},
		{name: "binary bad percent-encoding", header: binary("Ce-Id", "a%zz"), body: `{}`, wantOK: true, wantErr: "ce-id header has an invalid percent-encoding"},
		{name: "binary invalid UTF-8", header: binary("Ce-Subject", "%ff"), body: `{}`, wantOK: true, wantErr: "ce-subject header is not valid UTF-8"},
		{name: "binary bad time", header: binary("Ce-Time", "2024-05-01"), body: `{}`, wantOK: true, wantErr: "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ce, ok, err := ParseCloudEvent(tt.header, []byte(tt.body))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (err %v)", ok, tt.wantOK, err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if ce != nil {
					t.Errorf("event = %+v, want nil with an error", ce)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if !reflect.DeepEqual(ce, tt.want) {
				t.Errorf("event =\n  %+v (data %s)\nwant\n  %+v (data %s)", ce, dataOf(ce), tt.want, dataOf(tt.want))
			}
		})
	}
}

func dataOf(ce *CloudEvent) string {
	if ce == nil {
		return "<nil>"
	}
	return string(ce.Data)
}

func TestParseCloudEventBatch(t *testing.T) {
	ev := func(id string) string {
		return `{"specversion":"1.0","id":"` + id + `","source":"/s","type":"t","data":{"n":1}}`
	}
	tests := []struct {
		name    string
		body    string
		ids     []string
		wantErr string
	}{
		{"two events", "[" + ev("a") + "," + ev("b") + "]", []string{"a", "b"}, ""},
		{"empty", "[]", []string{}, ""},
		{"an object, not an array", ev("a"), nil, "cloudevents: a batch must be a JSON array of events"},
		{"null", "null", nil, "cloudevents: a batch must be a JSON array of events"},
		{"a bad member names its index", "[" + ev("a") + `,{"specversion":"1.0","id":"b"}]`, nil, "event [1]: cloudevents: missing required attributes: source, type"},
		{"a member that is not an object", "[" + ev("a") + ",7]", nil, "event [1]: cloudevents: structured event must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCloudEventBatch([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ids := []string{}
			for _, ce := range got {
				ids = append(ids, ce.ID)
			}
			if !reflect.DeepEqual(ids, tt.ids) {
				t.Errorf("ids %v, want %v", ids, tt.ids)
			}
		})
	}
	if !IsCloudEventBatch(http.Header{"Content-Type": {"application/cloudevents-batch+json; charset=utf-8"}}) {
		t.Error("IsCloudEventBatch with a charset = false")
	}
}

// mediaType reads a Content-Type as mime.ParseMediaType does, whether by
// its shortcut for the common types or not.
func TestMediaType(t *testing.T) {
	for _, ct := range []string{"application/json", mediaTypeStructured, mediaTypeBatch,
		"Application/JSON", "application/json; charset=utf-8", "application/cloudevents+json;charset=utf-8", "text/plain", "json", ""} {
		want, _, err := mime.ParseMediaType(ct)
		if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
			want = ""
		}
		if got := mediaType(ct); got != want {
			t.Errorf("mediaType(%q) = %q, want %q", ct, got, want)
		}
	}
}

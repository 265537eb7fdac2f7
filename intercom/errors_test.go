package intercom

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecodeError(t *testing.T) {
	const token = "tok_9f8e7d6c5b4a"
	tests := []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
		text   string // Error()
	}{
		{
			name:   "error.list with several errors",
			status: 400,
			body: `{"type":"error.list","request_id":"000a1b2c","errors":[
				{"code":"parameter_invalid","message":"Body is required"},
				{"code":"parameter_invalid","message":"to is invalid","field":"to"}]}`,
			want: Error{StatusCode: 400, RequestID: "000a1b2c", Errors: []ErrorDetail{
				{Code: "parameter_invalid", Message: "Body is required"},
				{Code: "parameter_invalid", Message: "to is invalid", Field: "to"},
			}},
			text: "intercom: 400 Bad Request: parameter_invalid: Body is required; parameter_invalid [to]: to is invalid (request_id 000a1b2c)",
		},
		{
			name:   "request id from the header",
			status: 401,
			header: http.Header{"X-Request-Id": {"hdr-1"}},
			body:   `{"type":"error.list","errors":[{"code":"unauthorized","message":"Access Token Invalid"}]}`,
			want:   Error{StatusCode: 401, RequestID: "hdr-1", Errors: []ErrorDetail{{Code: "unauthorized", Message: "Access Token Invalid"}}},
			text:   "intercom: 401 Unauthorized: unauthorized: Access Token Invalid (request_id hdr-1)",
		},
		{
			name:   "single error at the top level",
			status: 403,
			body:   `{"type":"error","code":"api_plan_restricted","message":"Active subscription needed."}`,
			want:   Error{StatusCode: 403, Errors: []ErrorDetail{{Code: "api_plan_restricted", Message: "Active subscription needed."}}},
			text:   "intercom: 403 Forbidden: api_plan_restricted: Active subscription needed.",
		},
		{
			name:   "HTML 504",
			status: 504,
			body:   "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
			want:   Error{StatusCode: 504, Excerpt: "504 Gateway Time-out 504 Gateway Time-out nginx"},
			text:   `intercom: 504 Gateway Timeout: "504 Gateway Time-out 504 Gateway Time-out nginx"`,
		},
		{
			name:   "empty body",
			status: 503,
			want:   Error{StatusCode: 503},
			text:   "intercom: 503 Service Unavailable",
		},
		{
			name:   "JSON that is not an error.list",
			status: 500,
			body:   `{"oops":true}`,
			want:   Error{StatusCode: 500, Excerpt: `{"oops":true}`},
			text:   `intercom: 500 Internal Server Error: "{\"oops\":true}"`,
		},
		{
			name:   "unknown status",
			status: 599,
			body:   "boom",
			want:   Error{StatusCode: 599, Excerpt: "boom"},
			text:   `intercom: 599: "boom"`,
		},
		{
			name:   "token echoed by a proxy is redacted",
			status: 502,
			body:   "<pre>Authorization: Bearer " + token + "</pre>",
			want:   Error{StatusCode: 502, Excerpt: "Authorization: Bearer [redacted]"},
			text:   `intercom: 502 Bad Gateway: "Authorization: Bearer [redacted]"`,
		},
		{
			name:   "token in an error message is redacted",
			status: 401,
			body:   `{"type":"error.list","request_id":"r","errors":[{"code":"unauthorized","message":"bad token ` + token + `"}]}`,
			want:   Error{StatusCode: 401, RequestID: "r", Errors: []ErrorDetail{{Code: "unauthorized", Message: "bad token [redacted]"}}},
			text:   "intercom: 401 Unauthorized: unauthorized: bad token [redacted] (request_id r)",
		},
		{
			name:   "long body is cut",
			status: 500,
			body:   strings.Repeat("é", 300),
			want:   Error{StatusCode: 500, Excerpt: strings.Repeat("é", 98) + "…"},
			text:   `intercom: 500 Internal Server Error: "` + strings.Repeat("é", 98) + `…"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got := decodeError(tt.status, h, []byte(tt.body), token)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("decodeError =\n%#v\nwant\n%#v", *got, tt.want)
			}
			if got.Error() != tt.text {
				t.Errorf("Error() =\n%s\nwant\n%s", got.Error(), tt.text)
			}
		})
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in, want string
		max      int
	}{
		{"  a \n\t b  ", "a b", 100},
		{"ctl\x00\x1b[31mred", "ctl[31mred", 100},
		{"bad \xff utf8", "bad utf8", 100},
		{"abcdefghij", "abcdefghij", 10},
		{"abcdefghij", "abcdef…", 9},
		{"ab€€€", "ab€…", 8}, // never cuts a rune in half
		{"xx-secret-yy", "xx-[redacted]-yy", 100},
		{"xx-sec\x00ret-yy", "xx-[redacted]-yy", 100},
		{"secre", "secre", 100},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := clean(tt.in, "secret", tt.max); got != tt.want {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzDecodeError checks that no answer, however malformed, breaks error
// decoding: it never panics, keeps the status, stays short and printable,
// and never lets the token through.
func FuzzDecodeError(f *testing.F) {
	const token = "fuzz-token-0123456789"
	for _, seed := range []struct {
		status int
		body   string
	}{
		{400, `{"type":"error.list","request_id":"r1","errors":[{"code":"parameter_invalid","message":"Body is required"}]}`},
		{422, `{"type":"error.list","errors":[{"code":"parameter_not_found","message":"No subject supplied for email message","field":"subject"}]}`},
		{429, `{"type":"error.list","errors":[{"code":"rate_limit_exceeded","message":"Exceeded rate limit"}]}`},
		{504, "<html><head><title>504 Gateway Time-out</title></head></html>"},
		{401, `{"type":"error.list","errors":[{"code":"unauthorized","message":"` + token + `"}]}`},
		{502, "Bearer " + token},
		{502, "Bearer " + token[:4] + "\x00" + token[4:]},
		{502, "Bearer " + token[:4] + "\xff" + token[4:]},
		{500, `{"errors":[{"code":1,"message":null}]}`},
		{500, `{"errors":"nope"}`},
		{500, "<<<>>>\x00\xff"},
		{503, ""},
	} {
		f.Add(seed.status, []byte(seed.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := decodeError(status, http.Header{}, body, token)
		if e.StatusCode != status {
			t.Fatalf("StatusCode = %d, want %d", e.StatusCode, status)
		}
		text := e.Error()
		if strings.Contains(text, token) {
			t.Fatalf("token in %q", text)
		}
		if !utf8.ValidString(text) {
			t.Fatalf("invalid UTF-8 in %q", text)
		}
		if len(e.Excerpt) > maxExcerpt {
			t.Fatalf("excerpt of %d bytes", len(e.Excerpt))
		}
		if strings.ContainsAny(e.Excerpt, "\n\r\x00") {
			t.Fatalf("excerpt not on one line: %q", e.Excerpt)
		}
	})
}

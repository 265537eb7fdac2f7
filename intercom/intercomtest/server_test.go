package intercomtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// These tests speak raw HTTP to the fake: they check the fake itself,
// including requests the client would never send.

func newServer(t *testing.T, opts ...intercomtest.Option) *intercomtest.Server {
	t.Helper()
	srv := intercomtest.NewServer(append([]intercomtest.Option{intercomtest.WithToken("tok")}, opts...)...)
	t.Cleanup(srv.Close)
	srv.AddAdmin("394051", "Wash", "wash@serenity.example")
	srv.AddUser(userID, "customer-7", "kaylee@serenity.example")
	srv.AddContact(intercom.Contact{ID: leadID, Role: "lead", Email: "shared@serenity.example"})
	srv.AddContact(intercom.Contact{ID: "6762f23c1bb69f9f2193bc1b", Role: "lead", Email: "shared@serenity.example"})
	return srv
}

// The contacts of newServer.
const (
	userID = "536e564f316c83104c000020"
	leadID = "65a0c0ffee65a0c0ffee65a0"
)

type result struct {
	status int
	header http.Header
	body   []byte
	list   struct {
		Type      string                 `json:"type"`
		RequestID string                 `json:"request_id"`
		Errors    []intercom.ErrorDetail `json:"errors"`
	}
}

// do sends one request with the headers the seed uses, changed by edit.
func do(t *testing.T, srv *intercomtest.Server, method, path, body string, edit func(http.Header)) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	if edit != nil {
		edit(req.Header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode, header: resp.Header}
	r.body, _ = io.ReadAll(resp.Body)
	if r.status >= 400 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(r.body, &r.list); err != nil {
			t.Fatalf("error body %s: %v", r.body, err)
		}
		if r.list.Type != "error.list" || len(r.list.Errors) == 0 || r.list.RequestID == "" {
			t.Errorf("error body %s is not an error.list with errors and a request id", r.body)
		}
	}
	return r
}

// msg builds a message body from the seed's example in its 2.x form, with
// fields replaced (or removed, with a nil value).
func msg(t *testing.T, changes map[string]any) string {
	t.Helper()
	m := map[string]any{
		"message_type": "email",
		"subject":      "Hey",
		"body":         "Ponies, cute small horses or something more sinister?",
		"template":     "plain",
		"from":         map[string]any{"type": "admin", "id": 394051},
		"to":           map[string]any{"type": "user", "id": "536e564f316c83104c000020"},
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type obj = map[string]any

func TestValidation(t *testing.T) {
	tests := []struct {
		name       string
		permissive bool
		method     string // POST when empty
		path       string // /messages when empty
		body       string // raw body; when empty, msg(change)
		change     obj
		header     func(http.Header)
		status     int
		code       string
		field      string
		message    string // a part of the error's message
	}{
		// Headers.
		{name: "seed example", status: 200},
		{name: "no Authorization", header: func(h http.Header) { h.Del("Authorization") }, status: 401, code: "unauthorized"},
		{name: "wrong token", header: func(h http.Header) { h.Set("Authorization", "Bearer nope") }, status: 401, code: "unauthorized"},
		{name: "not Bearer", header: func(h http.Header) { h.Set("Authorization", "Basic tok") }, status: 401, code: "unauthorized"},
		{name: "lower-case bearer", header: func(h http.Header) { h.Set("Authorization", "bearer tok") }, status: 200},
		{name: "no Accept", header: func(h http.Header) { h.Del("Accept") }, status: 406},
		{name: "Accept HTML", header: func(h http.Header) { h.Set("Accept", "text/html") }, status: 406},
		{name: "Accept JSON with q=0", header: func(h http.Header) { h.Set("Accept", "application/json;q=0, text/html") }, status: 406},
		{name: "Accept anything", header: func(h http.Header) { h.Set("Accept", "text/html, */*;q=0.1") }, status: 200},
		{name: "Content-Type form", header: func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") }, status: 415},
		{name: "Content-Type with charset", header: func(h http.Header) { h.Set("Content-Type", "application/json; charset=utf-8") }, status: 200},
		{name: "Intercom-Version 2.11", header: func(h http.Header) { h.Set("Intercom-Version", "2.11") }, status: 200},
		{name: "Intercom-Version 2.16", header: func(h http.Header) { h.Set("Intercom-Version", "2.16") }, status: 200},
		{name: "Intercom-Version bogus", header: func(h http.Header) { h.Set("Intercom-Version", "latest") }, status: 400, code: "intercom_version_invalid", message: "could not be found"},
		{name: "Intercom-Version 1.4", header: func(h http.Header) { h.Set("Intercom-Version", "1.4") }, status: 400, code: "intercom_version_invalid"},
		{name: "Intercom-Version 2.10", header: func(h http.Header) { h.Set("Intercom-Version", "2.10") }, status: 400, code: "intercom_version_invalid"},

		// Routes: unknown paths and methods are 404, as Intercom answers.
		{name: "GET /messages", method: "GET", body: "-", status: 404, code: "not_found"},
		{name: "unknown path", path: "/conversations", status: 404, code: "not_found"},
		{name: "PUT a contact", method: "PUT", path: "/contacts/" + userID, body: `{"name":"x"}`, status: 404, code: "not_found"},
		{name: "find_by_external_id at 2.11", method: "GET", path: "/contacts/find_by_external_id/customer-7", body: "-", header: func(h http.Header) { h.Set("Intercom-Version", "2.11") }, status: 404, code: "not_found"},

		// JSON.
		{name: "malformed JSON", body: `{"message_type":`, status: 400, code: "parameter_invalid", message: "Invalid JSON"},
		{name: "two objects", body: msg(t, nil) + "{}", status: 400, code: "parameter_invalid"},
		{name: "not an object", body: `["x"]`, status: 400, code: "parameter_invalid", message: "JSON object"},
		{name: "empty body", body: "-", status: 400, code: "parameter_invalid", field: "body", message: "Body is required"},
		{name: "unknown field, which the description allows", change: obj{"templat": "plain"}, status: 200},
		{name: "string admin id", change: obj{"from": obj{"type": "admin", "id": "394051"}}, status: 200},
		{name: "admin id not digits", change: obj{"from": obj{"type": "admin", "id": "admin-1"}}, status: 400, code: "parameter_invalid", field: "from.id", message: "must match ^[0-9]+$"},
		{name: "admin id a fraction", change: obj{"from": obj{"type": "admin", "id": 3.5}}, status: 400, code: "parameter_invalid", field: "from.id"},
		{name: "body not a string", change: obj{"body": []string{"x"}}, status: 400, code: "parameter_invalid", field: "body", message: "must be a string, not an array"},
		{name: "reply flag not a boolean", change: obj{"create_conversation_without_contact_reply": "yes"}, status: 400, field: "create_conversation_without_contact_reply", code: "parameter_invalid"},
		{name: "reply flag", change: obj{"create_conversation_without_contact_reply": true}, status: 200},
		{name: "created_at", change: obj{"created_at": 1590000000}, status: 200},
		{name: "created_at a string", change: obj{"created_at": "1590000000"}, status: 400, code: "parameter_invalid", field: "created_at", message: "must be an integer"},

		// message_type, body, subject, template.
		{name: "no message_type", change: obj{"message_type": nil}, status: 400, code: "parameter_invalid", field: "message_type", message: "is required"},
		{name: "message_type in_app, the description's typo", change: obj{"message_type": "in_app"}, status: 400, code: "parameter_invalid", field: "message_type", message: "must be one of inapp, email"},
		{name: "message_type whatsapp before 2.16", change: obj{"message_type": "whatsapp"}, status: 400, code: "parameter_invalid", field: "message_type"},
		{name: "no body", change: obj{"body": nil}, status: 400, code: "parameter_invalid", field: "body", message: "Body is required"},
		{name: "blank body", change: obj{"body": " \n"}, status: 400, code: "parameter_invalid", message: "Body is required"},
		{name: "email without subject", change: obj{"subject": nil}, status: 422, code: "parameter_not_found", field: "subject", message: "No subject supplied for email message"},
		{name: "email without template", change: obj{"template": nil}, status: 400, code: "parameter_invalid", field: "template", message: "is required for email messages"},
		{name: "personal template", change: obj{"template": "personal"}, status: 200},
		{name: "unknown template", change: obj{"template": "fancy"}, status: 400, code: "parameter_invalid", field: "template", message: "plain or personal"},
		{name: "inapp", change: obj{"message_type": "inapp", "subject": nil, "template": nil}, status: 200},
		{name: "inapp with a subject and a template, which the description allows", change: obj{"message_type": "inapp"}, status: 200},

		// from.
		{name: "no from", change: obj{"from": nil}, status: 400, code: "parameter_invalid", field: "from", message: "is required"},
		{name: "from a user", change: obj{"from": obj{"type": "user", "id": "394051"}}, status: 400, code: "parameter_invalid", field: "from.type", message: "must be one of admin"},
		{name: "from type user at 2.11, which allows it", change: obj{"from": obj{"type": "user", "id": "394051"}}, header: func(h http.Header) { h.Set("Intercom-Version", "2.11") }, status: 200},
		{name: "from a user at 2.12", change: obj{"from": obj{"type": "user", "id": "394051"}}, header: func(h http.Header) { h.Set("Intercom-Version", "2.12") }, status: 400, code: "parameter_invalid", field: "from.type"},
		{name: "from without id", change: obj{"from": obj{"type": "admin"}}, status: 400, code: "parameter_invalid", field: "from.id", message: "is required"},
		{name: "unknown admin", change: obj{"from": obj{"type": "admin", "id": "1"}}, status: 404, code: "not_found", field: "from.id"},
		{name: "unknown admin, permissive", permissive: true, change: obj{"from": obj{"type": "admin", "id": "1"}}, status: 404, code: "not_found"},

		// to, cc, bcc.
		{name: "no to", change: obj{"to": nil}, status: 400, code: "parameter_invalid", field: "to", message: "is required"},
		{name: "to a visitor", change: obj{"to": obj{"type": "visitor", "id": userID}}, status: 400, code: "parameter_invalid", field: "to.type", message: "must be one of user, lead"},
		{name: "to a contact, a 1.x type", change: obj{"to": obj{"type": "contact", "id": userID}}, status: 400, code: "parameter_invalid", field: "to.type"},
		{name: "to without id", change: obj{"to": obj{"type": "user"}}, status: 400, code: "parameter_invalid", field: "to.id", message: "is required"},
		{name: "to by user_id, a 1.x form", change: obj{"to": obj{"type": "user", "user_id": "customer-7"}}, status: 400, code: "parameter_invalid", field: "to.id"},
		{name: "to by email, a 1.x form", change: obj{"to": obj{"type": "user", "email": "kaylee@serenity.example"}}, status: 400, code: "parameter_invalid", field: "to.id"},
		{name: "to a lead", change: obj{"to": obj{"type": "lead", "id": leadID}}, status: 200},
		{name: "to an array", change: obj{"to": []obj{{"type": "user", "id": userID}, {"type": "lead", "id": leadID}}}, status: 200},
		{name: "to an array at 2.11", change: obj{"to": []obj{{"type": "user", "id": userID}}}, header: func(h http.Header) { h.Set("Intercom-Version", "2.11") }, status: 400, code: "parameter_invalid", field: "to", message: "must be an object, not an array"},
		{name: "cc and bcc", change: obj{"cc": obj{"type": "lead", "id": leadID}, "bcc": []obj{{"type": "user", "id": userID}}}, status: 200},
		{name: "cc at 2.11 is ignored, as the description lists none", change: obj{"cc": "anything"}, header: func(h http.Header) { h.Set("Intercom-Version", "2.11") }, status: 200},
		{name: "array item without type", change: obj{"to": []obj{{"type": "user", "id": userID}, {"id": leadID}}}, status: 400, code: "parameter_invalid", field: "to[1].type"},
		{name: "unknown user", change: obj{"to": obj{"type": "user", "id": "0000000000000000000000ff"}}, status: 404, code: "not_found", field: "to.id", message: "User Not Found"},
		{name: "unknown lead in cc", change: obj{"cc": []obj{{"type": "lead", "id": "0000000000000000000000ff"}}}, status: 404, code: "not_found", field: "cc[0].id", message: "Lead Not Found"},
		{name: "a user addressed as a lead", change: obj{"to": obj{"type": "lead", "id": userID}}, status: 404, code: "not_found", field: "to.type", message: "is a user"},
		{name: "unknown user, permissive", permissive: true, change: obj{"to": obj{"type": "user", "id": "0000000000000000000000ff"}}, status: 200},
		{name: "a user addressed as a lead, permissive", permissive: true, change: obj{"to": obj{"type": "lead", "id": userID}}, status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, intercomtest.WithPermissive(tt.permissive))
			method, path, body := cmpOr(tt.method, "POST"), cmpOr(tt.path, "/messages"), tt.body
			switch body {
			case "":
				body = msg(t, tt.change)
			case "-":
				body = ""
			}
			r := do(t, srv, method, path, body, tt.header)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if tt.status == 200 {
				if got := len(srv.Messages()); got != 1 {
					t.Errorf("fake recorded %d accepted messages, want 1", got)
				}
				return
			}
			if len(srv.Messages()) != 0 {
				t.Errorf("a refused message was recorded as accepted")
			}
			if len(r.list.Errors) == 0 {
				return
			}
			e := r.list.Errors[0]
			if tt.code != "" && e.Code != tt.code {
				t.Errorf("code = %q, want %q", e.Code, tt.code)
			}
			if tt.field != "" && e.Field != tt.field {
				t.Errorf("field = %q, want %q", e.Field, tt.field)
			}
			if !strings.Contains(e.Message, tt.message) {
				t.Errorf("message = %q, want it to contain %q", e.Message, tt.message)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestAnswer(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name   string
		change obj
		want   string // JSON, without created_at
	}{
		{
			name: "email echoes subject and template",
			want: `{"type":"admin_message","id":"2001","message_type":"email","subject":"Hey","body":"Ponies, cute small horses or something more sinister?","template":"plain",
				"owner":{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"},"conversation_id":"1002001"}`,
		},
		{
			name:   "HTML body unescaped",
			change: obj{"body": "<p>a & b</p>"},
			want: `{"type":"admin_message","id":"2002","message_type":"email","subject":"Hey","body":"<p>a & b</p>","template":"plain",
				"owner":{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"},"conversation_id":"1002002"}`,
		},
		{
			name:   "inapp has no subject or template",
			change: obj{"message_type": "inapp", "template": nil},
			want: `{"type":"admin_message","id":"2003","message_type":"inapp","body":"Ponies, cute small horses or something more sinister?",
				"owner":{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"},"conversation_id":"1002003"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Unix()
			r := do(t, srv, "POST", "/messages", msg(t, tt.change), nil)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			var got, want map[string]any
			json.Unmarshal(r.body, &got)
			json.Unmarshal([]byte(tt.want), &want)
			created, _ := got["created_at"].(float64)
			if int64(created) < before || int64(created) > time.Now().Unix() {
				t.Errorf("created_at = %v, want now", got["created_at"])
			}
			delete(got, "created_at")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("answer =\n%s\nwant\n%s", r.body, tt.want)
			}
		})
	}
}

func TestAdmins(t *testing.T) {
	srv := newServer(t)
	srv.AddAdmin("814860", "Zoe", "zoe@serenity.example")
	r := do(t, srv, "GET", "/me", "", nil)
	if r.status != 200 || !jsonEqual(r.body, `{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"}`) {
		t.Errorf("GET /me = %d %s", r.status, r.body)
	}
	r = do(t, srv, "GET", "/admins", "", nil)
	want := `{"type":"admin.list","admins":[{"type":"admin","id":"394051","name":"Wash","email":"wash@serenity.example"},
		{"type":"admin","id":"814860","name":"Zoe","email":"zoe@serenity.example"}]}`
	if r.status != 200 || !jsonEqual(r.body, want) {
		t.Errorf("GET /admins = %d %s", r.status, r.body)
	}
	if r := do(t, srv, "GET", "/me", "", func(h http.Header) { h.Del("Authorization") }); r.status != 401 {
		t.Errorf("GET /me without a token = %d", r.status)
	}

	empty := intercomtest.NewServer()
	defer empty.Close()
	req, _ := http.NewRequest("GET", empty.URL()+"/me", nil)
	req.Header.Set("Authorization", "Bearer "+empty.Token())
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /me with no admin = %d, want 404", resp.StatusCode)
	}
}

func jsonEqual(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

func TestFaults(t *testing.T) {
	srv := newServer(t)
	srv.FailNext(2, 503)
	srv.FailNextHTML504(1)
	srv.FailNext(1, 429)
	srv.DropNext(1)

	type outcome struct {
		status int
		code   string
	}
	var got []outcome
	for range 6 {
		req, _ := http.NewRequest("POST", srv.URL()+"/messages", strings.NewReader(msg(t, nil)))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got = append(got, outcome{0, "dropped"})
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		o := outcome{status: resp.StatusCode}
		switch {
		case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"):
			o.code = "html"
			if !bytes.Contains(body, []byte("<title>504 Gateway Time-out</title>")) {
				t.Errorf("HTML 504 body: %s", body)
			}
		case resp.StatusCode == 429:
			o.code = "429"
			for _, h := range []string{"X-RateLimit-Remaining", "X-RateLimit-Reset"} {
				if resp.Header.Get(h) == "" {
					t.Errorf("429 without %s", h)
				}
			}
		}
		got = append(got, o)
	}
	want := []outcome{{503, ""}, {503, ""}, {504, "html"}, {429, "429"}, {0, "dropped"}, {200, ""}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}

	// The dropped request was read in full and recorded.
	reqs := srv.Requests()
	if len(reqs) != 6 {
		t.Fatalf("recorded %d requests, want 6", len(reqs))
	}
	if d := reqs[4]; d.StatusCode != 0 || d.Message == nil || d.Message.Subject != "Hey" {
		t.Errorf("dropped request recorded as %+v", d)
	}
	if got := len(srv.Messages()); got != 1 {
		t.Errorf("accepted %d messages, want 1", got)
	}
}

func TestWindowLimit(t *testing.T) {
	srv := newServer(t)
	const limit = 3
	srv.SetWindowLimit(limit, time.Hour) // one window for the whole test
	for i := range limit + 2 {
		r := do(t, srv, "GET", "/me", "", nil)
		wantStatus, wantRemaining := 200, limit-1-i
		if i >= limit {
			wantStatus, wantRemaining = 429, 0
		}
		if r.status != wantStatus {
			t.Errorf("request %d: status %d, want %d", i, r.status, wantStatus)
		}
		if got := r.header.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
			t.Errorf("request %d: X-RateLimit-Limit = %q", i, got)
		}
		if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(wantRemaining) {
			t.Errorf("request %d: X-RateLimit-Remaining = %q, want %d", i, got, wantRemaining)
		}
		reset, err := strconv.ParseInt(r.header.Get("X-RateLimit-Reset"), 10, 64)
		if err != nil || reset <= time.Now().Unix() || reset%3600 != 0 {
			t.Errorf("request %d: X-RateLimit-Reset = %q, want the next full hour", i, r.header.Get("X-RateLimit-Reset"))
		}
		if i >= limit && (len(r.list.Errors) == 0 || r.list.Errors[0].Code != "rate_limit_exceeded") {
			t.Errorf("request %d: %s", i, r.body)
		}
	}
	// Unauthenticated requests neither count nor carry the headers.
	if r := do(t, srv, "GET", "/me", "", func(h http.Header) { h.Del("Authorization") }); r.status != 401 || r.header.Get("X-RateLimit-Remaining") != "" {
		t.Errorf("unauthenticated: %d with headers %v", r.status, r.header)
	}

	// Sub-second windows report a reset with milliseconds.
	srv.SetWindowLimit(limit, 250*time.Millisecond)
	r := do(t, srv, "GET", "/me", "", nil)
	reset := r.header.Get("X-RateLimit-Reset")
	sec, frac, ok := strings.Cut(reset, ".")
	if !ok || len(frac) != 3 || len(sec) != 10 {
		t.Errorf("X-RateLimit-Reset = %q, want unix seconds with milliseconds", reset)
	}

	// Without a limit of its own, the fake states Intercom's.
	srv.SetWindowLimit(0, 0)
	if r := do(t, srv, "GET", "/me", "", nil); r.header.Get("X-RateLimit-Limit") != strconv.Itoa(intercomtest.DefaultWindowLimit) || r.header.Get("X-RateLimit-Remaining") == "" {
		t.Errorf("default limit, but headers %v", r.header)
	}
}

func TestDelay(t *testing.T) {
	srv := newServer(t)
	srv.SetDelay(150 * time.Millisecond)
	start := time.Now()
	if r := do(t, srv, "GET", "/me", "", nil); r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, before the delay of 150ms", d)
	}
	// Close does not wait for delayed requests.
	srv.SetDelay(time.Hour)
	done, wrote := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var once sync.Once
		trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(wrote) }) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL()+"/me", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select { // the request is with the server, or failed
	case <-wrote:
	case <-done:
	}
	srv.Close()
	<-done
}

func TestRecording(t *testing.T) {
	var (
		mu     sync.Mutex
		hooked []intercomtest.Request
	)
	srv := newServer(t,
		intercomtest.WithRecordLimit(2),
		intercomtest.WithRequestHook(func(r intercomtest.Request) {
			mu.Lock()
			defer mu.Unlock()
			hooked = append(hooked, r)
		}))
	do(t, srv, "GET", "/me", "", nil)
	do(t, srv, "POST", "/messages", msg(t, obj{"subject": "one"}), nil)
	do(t, srv, "POST", "/messages", msg(t, obj{"subject": nil}), nil) // 422, parsed all the same
	do(t, srv, "POST", "/messages", msg(t, obj{"subject": "three"}), nil)

	reqs := srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("kept %d requests, want the last 2", len(reqs))
	}
	if r := reqs[0]; r.StatusCode != 422 || r.Message == nil || r.Message.Subject != "" || r.Header.Get("Authorization") != "Bearer tok" || !bytes.Contains(r.Response, []byte("No subject")) {
		t.Errorf("request 0 = %+v", r)
	}
	if r := reqs[1]; r.StatusCode != 200 || r.Message == nil || r.Message.Subject != "three" || r.Method != "POST" || r.Path != "/messages" || len(r.Body) == 0 {
		t.Errorf("request 1 = %+v", r)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].Subject != "one" || msgs[1].Subject != "three" {
		t.Errorf("messages = %+v", msgs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 4 || hooked[0].Path != "/me" {
		t.Errorf("hook saw %d requests", len(hooked))
	}
}

// Requests and Messages are read while requests are served.
func TestConcurrentUse(t *testing.T) {
	srv := newServer(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				do(t, srv, "POST", "/messages", msg(t, nil), nil)
				srv.Requests()
				srv.Messages()
			}
		})
	}
	wg.Wait()
	msgs := srv.Messages()
	if len(msgs) != 80 {
		t.Errorf("accepted %d messages, want 80", len(msgs))
	}
	ids := map[string]bool{}
	for _, r := range srv.Requests() {
		var a struct{ ID string }
		json.Unmarshal(r.Response, &a)
		if ids[a.ID] {
			t.Errorf("id %s given twice", a.ID)
		}
		ids[a.ID] = true
	}
}

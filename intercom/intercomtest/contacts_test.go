package intercomtest_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

func TestAddContact(t *testing.T) {
	srv := newServer(t)
	c := srv.AddContact(intercom.Contact{Email: "new@example.com"})
	if !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(c.ID) || c.Role != "user" {
		t.Errorf("AddContact = %+v, want a 24-hex id and role user", c)
	}
	srv.AddContact(intercom.Contact{ID: c.ID, Role: "lead", Email: "changed@example.com"})
	var got []intercom.Contact
	for _, x := range srv.Contacts() {
		if x.ID == c.ID {
			got = append(got, x)
		}
	}
	if len(got) != 1 || got[0].Role != "lead" || got[0].Email != "changed@example.com" {
		t.Errorf("after replacing: %+v", got)
	}
}

func TestSearchContacts(t *testing.T) {
	type q = map[string]any
	eq := func(field, value string) q { return q{"field": field, "operator": "=", "value": value} }
	tests := []struct {
		name       string
		permissive bool
		body       any
		version    string
		status     int
		wantIDs    []string // in order
		field      string   // of the error
		created    string   // the role of the contact a permissive search created
	}{
		{name: "by external_id", body: q{"query": eq("external_id", "customer-7")}, status: 200, wantIDs: []string{userID}},
		{name: "by email, a user and two leads", body: q{"query": eq("email", "shared@serenity.example")}, status: 200, wantIDs: []string{leadID, "6762f23c1bb69f9f2193bc1b"}},
		{name: "email ignores case", body: q{"query": eq("email", "KAYLEE@serenity.example")}, status: 200, wantIDs: []string{userID}},
		{name: "by id", body: q{"query": eq("id", leadID)}, status: 200, wantIDs: []string{leadID}},
		{name: "AND", body: q{"query": q{"operator": "AND", "value": []q{eq("email", "shared@serenity.example"), eq("role", "lead"), {"field": "id", "operator": "!=", "value": leadID}}}}, status: 200, wantIDs: []string{"6762f23c1bb69f9f2193bc1b"}},
		{name: "OR", body: q{"query": q{"operator": "OR", "value": []q{eq("external_id", "customer-7"), eq("id", leadID)}}}, status: 200, wantIDs: []string{userID, leadID}},
		{name: "IN", body: q{"query": q{"field": "id", "operator": "IN", "value": []string{userID, leadID}}}, status: 200, wantIDs: []string{userID, leadID}},
		{name: "created after 2011", body: q{"query": q{"field": "created_at", "operator": ">", "value": "1306054154"}, "pagination": q{"per_page": 2}}, status: 200, wantIDs: []string{userID, leadID}},
		{name: "nobody", body: q{"query": eq("external_id", "nobody")}, status: 200, wantIDs: nil},
		{name: "nobody, permissive, by external_id", permissive: true, body: q{"query": eq("external_id", "nobody")}, status: 200, created: "user"},
		{name: "nobody, permissive, by email", permissive: true, body: q{"query": eq("email", "new@example.com")}, status: 200, created: "lead"},
		{name: "nobody, permissive, by id, creates nobody", permissive: true, body: q{"query": eq("id", "0000000000000000000000ff")}, status: 200},
		{name: "no query", body: q{}, status: 400, field: "query"},
		{name: "operator not in the description", body: q{"query": q{"field": "email", "operator": "==", "value": "x"}}, status: 400, field: "query"},
		{name: "field the fake does not search", body: q{"query": eq("name", "Kaylee")}, status: 400, field: "query.field"},
		{name: "operator the fake does not evaluate", body: q{"query": q{"field": "email", "operator": "~", "value": "kaylee"}}, status: 400, field: "query.operator"},
		{name: "at 2.11", version: "2.11", body: q{"query": eq("external_id", "customer-7")}, status: 200, wantIDs: []string{userID}},
		{name: "at 2.16", version: "2.16", body: q{"query": eq("external_id", "customer-7"), "sort": q{"field": "created_at", "order": "ascending"}}, status: 200, wantIDs: []string{userID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, intercomtest.WithPermissive(tt.permissive))
			body, _ := json.Marshal(tt.body)
			r := do(t, srv, "POST", "/contacts/search", string(body), func(h http.Header) {
				if tt.version != "" {
					h.Set("Intercom-Version", tt.version)
				}
			})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status != 200 {
				if len(r.list.Errors) == 0 || r.list.Errors[0].Field != tt.field || r.list.Errors[0].Code != "parameter_invalid" {
					t.Errorf("errors %+v, want parameter_invalid on %s", r.list.Errors, tt.field)
				}
				return
			}
			var list struct {
				Type       string `json:"type"`
				TotalCount int    `json:"total_count"`
				Data       []struct {
					Type, ID, Role string
					ExternalID     *string `json:"external_id"`
					Email          *string
				} `json:"data"`
				Pages struct {
					Type    string `json:"type"`
					PerPage int    `json:"per_page"`
				} `json:"pages"`
			}
			if err := json.Unmarshal(r.body, &list); err != nil || list.Type != "list" || list.Pages.Type != "pages" {
				t.Fatalf("answer %s: %v", r.body, err)
			}
			var ids []string
			for _, c := range list.Data {
				if c.Type != "contact" || c.Role == "" {
					t.Errorf("contact %+v", c)
				}
				ids = append(ids, c.ID)
			}
			if tt.created != "" {
				if len(list.Data) != 1 || list.Data[0].Role != tt.created || len(srv.Contacts()) != 4 {
					t.Errorf("permissive search answered %s; contacts %+v", r.body, srv.Contacts())
				}
				return
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") || list.TotalCount < len(ids) {
				t.Errorf("found %v (total %d), want %v", ids, list.TotalCount, tt.wantIDs)
			}
			if len(srv.Contacts()) != 3 {
				t.Errorf("the search changed the contacts: %+v", srv.Contacts())
			}
		})
	}
}

func TestGetContact(t *testing.T) {
	tests := []struct {
		name, path, version string
		status              int
		wantID              string
	}{
		{name: "by id", path: "/contacts/" + userID, status: 200, wantID: userID},
		{name: "a lead by id", path: "/contacts/" + leadID, status: 200, wantID: leadID},
		{name: "unknown id", path: "/contacts/0000000000000000000000ff", status: 404},
		{name: "escaped id", path: "/contacts/a%2Fb", status: 404},
		{name: "by external id", path: "/contacts/find_by_external_id/customer-7", status: 200, wantID: userID},
		{name: "by external id at 2.16", path: "/contacts/find_by_external_id/customer-7", version: "2.16", status: 200, wantID: userID},
		{name: "by external id at 2.13, before it existed", path: "/contacts/find_by_external_id/customer-7", version: "2.13", status: 404},
		{name: "unknown external id", path: "/contacts/find_by_external_id/nobody", status: 404},
		{name: "nested path", path: "/contacts/" + userID + "/tags", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t)
			srv.AddContact(intercom.Contact{Role: "lead", ExternalID: "lead-ext"})
			r := do(t, srv, "GET", tt.path, "", func(h http.Header) {
				if tt.version != "" {
					h.Set("Intercom-Version", tt.version)
				}
			})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 404 {
				if r.list.Errors[0].Code != "not_found" {
					t.Errorf("errors %+v", r.list.Errors)
				}
				return
			}
			var c struct{ Type, ID, Role string }
			if json.Unmarshal(r.body, &c); c.Type != "contact" || c.ID != tt.wantID {
				t.Errorf("answer %s, want contact %s", r.body, tt.wantID)
			}
		})
	}

	// Leads are not found by external id, as the description says.
	srv := newServer(t)
	srv.AddContact(intercom.Contact{Role: "lead", ExternalID: "lead-ext"})
	if r := do(t, srv, "GET", "/contacts/find_by_external_id/lead-ext", "", nil); r.status != 404 {
		t.Errorf("a lead found by external id: %d %s", r.status, r.body)
	}
	if n := srv.Count("GET", "/contacts/find_by_external_id/"); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
	if n := srv.Count("", "/contacts"); n != 1 {
		t.Errorf("Count of any method = %d, want 1", n)
	}
}

// Every authenticated answer carries the rate-limit headers, whatever its
// path or status.
func TestRateLimitHeadersEverywhere(t *testing.T) {
	srv := newServer(t)
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/messages", msg(t, nil)},
		{"POST", "/messages", msg(t, obj{"body": nil})},
		{"POST", "/contacts/search", `{"query":{"field":"email","operator":"=","value":"x"}}`},
		{"GET", "/contacts/" + userID, ""},
		{"GET", "/contacts/nobody", ""},
		{"GET", "/nowhere", ""},
		{"GET", "/me", ""},
	} {
		got := do(t, srv, r.method, r.path, r.body, nil)
		for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			if got.header.Get(h) == "" {
				t.Errorf("%s %s (%d): no %s", r.method, r.path, got.status, h)
			}
		}
	}
	srv.FailNext(1, 503)
	if got := do(t, srv, "GET", "/me", "", nil); got.status != 503 || got.header.Get("X-RateLimit-Limit") == "" {
		t.Errorf("scripted 503: %d with headers %v", got.status, got.header)
	}
}

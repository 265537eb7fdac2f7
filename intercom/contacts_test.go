package intercom_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

func TestContacts(t *testing.T) {
	kaylee := intercom.Contact{ID: userID, Role: "user", ExternalID: "customer-7", Email: "kaylee@serenity.example"}
	lead := intercom.Contact{ID: leadID, Role: "lead", Email: "kaylee@serenity.example"}
	ctx := context.Background()
	tests := []struct {
		name     string
		version  string
		call     func(*intercom.Client) (any, error)
		want     any
		path     string // of the request sent; "" when none must be
		notFound bool
	}{
		{
			name: "search by external_id",
			call: func(c *intercom.Client) (any, error) { return c.SearchContacts(ctx, "external_id", "customer-7") },
			want: []intercom.Contact{kaylee}, path: "/contacts/search",
		},
		{
			name: "search by email finds the user and the lead",
			call: func(c *intercom.Client) (any, error) {
				return c.SearchContacts(ctx, "email", "kaylee@serenity.example")
			},
			want: []intercom.Contact{kaylee, lead}, path: "/contacts/search",
		},
		{
			name: "search finding nobody",
			call: func(c *intercom.Client) (any, error) { return c.SearchContacts(ctx, "email", "nobody@example.com") },
			want: []intercom.Contact{}, path: "/contacts/search",
		},
		{
			name: "search at 2.11", version: "2.11",
			call: func(c *intercom.Client) (any, error) { return c.SearchContacts(ctx, "id", leadID) },
			want: []intercom.Contact{lead}, path: "/contacts/search",
		},
		{
			name: "get by id",
			call: func(c *intercom.Client) (any, error) { return c.GetContact(ctx, leadID) },
			want: &lead, path: "/contacts/" + leadID,
		},
		{
			name: "get an unknown id",
			call: func(c *intercom.Client) (any, error) { return c.GetContact(ctx, "nobody/../me") },
			path: "/contacts/nobody/../me", notFound: true,
		},
		{
			name: "find by external id",
			call: func(c *intercom.Client) (any, error) { return c.FindContactByExternalID(ctx, "customer-7") },
			want: &kaylee, path: "/contacts/find_by_external_id/customer-7",
		},
		{
			name: "find an unknown external id",
			call: func(c *intercom.Client) (any, error) { return c.FindContactByExternalID(ctx, "customer-8") },
			path: "/contacts/find_by_external_id/customer-8", notFound: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			c := newClient(t, srv, func(cfg *intercom.Config) { cfg.Version = tt.version })
			got, err := tt.call(c)
			if tt.notFound {
				if !intercom.IsNotFound(err) {
					t.Fatalf("err = %v, want not found", err)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Path != tt.path {
				t.Fatalf("requests %+v, want one to %s", reqs, tt.path)
			}
			if tt.path == "/contacts/search" && !strings.Contains(string(reqs[0].Body), `"operator":"="`) {
				t.Errorf("search body %s", reqs[0].Body)
			}
		})
	}
}

// Before 2.14 there is no find_by_external_id: the client says so without
// asking Intercom.
func TestFindContactByExternalIDBefore214(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *intercom.Config) { cfg.Version = "2.13" })
	_, err := c.FindContactByExternalID(context.Background(), "customer-7")
	if !errors.Is(err, intercom.ErrUnsupported) || !strings.Contains(err.Error(), "2.14") {
		t.Fatalf("err = %v, want ErrUnsupported naming 2.14", err)
	}
	if d := intercom.Classify(err); d.Class != intercom.Permanent {
		t.Errorf("Classify = %+v, want permanent", d)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// A permissive fake creates whom a search does not find, so that a trial
// run can message anyone.
func TestPermissiveSearch(t *testing.T) {
	srv := newFake(t, intercomtest.WithPermissive(true))
	c := newClient(t, srv, nil)
	found, err := c.SearchContacts(context.Background(), "external_id", "customer-99")
	if err != nil || len(found) != 1 || found[0].Role != "user" || found[0].ExternalID != "customer-99" {
		t.Fatalf("SearchContacts = %+v, %v", found, err)
	}
	m := email()
	m.To = []intercom.Recipient{found[0].Recipient()}
	if _, err := c.CreateMessage(context.Background(), m); err != nil {
		t.Errorf("message to the created contact: %v", err)
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		version string
		valid   bool
		caps    intercom.Caps
	}{
		{"2.11", true, intercom.Caps{}},
		{"2.13", true, intercom.Caps{}},
		{"2.14", true, intercom.Caps{RecipientLists: true, FindByExternalID: true}},
		{"2.16", true, intercom.Caps{RecipientLists: true, FindByExternalID: true}},
		{"2.17", false, intercom.Caps{}},
		{"2.1", false, intercom.Caps{}},
		{"", false, intercom.Caps{}},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			err := intercom.ValidateVersion(tt.version)
			if (err == nil) != tt.valid {
				t.Errorf("ValidateVersion = %v, want valid %v", err, tt.valid)
			}
			if err != nil && !strings.Contains(err.Error(), "2.11, 2.12, 2.13, 2.14, 2.15, 2.16") {
				t.Errorf("error %q does not list the supported versions", err)
			}
			if got := intercom.Capabilities(tt.version); got != tt.caps {
				t.Errorf("Capabilities = %+v, want %+v", got, tt.caps)
			}
		})
	}
	if err := intercom.ValidateVersion(intercom.DefaultVersion); err != nil || intercom.DefaultVersion != "2.14" {
		t.Errorf("DefaultVersion %s: %v", intercom.DefaultVersion, err)
	}
}

package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
	"github.com/intercom-bridge/bridge/rules"
)

// contractVersions are the Intercom versions whose contract the requests
// are checked against: the oldest supported, and the first with lists.
var contractVersions = []string{"2.11", "2.14"}

// contractFake is a strict fake Intercom (it knows only the contacts it is
// given) and a client speaking version to it.
func contractFake(t *testing.T, version string, contacts []intercom.Contact) (*intercomtest.Server, *intercom.Client) {
	t.Helper()
	srv := intercomtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddAdmin("394051", "Wash", "wash@example.com")
	for _, c := range contacts {
		srv.AddContact(c)
	}
	client, err := intercom.New(intercom.Config{BaseURL: srv.URL(), Token: srv.Token(), Version: version})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return srv, client
}

// send looks m's recipients up and sends it, as stage 2 does.
func contractSend(t *testing.T, client *intercom.Client, version string, m rules.Message) error {
	t.Helper()
	contacts := NewContacts(nil, ContactsOptions{Finder: client, FindByExternalID: intercom.Capabilities(version).FindByExternalID})
	req, err := contacts.Message(context.Background(), m, zerolog.Nop())
	if err != nil {
		return err
	}
	_, err = client.CreateMessage(context.Background(), req)
	return err
}

// Every message the example rules produce for their test events is
// accepted by the fake, which checks each request against the published
// description of its version.
func TestExampleRulesMeetTheContract(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "examples", "rules")
	ruleFiles, testFiles, err := rules.Discover([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, version := range contractVersions {
		t.Run(version, func(t *testing.T) {
			set, err := rules.LoadFiles(ruleFiles, rules.Options{
				NoRecipientLists: !intercom.Capabilities(version).RecipientLists, IntercomVersion: version})
			if err != nil {
				t.Fatal(err)
			}
			sent := 0
			for _, name := range testFiles {
				data, err := os.ReadFile(name)
				if err != nil {
					t.Fatal(err)
				}
				tf, err := rules.ParseTests(rules.File{Name: name, Data: data})
				if err != nil {
					t.Fatal(err)
				}
				var contacts []intercom.Contact
				for _, c := range tf.Contacts {
					contacts = append(contacts, intercom.Contact{ID: c.ID, Role: c.Role, ExternalID: c.ExternalID, Email: c.Email})
				}
				srv, client := contractFake(t, version, contacts)
				for _, tc := range tf.Cases {
					ev := tc.Event
					for _, d := range set.Evaluate(&ev).Deliveries {
						if err := contractSend(t, client, version, d.Message); err != nil {
							t.Errorf("%s: %s: rule %s: %v", name, tc.Name, d.Rule, err)
						}
						sent++
					}
				}
				if n := len(srv.Messages()); n != srv.Count("POST", "/messages") {
					t.Errorf("%s: the fake accepted %d of %d requests", name, n, srv.Count("POST", "/messages"))
				}
			}
			if sent == 0 {
				t.Fatal("the example tests produced no message: the test proves nothing")
			}
		})
	}
}

// Every form of recipient a rule accepts becomes a request the fake
// accepts, at both versions, for email and in-app; what a version cannot
// send is refused when the rules load.
func TestEveryRecipientFormMeetsTheContract(t *testing.T) {
	t.Parallel()
	user := intercom.Contact{ID: "65b2a9c0d1e2f3a4b5c6d7e8", Role: "user", ExternalID: "u-42", Email: "ada@example.com"}
	lead := intercom.Contact{ID: "6571f0a1b2c3d4e5f6a7b8c9", Role: "lead", ExternalID: "l-7", Email: "grace@example.com"}
	forms := []struct {
		to   string
		want intercom.Recipient
	}{
		{`{type: user, id: "65b2a9c0d1e2f3a4b5c6d7e8"}`, user.Recipient()},
		{`{type: user, user_id: u-42}`, user.Recipient()},
		{`{type: user, email: ada@example.com}`, user.Recipient()},
		{`{type: lead, id: "6571f0a1b2c3d4e5f6a7b8c9"}`, lead.Recipient()},
		{`{type: lead, user_id: l-7}`, lead.Recipient()},
		{`{type: lead, email: grace@example.com}`, lead.Recipient()},
		{`{type: contact, id: "6571f0a1b2c3d4e5f6a7b8c9"}`, lead.Recipient()},
		{`{type: contact, user_id: u-42}`, user.Recipient()},
		{`{type: contact, email: grace@example.com}`, lead.Recipient()},
	}
	lists := []string{
		"to: [{type: user, user_id: u-42}, {type: lead, email: grace@example.com}]",
		"to: {type: user, user_id: u-42}\n      cc: {type: lead, id: \"6571f0a1b2c3d4e5f6a7b8c9\"}",
		"to: {type: user, user_id: u-42}\n      bcc: [{type: lead, user_id: l-7}]",
	}
	rule := func(kind, recipients string) string {
		subject := ""
		if kind == "email" {
			subject = "\n      subject: Hi"
		}
		return fmt.Sprintf("rules:\n  - name: r\n    message:\n      type: %s\n      from: \"394051\"\n      %s%s\n      body: <p>Hi</p>\n", kind, recipients, subject)
	}
	for _, version := range contractVersions {
		opts := rules.Options{NoRecipientLists: !intercom.Capabilities(version).RecipientLists, IntercomVersion: version}
		for _, kind := range []string{"email", "inapp"} {
			for _, f := range forms {
				t.Run(version+"/"+kind+"/"+f.to, func(t *testing.T) {
					srv, client := contractFake(t, version, []intercom.Contact{user, lead})
					set, err := rules.Parse([]rules.File{{Name: "r.yaml", Data: []byte(rule(kind, "to: "+f.to))}}, opts)
					if err != nil {
						t.Fatal(err)
					}
					res := set.Evaluate(&rules.Event{ID: "e1", Data: map[string]any{}})
					if len(res.Deliveries) != 1 {
						t.Fatalf("deliveries %v, errors %v", res.Deliveries, res.Errors)
					}
					if err := contractSend(t, client, version, res.Deliveries[0].Message); err != nil {
						t.Fatal(err)
					}
					msgs := srv.Messages()
					if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != f.want {
						t.Errorf("the fake got %+v; want one message to %+v", msgs, f.want)
					}
				})
			}
			for _, l := range lists {
				t.Run(version+"/"+kind+"/"+l, func(t *testing.T) {
					srv, client := contractFake(t, version, []intercom.Contact{user, lead})
					set, err := rules.Parse([]rules.File{{Name: "r.yaml", Data: []byte(rule(kind, l))}}, opts)
					if !intercom.Capabilities(version).RecipientLists {
						if err == nil || !strings.Contains(err.Error(), "needs Intercom-Version 2.14 or later") {
							t.Errorf("at %s: %v; want the rule refused", version, err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					res := set.Evaluate(&rules.Event{ID: "e1", Data: map[string]any{}})
					if err := contractSend(t, client, version, res.Deliveries[0].Message); err != nil {
						t.Fatal(err)
					}
					if n := len(srv.Messages()); n != 1 {
						t.Errorf("the fake accepted %d messages", n)
					}
				})
			}
		}
	}
}

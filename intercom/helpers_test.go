package intercom_test

import (
	"testing"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// The people of the seed's example.
const (
	adminID = "394051"
	userID  = "536e564f316c83104c000020"
	leadID  = "65a0c0ffee65a0c0ffee65a0"
)

// newFake starts a fake Intercom that knows the seed's admin and user.
func newFake(t testing.TB, opts ...intercomtest.Option) *intercomtest.Server {
	t.Helper()
	srv := intercomtest.NewServer(opts...)
	t.Cleanup(srv.Close)
	srv.AddAdmin(adminID, "Wash", "wash@serenity.example")
	srv.AddUser(userID, "customer-7", "kaylee@serenity.example")
	srv.AddContact(intercom.Contact{ID: leadID, Role: intercom.RecipientLead, Email: "kaylee@serenity.example"})
	return srv
}

// newClient returns a client of srv; edit, when not nil, changes its config.
func newClient(t testing.TB, srv *intercomtest.Server, edit func(*intercom.Config)) *intercom.Client {
	t.Helper()
	cfg := intercom.Config{BaseURL: srv.URL(), Token: srv.Token(), UserAgent: "intercom-bridge/v0.0.0-test"}
	if edit != nil {
		edit(&cfg)
	}
	c, err := intercom.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// email is a valid email message from the seed's admin to its user.
func email() intercom.Message {
	return intercom.Message{
		MessageType: intercom.MessageTypeEmail,
		Subject:     "Hey",
		Body:        "Ponies, cute small horses or something more sinister?",
		Template:    intercom.TemplatePlain,
		From:        intercom.From{Type: "admin", ID: adminID},
		To:          []intercom.Recipient{{Type: intercom.RecipientUser, ID: userID}},
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// contactList stands in for Intercom's contacts in `bridge render`: the
// contacts of a -contacts file, found the way Intercom finds them.
type contactList []intercom.Contact

var errNoContact = &intercom.Error{StatusCode: 404, Errors: []intercom.ErrorDetail{{Code: "not_found", Message: "User Not Found"}}}

func (l contactList) SearchContacts(_ context.Context, field, value string) ([]intercom.Contact, error) {
	var out []intercom.Contact
	for _, c := range l {
		if (field == "external_id" && c.ExternalID == value) || (field == "email" && strings.EqualFold(c.Email, value)) ||
			(field == "id" && c.ID == value) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l contactList) GetContact(_ context.Context, id string) (*intercom.Contact, error) {
	for _, c := range l {
		if c.ID == id {
			return &c, nil
		}
	}
	return nil, errNoContact
}

func (l contactList) FindContactByExternalID(_ context.Context, externalID string) (*intercom.Contact, error) {
	for _, c := range l {
		if c.ExternalID == externalID && c.Role == intercom.RecipientUser {
			return &c, nil
		}
	}
	return nil, errNoContact
}

// wireView is what goes to Intercom for one delivery at a version: the
// look-ups its recipients need, and the body of POST /messages with the
// recipients the contacts file names (a placeholder id for the others).
type wireView struct {
	Lookups []string        `json:"lookups,omitempty"`
	Request json.RawMessage `json:"request"`
}

func wireFor(version string, m rules.Message, contacts contactList) (wireView, error) {
	caps := intercom.Capabilities(version)
	finder := pipeline.NewContacts(nil, pipeline.ContactsOptions{Finder: contacts, FindByExternalID: caps.FindByExternalID, Log: zerolog.Nop()})
	var v wireView
	out, err := pipeline.Request(m, func(p rules.Recipient) (intercom.Recipient, error) {
		if d := pipeline.DescribeLookup(p, caps.FindByExternalID); d != "" {
			v.Lookups = append(v.Lookups, p.String()+": "+d)
		}
		r, err := finder.Resolve(context.Background(), p, zerolog.Nop())
		var nf *pipeline.ContactNotFoundError
		if errors.As(err, &nf) {
			return intercom.Recipient{Type: placeholderRole(p.Type), ID: "<" + strings.TrimPrefix(p.String(), p.Type+" ") + ">"}, nil
		}
		return r, err
	})
	if err != nil {
		return v, err
	}
	body, err := intercom.EncodeMessage(version, out)
	if err != nil {
		return v, fmt.Errorf("Intercom-Version %s: %w", version, err)
	}
	v.Request = body
	return v, nil
}

// placeholderRole is the wire type shown for a recipient not looked up.
func placeholderRole(t string) string {
	if t == "lead" {
		return t
	}
	return "user"
}

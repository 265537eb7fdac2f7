// Package contactsfile reads a -contacts file: the contacts that the fake
// Intercom serves and that `bridge render` looks recipients up in. It is a
// package of its own so the service binary can read the file without
// linking the fake.
//
// It owns the file format; it imports intercom (the contact type) only.
package contactsfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/intercom-bridge/bridge/intercom"
)

// entry is one contact of the file.
type entry struct {
	ID         string `json:"id" yaml:"id"`
	Role       string `json:"role" yaml:"role"`
	ExternalID string `json:"external_id" yaml:"external_id"`
	Email      string `json:"email" yaml:"email"`
}

// Load reads a list of contacts in YAML, of which JSON is a subset:
// [{id, role, external_id, email}, ...]. Unknown keys are refused, to catch
// the Intercom 1.x "user_id" for "external_id".
func Load(path string) ([]intercom.Contact, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []entry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&list); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]intercom.Contact, 0, len(list))
	for i, c := range list {
		switch c.Role {
		case "", intercom.RecipientUser, intercom.RecipientLead:
		default:
			return nil, fmt.Errorf("%s: contact %d: role %q, want user or lead", path, i+1, c.Role)
		}
		out = append(out, intercom.Contact{ID: c.ID, Role: c.Role, ExternalID: c.ExternalID, Email: c.Email})
	}
	return out, nil
}

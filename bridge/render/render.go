// Package render shows what the bridge would send for an event, without
// sending it: the request body of POST /messages at an Intercom-Version,
// and what every rule did with the event. `bridge render` prints it and
// the console's playground shows it; both call this package, so the two
// say the same.
//
// It builds requests with the pipeline's own code (pipeline.Request and
// intercom.EncodeMessage), never a copy of it.
package render

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// Contacts stand in for Intercom's contacts: recipients are looked up in
// them the way Intercom finds them. Recipients they lack are shown with a
// placeholder id.
type Contacts []intercom.Contact

var errNoContact = &intercom.Error{StatusCode: 404, Errors: []intercom.ErrorDetail{{Code: "not_found", Message: "User Not Found"}}}

func (l Contacts) SearchContacts(_ context.Context, field, value string) ([]intercom.Contact, error) {
	var out []intercom.Contact
	for _, c := range l {
		if (field == "external_id" && c.ExternalID == value) || (field == "email" && strings.EqualFold(c.Email, value)) ||
			(field == "id" && c.ID == value) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l Contacts) GetContact(_ context.Context, id string) (*intercom.Contact, error) {
	for _, c := range l {
		if c.ID == id {
			return &c, nil
		}
	}
	return nil, errNoContact
}

func (l Contacts) FindContactByExternalID(_ context.Context, externalID string) (*intercom.Contact, error) {
	for _, c := range l {
		if c.ExternalID == externalID && c.Role == intercom.RecipientUser {
			return &c, nil
		}
	}
	return nil, errNoContact
}

// Wire is what goes to Intercom for one delivery at a version: the
// look-ups its recipients need, and the body of POST /messages with the
// recipients the contacts name (a placeholder id for the others).
type Wire struct {
	Lookups []string        `json:"lookups,omitempty"`
	Request json.RawMessage `json:"request"`
}

// WireFor builds the request the sender would make for m at version.
func WireFor(version string, m rules.Message, contacts Contacts) (Wire, error) {
	caps := intercom.Capabilities(version)
	finder := pipeline.NewContacts(nil, pipeline.ContactsOptions{Finder: contacts, FindByExternalID: caps.FindByExternalID, Log: zerolog.Nop()})
	var v Wire
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

// Delivery is how one delivery is shown: the message as the rule names
// it, when it waits for, the look-ups its recipients need, and the
// request.
type Delivery struct {
	Rule      string        `json:"rule"`
	DedupeKey string        `json:"dedupe_key"`
	Throttle  *Limit        `json:"throttle,omitempty"`
	Schedule  *Schedule     `json:"schedule,omitempty"`
	Message   rules.Message `json:"message"`
	Wire
}

// Limit is a delivery's throttle.
type Limit struct {
	Key string `json:"key"`
	Per string `json:"per"`
}

// Schedule is when a delivery that waits goes out.
type Schedule struct {
	At  string `json:"at"` // RFC 3339, UTC
	Key string `json:"key"`
}

// Cancels is what follows the deliveries when the event cancels waiting
// messages.
type Cancels struct {
	Cancels []Cancel `json:"cancels"`
}

// Cancel is one waiting message an event cancels.
type Cancel struct {
	Rule string `json:"rule"`
	Key  string `json:"key"`
}

// DeliveryFor shows d with its request at version.
func DeliveryFor(d rules.Delivery, version string, contacts Contacts) (Delivery, error) {
	out := Delivery{Rule: d.Rule, DedupeKey: d.DedupeKey, Message: d.Message}
	if d.Throttle != nil {
		out.Throttle = &Limit{Key: d.Throttle.Key, Per: d.Throttle.Per.String()}
	}
	if d.Schedule != nil {
		out.Schedule = &Schedule{At: d.Schedule.At.UTC().Format(time.RFC3339), Key: d.Schedule.Key}
	}
	var err error
	out.Wire, err = WireFor(version, d.Message, contacts)
	return out, err
}

// Explain writes what every rule of set did with ev, in load order, as
// `bridge render -explain` prints it: a line per rule, and under each
// rule that matched its delivery with the request at version. failed
// says whether a rule (or a cancel_on) failed for the event; err is a
// failure to build or write a request.
func Explain(w io.Writer, set *rules.Set, ev *rules.Event, version string, contacts Contacts) (failed bool, err error) {
	for _, x := range set.Explain(ev) {
		fmt.Fprintf(w, "%s (%s): %s", x.Rule, x.Pos, x.Outcome)
		switch x.Outcome {
		case rules.Skipped:
			fmt.Fprintf(w, ": %s", x.Reason)
		case rules.Failed:
			fmt.Fprintf(w, ": %v", x.Err)
			failed = true
		}
		if x.Wait != "" {
			fmt.Fprintf(w, ": %s", x.Wait)
		}
		for _, c := range x.Cancels {
			fmt.Fprintf(w, "; cancels the message waiting with key %q", c.Key)
		}
		if x.CancelErr != nil {
			fmt.Fprintf(w, "; cancel_on: error: %v", x.CancelErr)
			failed = true
		}
		if _, err := fmt.Fprintln(w); err != nil {
			return failed, err
		}
		if x.Delivery != nil {
			d, err := DeliveryFor(*x.Delivery, version, contacts)
			if err == nil {
				err = WriteJSON(w, d, "    ")
			}
			if err != nil {
				return failed, fmt.Errorf("rule %s: %w", x.Rule, err)
			}
		}
	}
	return failed, nil
}

// TestRequest is how rule tests build the request an expectation's
// request is compared with: at version, with the test file's contacts
// standing in for Intercom's.
func TestRequest(version string, tf *rules.TestFile) func(rules.Message) ([]byte, error) {
	var contacts Contacts
	for _, c := range tf.Contacts {
		contacts = append(contacts, intercom.Contact{ID: c.ID, Role: c.Role, ExternalID: c.ExternalID, Email: c.Email})
	}
	return func(m rules.Message) ([]byte, error) {
		v, err := WireFor(version, m, contacts)
		return v.Request, err
	}
}

// WriteJSON prints v indented, each line after prefix, with HTML left as
// it is: a body is meant to be read.
func WriteJSON(w io.Writer, v any, prefix string) error {
	enc := json.NewEncoder(w)
	enc.SetIndent(prefix, "  ")
	enc.SetEscapeHTML(false)
	if prefix != "" {
		if _, err := io.WriteString(w, prefix); err != nil {
			return err
		}
	}
	return enc.Encode(v)
}

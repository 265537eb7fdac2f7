package intercom

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Values of the fields of a Message.
const (
	MessageTypeEmail = "email"
	MessageTypeInApp = "inapp"

	TemplatePlain    = "plain"
	TemplatePersonal = "personal"

	// Recipient types: the role of the Intercom contact.
	RecipientUser = "user"
	RecipientLead = "lead"
)

// Message is an admin-initiated message (POST /messages) in the form of API
// 2.x: recipients are Intercom contacts named by their Intercom id. A person
// known only by an external id or an email must be looked up first
// (SearchContacts, FindContactByExternalID).
//
// Its own JSON (used to store a Message) always writes to, cc and bcc as
// arrays; the body CreateMessage sends depends on the client's version (see
// there). Decoding accepts both, so that recorded request bodies read back.
type Message struct {
	MessageType string      `json:"message_type"` // MessageTypeEmail or MessageTypeInApp
	Subject     string      `json:"subject,omitempty"`
	Body        string      `json:"body"`
	Template    string      `json:"template,omitempty"` // TemplatePlain or TemplatePersonal; email only
	From        From        `json:"from"`
	To          []Recipient `json:"to"`
	Cc          []Recipient `json:"cc,omitempty"`  // 2.14+
	Bcc         []Recipient `json:"bcc,omitempty"` // 2.14+

	// CreatedAt, in unix seconds, back-dates the message; 0 leaves it out
	// and Intercom uses the time it receives the message.
	CreatedAt int64 `json:"created_at,omitempty"`

	// CreateConversationWithoutContactReply is optional (API 2.7+); nil
	// leaves it out and lets Intercom apply its default.
	CreateConversationWithoutContactReply *bool `json:"create_conversation_without_contact_reply,omitempty"`
}

// UnmarshalJSON decodes a message in its own form or in the wire form of any
// supported version: to, cc and bcc may each be one recipient or an array.
func (m *Message) UnmarshalJSON(b []byte) error {
	type plain Message // without the methods, to avoid recursion
	var w struct {
		plain
		To  recipients `json:"to"`
		Cc  recipients `json:"cc"`
		Bcc recipients `json:"bcc"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = Message(w.plain)
	m.To, m.Cc, m.Bcc = w.To, w.Cc, w.Bcc
	return nil
}

// Recipient is an Intercom contact: {"type":"user","id":"536e564f316c83104c000020"}.
type Recipient struct {
	Type string `json:"type"` // RecipientUser or RecipientLead: the contact's role
	ID   string `json:"id"`   // Intercom's contact id, not an external id
}

// recipients decodes one recipient or an array of them.
type recipients []Recipient

func (r *recipients) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*r = nil
		return nil
	case len(b) > 0 && b[0] == '{':
		var one Recipient
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*r = recipients{one}
		return nil
	}
	var many []Recipient
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*r = many
	return nil
}

// From is the sending admin. Intercom types the id as an integer and its
// SDKs send a number, so an id of digits is encoded as a JSON number:
// {"type":"admin","id":394051}. Decoding accepts a number or a string.
type From struct {
	Type string
	ID   string
}

func (f From) MarshalJSON() ([]byte, error) {
	var w struct {
		Type string `json:"type"`
		ID   any    `json:"id"`
	}
	w.Type, w.ID = f.Type, f.ID
	if isJSONInteger(f.ID) {
		w.ID = json.Number(f.ID)
	}
	return json.Marshal(w)
}

func (f *From) UnmarshalJSON(b []byte) error {
	var w struct {
		Type string     `json:"type"`
		ID   flexString `json:"id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	f.Type, f.ID = w.Type, string(w.ID)
	return nil
}

// isJSONInteger reports whether s is all digits and valid as a JSON number
// (no leading zero), so that writing it unquoted keeps its value.
func isJSONInteger(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// SentMessage is Intercom's answer to a created message.
type SentMessage struct {
	Type        string // "admin_message", or "message" in some API versions
	ID          string
	CreatedAt   time.Time
	MessageType string
	Subject     string
	Body        string
	Template    string
	Owner       *Admin // the sending admin, when Intercom includes it

	// ConversationID is the conversation the message belongs to, when
	// Intercom says (2.x). With CreateConversationWithoutContactReply it is
	// the conversation opened in the inbox.
	ConversationID string
}

// Contact is an Intercom contact (a user or a lead), as far as addressing a
// message needs it.
type Contact struct {
	ID         string `json:"id"`   // Intercom's id: the Recipient.ID
	Role       string `json:"role"` // RecipientUser or RecipientLead: the Recipient.Type
	ExternalID string `json:"external_id,omitempty"`
	Email      string `json:"email,omitempty"`
}

// Recipient is the recipient that addresses c.
func (c Contact) Recipient() Recipient { return Recipient{Type: c.Role, ID: c.ID} }

// Admin is an Intercom teammate, as returned by /me, /admins and in the
// owner of a sent message.
type Admin struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// The wire types below decode Intercom's answers tolerantly: ids may come as
// strings or numbers and timestamps as integers, decimals or strings,
// depending on the API version. Unknown fields are ignored.

type wireSentMessage struct {
	Type        string     `json:"type"`
	ID          flexString `json:"id"`
	CreatedAt   unixTime   `json:"created_at"`
	MessageType string     `json:"message_type"`
	Subject     string     `json:"subject"`
	Body        string     `json:"body"`
	Template    string     `json:"template"`
	Owner       *wireAdmin `json:"owner"`

	ConversationID flexString `json:"conversation_id"`
}

type wireContact struct {
	Type       string     `json:"type"`
	ID         flexString `json:"id"`
	Role       string     `json:"role"`
	ExternalID flexString `json:"external_id"`
	Email      string     `json:"email"`
}

func (w *wireContact) contact() Contact {
	return Contact{ID: string(w.ID), Role: w.Role, ExternalID: string(w.ExternalID), Email: w.Email}
}

type wireContactList struct {
	Type       string        `json:"type"`
	Data       []wireContact `json:"data"`
	TotalCount int           `json:"total_count"`
}

type wireAdmin struct {
	Type  string     `json:"type"`
	ID    flexString `json:"id"`
	Name  string     `json:"name"`
	Email string     `json:"email"`
}

type wireAdminList struct {
	Type   string      `json:"type"`
	Admins []wireAdmin `json:"admins"`
}

func (w *wireAdmin) admin() *Admin {
	if w == nil {
		return nil
	}
	return &Admin{Type: w.Type, ID: string(w.ID), Name: w.Name, Email: w.Email}
}

func (w *wireSentMessage) sentMessage() *SentMessage {
	return &SentMessage{
		Type:        w.Type,
		ID:          string(w.ID),
		CreatedAt:   time.Time(w.CreatedAt),
		MessageType: w.MessageType,
		Subject:     w.Subject,
		Body:        w.Body,
		Template:    w.Template,
		Owner:       w.Owner.admin(),

		ConversationID: string(w.ConversationID),
	}
}

// flexString accepts a JSON string or number.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if v, ok := plainString(b); ok {
		*s = flexString(v)
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = flexString(v)
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && (b[0] == '-' || '0' <= b[0] && b[0] <= '9') {
		// A number, checked as such: its text is the id.
		*s = flexString(b)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*s = flexString(n)
	return nil
}

// plainString reads a JSON string of printable ASCII without escapes, as
// ids and timestamps are, without decoding it again: encoding/json has
// checked the token before it calls an UnmarshalJSON, and such a string
// means exactly its bytes. Any other string is not plain.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	in := b[1 : len(b)-1]
	for _, c := range in {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(in), true
}

// unixTime accepts unix seconds as a JSON number (integer or decimal) or as a
// string holding one. Anything else leaves it zero rather than failing the
// whole answer: a timestamp is never worth losing a message id over.
type unixTime time.Time

func (t *unixTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if v, ok := plainString(b); ok {
		b = []byte(v)
	} else if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		b = []byte(s)
	}
	if tt, ok := parseUnix(string(b)); ok {
		*t = unixTime(tt)
	}
	return nil
}

// parseUnix parses unix seconds, with an optional fraction: "1401916877" or
// "1401916877.250". Intercom sends integers; fractions are accepted so that
// sub-second test windows can be expressed.
func parseUnix(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		if sec <= 0 {
			return time.Time{}, false
		}
		return time.Unix(sec, 0), true
	}
	f, err := strconv.ParseFloat(s, 64)
	// Bound the value so the conversion to nanoseconds cannot overflow.
	if err != nil || !(f > 0 && f < 1e11) {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(f*1000 + 0.5)), true
}

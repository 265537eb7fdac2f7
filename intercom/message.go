package intercom

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Values of the fields of a Message, spelled as the seed spells them.
const (
	MessageTypeEmail = "email"
	MessageTypeInApp = "inapp"

	TemplatePlain    = "plain"
	TemplatePersonal = "personal"

	// Recipient types. API 2.x calls contacts "lead"; both address a contact.
	RecipientUser    = "user"
	RecipientContact = "contact"
	RecipientLead    = "lead"
)

// Message is the body of POST /messages, field for field as the seed
// describes it. The zero values of the optional fields are left out of the
// JSON so that what is sent is exactly what the caller set.
type Message struct {
	MessageType string `json:"message_type"` // MessageTypeEmail or MessageTypeInApp
	Subject     string `json:"subject,omitempty"`
	Body        string `json:"body"`
	Template    string `json:"template,omitempty"` // TemplatePlain or TemplatePersonal; email only
	From        From   `json:"from"`
	To          To     `json:"to"`

	// CreateConversationWithoutContactReply is optional (API 2.7+); nil
	// leaves it out and lets Intercom apply its default.
	CreateConversationWithoutContactReply *bool `json:"create_conversation_without_contact_reply,omitempty"`
}

// From is the sending admin: {"type":"admin","id":"394051"}.
type From struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// To is the recipient. Type is RecipientUser, RecipientContact or
// RecipientLead; exactly one of ID, UserID and Email is set, and Email only
// for users.
type To struct {
	Type   string `json:"type"`
	ID     string `json:"id,omitempty"`
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"email,omitempty"`
}

// SentMessage is Intercom's answer to a created message. There is no
// conversation id: a conversation exists only once the contact replies.
type SentMessage struct {
	Type        string // "admin_message", or "message" in some API versions
	ID          string
	CreatedAt   time.Time
	MessageType string
	Subject     string
	Body        string
	Template    string
	Owner       *Admin // the sending admin, when Intercom includes it
}

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
	}
}

// flexString accepts a JSON string or number.
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
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
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*s = flexString(n)
	return nil
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
	if len(b) > 0 && b[0] == '"' {
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

package event

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/intercom-bridge/bridge/rules"
)

// NATSMsg is a message read from a NATS source.
type NATSMsg struct {
	Subject  string
	Header   nats.Header
	Data     []byte
	Time     time.Time // when it was stored or received
	Fallback string    // the id when nothing better exists: the stream sequence, or a unique id
}

// FromNATS builds the envelope of a message from a NATS source. The payload
// is the message's data, or a CloudEvent's data (NATS binding: structured
// with Content-Type application/cloudevents+json, or binary with ce-*
// headers). The id is the source's id expression, else Nats-Msg-Id, else the
// CloudEvents id, else m.Fallback.
func FromNATS(source string, id *Expr, m NATSMsg) (*Envelope, error) {
	h := make(http.Header, len(m.Header))
	for k, v := range m.Header {
		h[http.CanonicalHeaderKey(k)] = v
	}
	env := &Envelope{Source: source, Subject: m.Subject, Time: m.Time.UTC(), Headers: Headers(m.Header, nil), Data: m.Data}
	ceID := ""
	ce, isCE, err := ParseCloudEvent(h, m.Data)
	switch {
	case isCE && err != nil:
		return nil, fmt.Errorf("%s: %w", m.Subject, err)
	case isCE:
		env.Data, env.Type, ceID = ce.Data, ce.Type, ce.ID
	case !json.Valid(m.Data):
		return nil, fmt.Errorf("%s: the payload is not JSON", m.Subject)
	}
	var data any
	if id != nil {
		if data, err = rules.DecodeJSON(env.Data); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Subject, err)
		}
	}
	byExpr, err := id.Eval(env.Headers, data, source, m.Subject)
	if err != nil {
		return nil, fmt.Errorf("source %s: id: %w", source, err)
	}
	for _, candidate := range []string{byExpr, h.Get(nats.MsgIdHdr), ceID, m.Fallback} {
		if candidate != "" {
			env.ID = candidate
			break
		}
	}
	return env, nil
}

// Capture is a source whose subjects the events stream captures.
type Capture struct {
	Name     string
	Subjects []string
	ID       *Expr
}

// Decoder turns messages stored in the events stream into envelopes.
type Decoder struct {
	Stream   string
	In       string // <prefix>.in., the subjects' start of the sources the bridge stores itself
	Captures []Capture
}

// Source names the source a stored message belongs to by its subject: the
// one of <prefix>.in.<source>, or the capture source whose subjects match;
// "" when none does.
func (d *Decoder) Source(subject string) string {
	if d.In != "" && strings.HasPrefix(subject, d.In) {
		return strings.TrimPrefix(subject, d.In)
	}
	for _, c := range d.Captures {
		if slices.ContainsFunc(c.Subjects, func(p string) bool { return rules.SubjectMatches(p, subject) }) {
			return c.Name
		}
	}
	return ""
}

// Decode returns the envelope of a stored message: its own for a message
// the bridge stored, else one made from a captured subject. A message that
// stands for an event the bridge could not store (RefusedHeader) is an
// error with its reason.
func (d *Decoder) Decode(subject string, h nats.Header, data []byte, seq uint64, stored time.Time) (*Envelope, error) {
	if reason := h.Get(RefusedHeader); reason != "" {
		return nil, fmt.Errorf("stored event %s: %s", Seq(d.Stream, seq), reason)
	}
	if h.Get(EnvelopeHeader) != "" {
		if env, ok := decodeEnvelope(data); ok {
			return &env, nil
		}
		var env Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("stored event %s: %w", Seq(d.Stream, seq), err)
		}
		return &env, nil
	}
	for _, c := range d.Captures {
		if slices.ContainsFunc(c.Subjects, func(p string) bool { return rules.SubjectMatches(p, subject) }) {
			return FromNATS(c.Name, c.ID, NATSMsg{Subject: subject, Header: h, Data: data, Time: stored, Fallback: Seq(d.Stream, seq)})
		}
	}
	return nil, fmt.Errorf("stored event %s: subject %s belongs to no source", Seq(d.Stream, seq), subject)
}

// Package event is the shape of an event in the bridge's stream, and how a
// stored NATS message becomes the rules.Event that rules match.
//
// The events stream holds two kinds of messages. Webhooks, bound streams and
// core subscriptions store an Envelope, on <prefix>.in.<source>; subjects
// that the stream captures are stored as their publishers sent them, and the
// envelope is made when the message is read.
//
// It also owns what makes a body an event: CloudEvents in their binary and
// structured modes (ParseCloudEvent) and the bounds on the JSON handed to
// the rules (CheckJSON). It imports rules only.
package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/nats-io/nats.go"

	"github.com/intercom-bridge/bridge/rules"
)

// EnvelopeHeader marks a stored message whose body is an Envelope.
const EnvelopeHeader = "Bridge-Envelope"

// RefusedHeader marks a stored message that stands for an event that could
// not be stored: it says why, and stage 1 dead-letters it with that reason.
const RefusedHeader = "Bridge-Refused"

// Envelope is an event as the bridge stores it: what rules see.
type Envelope struct {
	ID      string            `json:"id"`
	Source  string            `json:"source"`
	Subject string            `json:"subject"`
	Type    string            `json:"type,omitempty"`
	Time    time.Time         `json:"time"`
	Headers map[string]string `json:"headers,omitempty"`
	Data    json.RawMessage   `json:"data"`
}

// Rules returns the event as rules see it.
func (e *Envelope) Rules() (*rules.Event, error) {
	data, err := rules.DecodeJSON(e.Data)
	if err != nil {
		return nil, fmt.Errorf("event %s: payload: %w", e.ID, err)
	}
	return &rules.Event{ID: e.ID, Source: e.Source, Subject: e.Subject, Type: e.Type, Time: e.Time, Headers: e.Headers, Data: data}, nil
}

// Msg returns the NATS message that stores the envelope on subject, with
// Nats-Msg-Id set so that JetStream stores a repeated event once.
func (e *Envelope) Msg(subject string) (*nats.Msg, error) {
	body, err := e.appendJSON(make([]byte, 0, 160+len(e.Data)))
	if err != nil {
		return nil, err
	}
	// Both names are in canonical form already: Header.Set would only
	// spend time finding that out.
	return &nats.Msg{Subject: subject, Data: body,
		Header: nats.Header{nats.MsgIdHdr: {MsgID(e.Source, e.ID)}, EnvelopeHeader: {"1"}}}, nil
}

// MsgID is the JetStream message id of an event: ids are unique per source.
func MsgID(source, id string) string { return source + ":" + id }

// BodyHash is the id of an event that carries none: the same body from the
// same source is the same event, so a sender's retries are stored once.
func BodyHash(source string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write(body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:32]
}

// Expr is a compiled id or subject expression of a source. It sees headers
// (lower-case names), event (the payload), source and subject.
type Expr struct {
	src  string
	prog *vm.Program
}

var exprEnv = map[string]any{
	"headers": map[string]any{},
	"event":   map[string]any{},
	"source":  "",
	"subject": "",
}

// CompileExpr compiles an id or subject expression; an empty one is nil.
func CompileExpr(src string) (*Expr, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil
	}
	prog, err := expr.Compile(src, expr.Env(exprEnv), expr.MaxNodes(500))
	if err != nil {
		return nil, err
	}
	return &Expr{src: src, prog: prog}, nil
}

// Eval returns the expression's value as text; "" when it gives nothing
// (a missing header, say), so the caller falls back to the next choice.
func (x *Expr) Eval(headers map[string]string, data any, source, subject string) (string, error) {
	if x == nil {
		return "", nil
	}
	out, err := expr.Run(x.prog, map[string]any{"headers": rules.HeaderEnv(headers), "event": data, "source": source, "subject": subject})
	if err != nil {
		return "", fmt.Errorf("%s: %w", x.src, err)
	}
	switch v := out.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int, int64, float64, bool:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("%s: gives %T, not text", x.src, out)
}

// Headers returns headers as rules see them: lower-case names, the first
// value of each, without the ones that carry credentials or are NATS's or
// the bridge's own. keep, when not nil, selects among the others. It takes
// both nats.Header and http.Header.
func Headers(h map[string][]string, keep func(lowerName string) bool) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		name := strings.ToLower(k)
		if len(v) == 0 || IsSecretHeader(name) || strings.HasPrefix(name, "nats-") || name == strings.ToLower(EnvelopeHeader) {
			continue
		}
		if keep != nil && !keep(name) {
			continue
		}
		out[name] = v[0]
	}
	return out
}

// IsSecretHeader reports headers that carry credentials or signatures and
// are never stored with an event.
func IsSecretHeader(lowerName string) bool {
	switch lowerName {
	case "authorization", "proxy-authorization", "cookie", "set-cookie",
		"webhook-signature", "x-hub-signature", "x-hub-signature-256", "x-signature-256", "stripe-signature":
		return true
	}
	return strings.Contains(lowerName, "signature") || strings.Contains(lowerName, "token") || strings.Contains(lowerName, "secret")
}

// Seq formats a stream sequence as an event id.
func Seq(stream string, seq uint64) string { return stream + "-" + strconv.FormatUint(seq, 10) }

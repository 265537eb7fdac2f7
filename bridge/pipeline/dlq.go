package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/intercom"
)

// Reasons a dead letter was written.
const (
	ReasonPermanent       = "permanent"          // Intercom refused the message (4xx)
	ReasonExhausted       = "attempts_exhausted" // retryable failures, max_attempts times
	ReasonUncertain       = "uncertain"          // may have been sent; on_uncertain is dead_letter
	ReasonRender          = "render"             // the rule's condition or templates failed for the event
	ReasonContactNotFound = "contact_not_found"  // no Intercom contact matches a recipient
	ReasonInvalidEvent    = "invalid_event"      // the stored event could not be read
)

// DeadLetter is an entry of the dead-letter stream: what could not be
// delivered, and why.
type DeadLetter struct {
	Reason    string          `json:"reason"`
	Error     string          `json:"error"`
	Rule      string          `json:"rule,omitempty"`
	EventID   string          `json:"event_id,omitempty"`
	Source    string          `json:"source,omitempty"`
	Key       string          `json:"key,omitempty"`
	Attempts  int             `json:"attempts,omitempty"`
	Status    int             `json:"status,omitempty"`     // Intercom's HTTP status
	Code      string          `json:"code,omitempty"`       // Intercom's error code
	RequestID string          `json:"request_id,omitempty"` // Intercom's request id
	Job       *Job            `json:"job,omitempty"`        // the rendered request, when there is one
	Event     *event.Envelope `json:"event,omitempty"`      // the event, for render errors
	Raw       *RawEvent       `json:"raw,omitempty"`        // a stored event that could not be read
	At        time.Time       `json:"at"`
}

// RawEvent is a stored message that could not be read as an event.
type RawEvent struct {
	Subject string      `json:"subject"`
	Header  nats.Header `json:"header,omitempty"`
	Data    []byte      `json:"data"`
}

// withIntercomError fills in Intercom's status, code and request id.
func (d *DeadLetter) withIntercomError(err error) {
	var ie *intercom.Error
	if !errors.As(err, &ie) {
		return
	}
	d.Status, d.RequestID = ie.StatusCode, ie.RequestID
	if len(ie.Errors) > 0 {
		d.Code = ie.Errors[0].Code
	}
}

// deadLetters writes to the dead-letter stream.
type deadLetters struct {
	js       Publisher
	topology broker.Topology
}

// dlqOrigin names the stored message a dead letter is about: its stream
// and sequence. Each stored message is dead-lettered at most once (per
// rule, for an event); a replay stores it again, under a new sequence, so
// a replay that fails again writes a new dead letter.
func dlqOrigin(stream string, seq uint64) string { return stream + ":" + strconv.FormatUint(seq, 10) }

// write stores d and returns once JetStream has it. origin is the
// dlqOrigin of the message that failed.
func (w *deadLetters) write(ctx context.Context, d *DeadLetter, origin string) error {
	return WriteDeadLetter(ctx, w.js, w.topology, d, origin)
}

// WriteDeadLetter stores d in t's dead-letter stream and returns once
// JetStream has it. origin names the stored message that failed (its
// stream and sequence): one entry is kept per origin and rule.
func WriteDeadLetter(ctx context.Context, js Publisher, t broker.Topology, d *DeadLetter, origin string) error {
	if d.At.IsZero() {
		d.At = time.Now().UTC()
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	m := nats.NewMsg(t.DLQSubjectFor(d.Rule))
	m.Data = body
	// One entry per failed message and rule: a message redelivered after
	// its dead letter was stored, but before its ack, is not stored twice.
	m.Header.Set(nats.MsgIdHdr, "dlq:"+origin+":"+d.Rule)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

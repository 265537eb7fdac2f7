package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

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
	// Omitted is set when the dead letter with its job, event or raw
	// event would have been larger than the NATS server takes.
	Omitted *Omitted  `json:"omitted,omitempty"`
	At      time.Time `json:"at"`
}

// Omitted says what a dead letter left out to fit under the NATS server's
// max_payload, and where that is still stored.
type Omitted struct {
	What  string `json:"what"`  // "job", "event" or "raw": the field left out
	Bytes int    `json:"bytes"` // the size the dead letter would have had
	// Stream and Seq are the stored event, for a dead letter of stage 1:
	// the events stream keeps it for nats.events.max_age, and a replay
	// reads it from there. A job is kept nowhere once dead-lettered.
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
}

// String says what was left out and where it is, for dlq show and the
// console.
func (o *Omitted) String() string {
	what := map[string]string{"job": "the rendered request", "event": "the event", "raw": "the stored message"}[o.What]
	s := fmt.Sprintf("%s: with it the dead letter would have been %d bytes, more than the NATS server takes (max_payload)", cmp.Or(what, o.What), o.Bytes)
	if o.Stream != "" {
		s += fmt.Sprintf("; it is stored in %s at sequence %d, for as long as that stream keeps it", o.Stream, o.Seq)
	}
	return s
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

// Origin is the stored message a dead letter is about: its stream and
// sequence. Each stored message is dead-lettered at most once (per rule,
// for an event); a replay stores it again, under a new sequence, so a
// replay that fails again writes a new dead letter.
type Origin struct {
	Stream string
	Seq    uint64
}

func (o Origin) String() string { return o.Stream + ":" + strconv.FormatUint(o.Seq, 10) }

// write stores d and returns once JetStream has it. origin is the message
// that failed.
func (w *deadLetters) write(ctx context.Context, d *DeadLetter, origin Origin) error {
	return WriteDeadLetter(ctx, w.js, w.topology, d, origin)
}

// omittedErrorBytes is as much of the error as a dead letter that leaves
// its payload out keeps.
const omittedErrorBytes = 4 << 10

// WriteDeadLetter stores d in t's dead-letter stream and returns once
// JetStream has it. origin names the stored message that failed (its
// stream and sequence): one entry is kept per origin and rule.
//
// A dead letter that would be larger than the NATS server takes leaves its
// job, event or raw event out (d.Omitted says which, and where a stored
// event still is), rather than fail every time the message comes back.
func WriteDeadLetter(ctx context.Context, js Publisher, t broker.Topology, d *DeadLetter, origin Origin) error {
	if d.At.IsZero() {
		d.At = time.Now().UTC()
	}
	m := nats.NewMsg(t.DLQSubjectFor(d.Rule))
	// One entry per failed message and rule: a message redelivered after
	// its dead letter was stored, but before its ack, is not stored twice.
	m.Header.Set(nats.MsgIdHdr, "dlq:"+origin.String()+":"+d.Rule)
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m.Data = body
	_, err = js.PublishMsg(ctx, m)
	if errors.Is(err, nats.ErrMaxPayload) {
		d.omit(t, origin, len(body))
		if m.Data, err = json.Marshal(d); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		_, err = js.PublishMsg(ctx, m)
	}
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

// omit leaves out what makes d size bytes, and cuts its error short.
func (d *DeadLetter) omit(t broker.Topology, origin Origin, size int) {
	o := &Omitted{Bytes: size}
	switch {
	case d.Job != nil:
		o.What, d.Job = "job", nil
	case d.Event != nil:
		o.What, d.Event = "event", nil
	case d.Raw != nil:
		o.What, d.Raw = "raw", nil
	}
	if o.What != "job" && origin.Stream == t.Events.Name {
		o.Stream, o.Seq = origin.Stream, origin.Seq
	}
	if len(d.Error) > omittedErrorBytes {
		cut := omittedErrorBytes
		for cut > 0 && !utf8.RuneStart(d.Error[cut]) {
			cut--
		}
		d.Error = d.Error[:cut] + "…"
	}
	d.Omitted = o
}

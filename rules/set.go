package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Set is a loaded, compiled set of rules. It is immutable and safe for
// concurrent use; a reload builds a new Set and swaps it in whole.
type Set struct {
	rules  []*Rule
	byName map[string]*Rule
	index  *index
	hash   string
	// cancelers are the rules with a cancel_on, which every event is
	// checked against whatever the index says.
	cancelers []int
}

func newSet(rules []*Rule, hash string) *Set {
	s := &Set{rules: rules, byName: make(map[string]*Rule, len(rules)), index: newIndex(rules), hash: hash}
	for i, r := range rules {
		s.byName[r.Name] = r
		if r.schedule != nil && len(r.schedule.cancelOn) > 0 {
			s.cancelers = append(s.cancelers, i)
		}
	}
	return s
}

// Rule returns the rule named name, or nil.
func (s *Set) Rule(name string) *Rule { return s.byName[name] }

// Rules returns the rules in load order (files sorted by name, rules in
// file order).
func (s *Set) Rules() []*Rule { return slices.Clone(s.rules) }

// Len is the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Hash identifies the rule files' content, to tell which set is running.
func (s *Set) Hash() string { return s.hash }

// Event is what rules match against and render from. Conditions and
// templates see its fields under these names: event (Data), source,
// subject, id, type, time and headers (lower-case names).
type Event struct {
	ID      string
	Source  string
	Subject string
	Type    string // the CloudEvents type, when there is one
	Time    time.Time
	Headers map[string]string
	Data    any // the JSON payload: maps, lists, strings, float64, int64, bool, nil
}

func (e *Event) env() map[string]any {
	return map[string]any{
		"event":   e.Data,
		"source":  e.Source,
		"subject": e.Subject,
		"id":      e.ID,
		"type":    e.Type,
		"time":    e.Time,
		"headers": HeaderEnv(e.Headers),
	}
}

// HeaderEnv is headers as conditions and templates see them: a missing
// header is nil, so that headers["x"] ?? "default" works.
func HeaderEnv(h map[string]string) map[string]any {
	out := make(map[string]any, len(h))
	for k, v := range h {
		out[k] = v
	}
	return out
}

// Message is what a rule asks to send, with the field names of Intercom's
// API. Its recipients are people as the rule names them (by your own user
// id, an email or Intercom's id); the bridge looks them up and sends
// Intercom's 2.x form, {type: user|lead, id}.
type Message struct {
	MessageType                           string      `json:"message_type"`
	Subject                               string      `json:"subject,omitempty"`
	Body                                  string      `json:"body"`
	Template                              string      `json:"template,omitempty"`
	From                                  Admin       `json:"from"`
	To                                    Recipients  `json:"to"`
	Cc                                    []Recipient `json:"cc,omitempty"`
	Bcc                                   []Recipient `json:"bcc,omitempty"`
	CreatedAt                             int64       `json:"created_at,omitempty"` // unix seconds; 0: none
	CreateConversationWithoutContactReply *bool       `json:"create_conversation_without_contact_reply,omitempty"`
}

// Recipients are a message's people under "to". A single recipient, an
// object rather than a list, is read too: jobs stored by earlier versions
// have one.
type Recipients []Recipient

// UnmarshalJSON reads a list of recipients or a single one.
func (r *Recipients) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var one Recipient
		if err := json.Unmarshal(t, &one); err != nil {
			return fmt.Errorf("to: %w", err)
		}
		*r = Recipients{one}
		return nil
	}
	if err := json.Unmarshal(b, (*[]Recipient)(r)); err != nil {
		return fmt.Errorf("to: %w", err)
	}
	return nil
}

// Admin is the sender of a message.
type Admin struct {
	Type string `json:"type"` // always "admin"
	ID   string `json:"id"`
}

// Recipient is a person as a rule names it: a type (user, lead, or contact
// for either) and exactly one of Intercom's contact id, your own user id
// (Intercom's external_id) or an email.
type Recipient struct {
	Type   string `json:"type"`
	ID     string `json:"id,omitempty"`
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"email,omitempty"`
}

// String names the recipient as a rule does: "user user_id u-42".
func (r Recipient) String() string {
	switch {
	case r.ID != "":
		return r.Type + " id " + r.ID
	case r.UserID != "":
		return r.Type + " user_id " + r.UserID
	}
	return r.Type + " email " + r.Email
}

// Delivery is one message that a rule produced for an event.
type Delivery struct {
	Rule      string
	DedupeKey string    // the rendered dedupe key; by default DefaultDedupeKey
	Throttle  *Throttle // nil when the rule has no throttle
	Schedule  *Schedule // nil: sent at once
	Message   Message
}

// Schedule is when a rule's message waits to go out: At, the instant it
// goes (quiet hours applied; at or before the event's time means at once),
// and Key: a rule has at most one waiting message per key, and a new one
// replaces it.
type Schedule struct {
	At  time.Time
	Key string
}

// Cancel is a waiting message that an event cancels: the one of Rule
// with Key (a rule's cancel_on).
type Cancel struct {
	Rule string
	Key  string
}

// Throttle allows at most one message per Key per window.
type Throttle struct {
	Key string
	Per time.Duration
}

// EvalError is a rule that failed for one event: its condition errored or
// a template could not render. The event's other rules are unaffected.
type EvalError struct {
	Rule string
	Err  error // usually an *Error with the position in the rule file
}

func (e *EvalError) Error() string { return fmt.Sprintf("rule %s: %v", e.Rule, e.Err) }
func (e *EvalError) Unwrap() error { return e.Err }

// Result is what a set produced for one event.
type Result struct {
	Deliveries []Delivery
	Cancels    []Cancel // waiting messages the event cancels
	Errors     []*EvalError
}

// Evaluate matches the event against the candidate rules and renders a
// delivery for each rule whose condition holds. It also lists the waiting
// messages that the event cancels: every rule's cancel_on sees every
// event, whatever the rule's on: and when say.
func (s *Set) Evaluate(ev *Event) Result {
	var buf [16]int
	cands := s.index.candidates(ev.Source, ev.Subject, buf[:0])
	var res Result
	if len(cands) == 0 && len(s.cancelers) == 0 {
		return res
	}
	env := ev.env()
	for _, i := range cands {
		r := s.rules[i]
		ok, err := r.match(env)
		if err == nil && ok {
			var d Delivery
			if d, err = r.render(ev, env); err == nil {
				res.Deliveries = append(res.Deliveries, d)
			}
		}
		if err != nil {
			res.Errors = append(res.Errors, &EvalError{Rule: r.Name, Err: err})
		}
	}
	for _, i := range s.cancelers {
		r := s.rules[i]
		cancels, err := r.cancels(env)
		res.Cancels = append(res.Cancels, cancels...)
		if err != nil {
			res.Errors = append(res.Errors, &EvalError{Rule: r.Name, Err: err})
		}
	}
	return res
}

// Outcome is what one rule did with one event.
type Outcome string

const (
	Matched Outcome = "matched" // the condition held and the message rendered
	NoMatch Outcome = "false"   // the condition was false
	Failed  Outcome = "error"   // the condition or a template failed
	Skipped Outcome = "skipped" // on.sources or on.subjects left the event out
)

// Explanation says what one rule did with an event and why.
type Explanation struct {
	Rule     string
	Pos      Pos
	Outcome  Outcome
	Reason   string    // for Skipped: which filter
	Err      error     // for Failed
	Delivery *Delivery // for Matched
	// Wait, for a Matched rule with a schedule, says when the message goes
	// out: "waits until 2026-03-15T07:00:00Z (due ..., in quiet hours ...)".
	Wait string
	// Cancels are the rule's waiting messages that the event cancels, and
	// CancelErr a cancel_on that failed; whatever the Outcome.
	Cancels   []Cancel
	CancelErr error
}

// Explain reports, for every rule in order, what it did with the event.
func (s *Set) Explain(ev *Event) []Explanation {
	cands := s.index.candidates(ev.Source, ev.Subject, nil)
	env := ev.env()
	out := make([]Explanation, 0, len(s.rules))
	for i, r := range s.rules {
		x := Explanation{Rule: r.Name, Pos: r.Pos}
		switch ok, err := r.match(env); {
		case !slices.Contains(cands, i):
			x.Outcome, x.Reason = Skipped, r.filterReason(ev)
		case err != nil:
			x.Outcome, x.Err = Failed, err
		case !ok:
			x.Outcome = NoMatch
		default:
			d, err := r.render(ev, env)
			if err != nil {
				x.Outcome, x.Err = Failed, err
			} else {
				x.Outcome, x.Delivery = Matched, &d
			}
			if err == nil && r.schedule != nil {
				// It rendered, so planning again gives the same answer.
				p, _ := r.schedule.plan(ev, env)
				x.Wait = p.describe(r.schedule.quiet, ev)
			}
		}
		if slices.Contains(s.cancelers, i) {
			x.Cancels, x.CancelErr = r.cancels(env)
		}
		out = append(out, x)
	}
	return out
}

// filterReason says which of on.sources and on.subjects left an event out.
func (r *Rule) filterReason(ev *Event) string {
	var why []string
	if !admitsSource(r, ev.Source) {
		why = append(why, fmt.Sprintf("source %q is not in on.sources [%s]", ev.Source, strings.Join(r.Sources, ", ")))
	}
	if len(r.Subjects) > 0 && !slices.ContainsFunc(r.Subjects, func(p string) bool { return SubjectMatches(p, ev.Subject) }) {
		why = append(why, fmt.Sprintf("subject %q matches none of on.subjects [%s]", ev.Subject, strings.Join(r.Subjects, ", ")))
	}
	return strings.Join(why, "; ")
}

var vmPool = sync.Pool{New: func() any { return &vm.VM{MemoryBudget: conditionMemoryBudget} }}

// match evaluates the rule's condition. A runtime error (comparing a
// missing field, say) is returned, never taken as false.
func (r *Rule) match(env map[string]any) (bool, error) {
	if r.when == nil {
		return true, nil
	}
	return r.when.eval(env)
}

// eval runs the condition on an event's env.
func (c *condition) eval(env map[string]any) (bool, error) {
	m := vmPool.Get().(*vm.VM)
	out, err := m.Run(c.prog, env)
	vmPool.Put(m)
	if err != nil {
		pos, msg := conditionError(c.where, err)
		return false, &Error{Pos: pos, Msg: c.field + ": " + msg}
	}
	b, ok := out.(bool)
	if !ok {
		return false, &Error{Pos: c.where.at(0), Msg: fmt.Sprintf("%s: the condition gave %s, not true or false", c.field, describe(out))}
	}
	return b, nil
}

func describe(v any) string {
	if v == nil {
		return "nil (a missing field?)"
	}
	return fmt.Sprintf("%T %v", v, v)
}

var crlf = strings.NewReplacer("\r", "", "\n", "")

// render builds the rule's delivery for an event whose condition held.
func (r *Rule) render(ev *Event, env map[string]any) (Delivery, error) {
	d := Delivery{Rule: r.Name}
	m := &d.Message
	m.MessageType = r.messageType
	m.Template = r.template
	m.From = Admin{Type: "admin", ID: r.from}
	var err error
	for _, l := range []struct {
		tmpls []recipientTmpl
		dst   *[]Recipient
	}{{r.to, (*[]Recipient)(&m.To)}, {r.cc, &m.Cc}, {r.bcc, &m.Bcc}} {
		for _, rt := range l.tmpls {
			p, err := rt.render(env)
			if err != nil {
				return d, err
			}
			*l.dst = append(*l.dst, p)
		}
	}
	switch {
	case r.createdAtEvent:
		m.CreatedAt = ev.Time.Unix()
	case r.createdAt != nil:
		if m.CreatedAt, err = r.renderCreatedAt(env); err != nil {
			return d, err
		}
	}
	if r.subject != nil {
		subject, err := r.subject.render(env)
		if err != nil {
			return d, err
		}
		// A subject is one line: a line break from an event value must not
		// reach a mail header.
		m.Subject = strings.TrimSpace(crlf.Replace(subject))
		if m.Subject == "" {
			return d, r.subject.empty()
		}
	}
	if m.Body, err = r.body.render(env); err != nil {
		return d, err
	}
	if strings.TrimSpace(m.Body) == "" {
		return d, r.body.empty()
	}
	d.DedupeKey = DefaultDedupeKey(ev)
	if r.dedupe != nil {
		if d.DedupeKey, err = r.dedupe.render(env); err != nil {
			return d, err
		}
		d.DedupeKey = strings.TrimSpace(d.DedupeKey)
	}
	if d.DedupeKey == "" || (r.dedupe == nil && ev.ID == "") {
		if r.dedupe != nil {
			return d, r.dedupe.empty()
		}
		return d, errors.New("the event has no id and the rule no dedupe key")
	}
	if r.throttleKey != nil {
		key, err := r.throttleKey.render(env)
		if err != nil {
			return d, err
		}
		if key = strings.TrimSpace(key); key == "" {
			return d, r.throttleKey.empty()
		}
		d.Throttle = &Throttle{Key: key, Per: r.throttlePer}
	}
	if r.schedule != nil {
		if d.Schedule, err = r.schedule.render(ev, env, d.DedupeKey); err != nil {
			return d, err
		}
	}
	return d, nil
}

// render gives the delivery's schedule: when it goes out, and its key (by
// default the dedupe key).
func (s *schedule) render(ev *Event, env map[string]any, dedupeKey string) (*Schedule, error) {
	p, err := s.plan(ev, env)
	if err != nil {
		return nil, err
	}
	key := dedupeKey
	if s.key != nil {
		if key, err = s.key.render(env); err != nil {
			return nil, err
		}
		if key = strings.TrimSpace(key); key == "" {
			return nil, s.key.empty()
		}
	}
	return &Schedule{At: p.at, Key: key}, nil
}

// render renders one recipient.
func (rt recipientTmpl) render(env map[string]any) (Recipient, error) {
	p := Recipient{Type: rt.typ}
	v, err := rt.value.render(env)
	if err != nil {
		return p, err
	}
	if v = strings.TrimSpace(v); v == "" {
		return p, rt.value.empty()
	}
	switch rt.ident {
	case "id":
		p.ID = v
	case "user_id":
		p.UserID = v
	case "email":
		p.Email = v
	}
	return p, nil
}

// renderCreatedAt renders created_at as unix seconds: the template gives
// either those or an RFC 3339 time.
func (r *Rule) renderCreatedAt(env map[string]any) (int64, error) {
	v, err := r.createdAt.render(env)
	if err != nil {
		return 0, err
	}
	v = strings.TrimSpace(v)
	if t, ok := parseInstant(v); ok {
		return t.Unix(), nil
	}
	return 0, &Error{Pos: r.createdAt.where.at(0), Msg: fmt.Sprintf("message.created_at: %q is neither unix seconds nor an RFC 3339 time", v)}
}

// parseInstant reads a time that a template gave: positive unix seconds
// or RFC 3339.
func parseInstant(v string) (time.Time, bool) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), n > 0
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// empty is the error for a field that rendered to nothing.
func (t *tmpl) empty() error {
	return &Error{Pos: t.where.at(0), Msg: t.field + " rendered empty"}
}

// DefaultDedupeKey is the dedupe key of a rule that sets none: the event
// id within its source ("shop:evt-1"), so that an event from one source
// cannot stand for another source's event with the same id (an open
// source's would suppress a signed one's). An explicit dedupe key is
// global on purpose: rules dedupe across sources with it.
func DefaultDedupeKey(ev *Event) string {
	if ev.Source == "" || ev.ID == "" {
		return ev.ID
	}
	return ev.Source + ":" + ev.ID
}

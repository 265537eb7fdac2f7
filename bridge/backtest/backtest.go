// Package backtest replays the stored events through two rule sets, the
// deployed one and a candidate, and reports per rule what each would have
// matched and sent: what `bridge backtest` prints.
//
// It reads the events stream with an ordered consumer only (ephemeral,
// nothing left on the server, never the service's durable consumers), so
// it works beside a running bridge or on its stopped store. Dedupe and
// throttles are those of stage 2, run by pipeline.Simulator on the events'
// own clock. It imports broker, event, pipeline and rules, never the
// service or config.
package backtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/rules"
)

// Options are what a backtest needs.
type Options struct {
	Topology broker.Topology
	Decoder  *event.Decoder
	// Deployed is the rule set in force; Candidate the one to compare.
	Deployed, Candidate *rules.Set
	// From and To bound the window by the time each event was stored;
	// zero: the stream's first or last event.
	From, To time.Time
	// Rule, when not empty, keeps only that rule in the report.
	Rule string
	// Policy is stage 2's; the simulation sends nothing, but decides as
	// stage 2 does.
	Policy pipeline.Policy
	// Samples is how many sample events each rule keeps for each kind of
	// difference (added, removed, changed) and for new errors.
	Samples int
	// Progress, when set, is called now and then with the events read
	// and the total in the window.
	Progress func(read, total int)
}

// Report is what a backtest found.
type Report struct {
	Stream StreamRange `json:"stream"` // what the events stream holds
	From   time.Time   `json:"from"`   // the window read
	To     time.Time   `json:"to"`
	Events int         `json:"events"` // events read in the window
	// Unreadable are events that could not be read back (as stage 1
	// dead-letters them); no rule saw them.
	Unreadable int           `json:"unreadable"`
	Rules      []*RuleReport `json:"rules"`
	// NewErrors counts the candidate's rule errors on events where the
	// deployed rule of that name had none.
	NewErrors int `json:"new_errors"`
}

// StreamRange is what the events stream holds.
type StreamRange struct {
	Name   string    `json:"name"`
	Events uint64    `json:"events"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// RuleReport is one rule's counts before (deployed) and after (candidate).
type RuleReport struct {
	Rule string `json:"rule"`
	// Change is "added" (only in the candidate), "removed" (only
	// deployed), or "" for a rule in both sets.
	Change  string `json:"change,omitempty"`
	Before  Counts `json:"before"`
	After   Counts `json:"after"`
	Added   int    `json:"added"`   // messages the candidate sends and the deployed set does not
	Removed int    `json:"removed"` // the other way round
	Changed int    `json:"changed"` // sent by both, different
	// NewErrors counts events the rule fails for in the candidate only.
	NewErrors int      `json:"new_errors"`
	Samples   []Sample `json:"samples,omitempty"`
}

// Counts are what one rule set's rule did over the window.
type Counts struct {
	Matched    int `json:"matched"`   // the condition held and the message rendered
	Sent       int `json:"sent"`      // after dedupe and throttle
	Duplicates int `json:"duplicate"` // dropped: the delivery key was sent already
	Throttled  int `json:"throttled"`
	Waiting    int `json:"waiting"` // held by the rule's schedule; not simulated further
	Errors     int `json:"errors"`  // the condition or a template failed
}

// Sample is one event where the two sets differ for a rule.
type Sample struct {
	Kind    string    `json:"kind"` // added, removed, changed or error
	EventID string    `json:"event_id"`
	Source  string    `json:"source"`
	Subject string    `json:"subject"`
	Time    time.Time `json:"time"`
	// Before and After are the messages sent, nil when none.
	Before *rules.Message `json:"before,omitempty"`
	After  *rules.Message `json:"after,omitempty"`
	// Instead is what became of a message that is no longer sent, or
	// not yet: duplicate or throttled (in the set that does not send it);
	// "" when that set's rule did not match.
	Instead string `json:"instead,omitempty"`
	// WaitsUntil is when the candidate's message would go out, for one
	// that waits.
	WaitsUntil *time.Time `json:"waits_until,omitempty"`
	Diff       string     `json:"diff,omitempty"`  // for changed: each field that differs, bodies line by line
	Error      string     `json:"error,omitempty"` // for error
}

// RangeError is a window that lies wholly outside what the events stream
// holds.
type RangeError struct {
	Stream   StreamRange
	From, To time.Time
}

func (e *RangeError) Error() string {
	if e.Stream.Events == 0 {
		return fmt.Sprintf("the events stream %s holds no events", e.Stream.Name)
	}
	return fmt.Sprintf("the events stream %s holds %d events from %s to %s; the window %s to %s is outside it",
		e.Stream.Name, e.Stream.Events, stamp(e.Stream.First), stamp(e.Stream.Last), stamp(e.From), stamp(e.To))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Run reads the window's events and compares the two sets over them. A
// window outside the stream is a *RangeError; an empty one inside it a
// Report with no events.
func Run(ctx context.Context, js jetstream.JetStream, o Options) (*Report, error) {
	name := o.Topology.Events.Name
	stream, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	rep := &Report{Stream: StreamRange{Name: name, Events: info.State.Msgs, First: info.State.FirstTime.UTC(), Last: info.State.LastTime.UTC()}}
	rep.From, rep.To = o.From, o.To
	if rep.From.IsZero() {
		rep.From = rep.Stream.First
	}
	if rep.To.IsZero() {
		rep.To = rep.Stream.Last
	}
	if rep.Stream.Events == 0 || rep.From.After(rep.Stream.Last) || rep.To.Before(rep.Stream.First) {
		return nil, &RangeError{Stream: rep.Stream, From: rep.From, To: rep.To}
	}
	c := newComparison(o)
	if err := read(ctx, stream, o, rep, c.batch); err != nil {
		return nil, err
	}
	if err := cmp.Or(c.deployed.err, c.candidate.err); err != nil {
		return nil, fmt.Errorf("simulation: %w", err)
	}
	rep.Rules, rep.NewErrors = c.reports()
	return rep, nil
}

// read hands the stored events of the window to fn, decoded, in order,
// in batches. Decoding, the NATS side included, runs beside fn.
func read(ctx context.Context, stream jetstream.Stream, o Options, rep *Report, fn func([]*rules.Event)) error {
	name := o.Topology.Events.Name
	from := rep.From
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from, InactiveThreshold: time.Minute})
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	defer it.Stop()
	total, err := windowSize(ctx, stream, cons, rep.To)
	if err != nil || total == 0 {
		return err
	}

	batches := make(chan []*rules.Event, 4)
	errc := make(chan error, 1)
	go func() {
		defer close(batches)
		errc <- decodeAll(ctx, it, o.Decoder, rep, total, batches, o.Progress)
	}()
	for b := range batches {
		fn(b)
	}
	return <-errc
}

// batchSize events go from the reader to the comparison at a time.
const batchSize = 256

// decodeAll reads the window's total events (the ordered consumer starts
// at its first), decodes them and sends them on in batches.
func decodeAll(ctx context.Context, it jetstream.MessagesContext, dec *event.Decoder, rep *Report, total int,
	out chan<- []*rules.Event, progress func(read, total int)) error {
	batch := make([]*rules.Event, 0, batchSize)
	step := max(total/1000, 1)
	for rep.Events+rep.Unreadable < total {
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) && ctx.Err() == nil {
				// Events counted at the start have aged out meanwhile.
				break
			}
			return fmt.Errorf("stream %s: %w", rep.Stream.Name, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("stream %s: %w", rep.Stream.Name, err)
		}
		if meta.Timestamp.After(rep.To) {
			break
		}
		if ev := decode(dec, msg, meta); ev != nil {
			rep.Events++
			batch = append(batch, ev)
		} else {
			rep.Unreadable++
		}
		if len(batch) == batchSize {
			out <- batch
			batch = make([]*rules.Event, 0, batchSize)
		}
		if n := rep.Events + rep.Unreadable; progress != nil && n%step == 0 {
			progress(n, total)
		}
	}
	if len(batch) > 0 {
		out <- batch
	}
	if progress != nil {
		progress(rep.Events+rep.Unreadable, total)
	}
	return nil
}

// decode reads a stored event back as stage 1 does; nil when it cannot.
func decode(dec *event.Decoder, msg jetstream.Msg, meta *jetstream.MsgMetadata) *rules.Event {
	env, err := dec.Decode(msg.Subject(), msg.Headers(), msg.Data(), meta.Sequence.Stream, meta.Timestamp)
	if err != nil {
		return nil
	}
	ev, err := env.Rules()
	if err != nil {
		return nil
	}
	return ev
}

// windowSize is how many events the consumer, which starts at the
// window's first, delivers up to to: all it will deliver, less what a
// consumer starting just after to would.
func windowSize(ctx context.Context, stream jetstream.Stream, cons jetstream.Consumer, to time.Time) (int, error) {
	all, err := toDeliver(ctx, cons)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	after := to.Add(time.Nanosecond)
	rest, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &after, InactiveThreshold: time.Minute})
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	it, err := rest.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	defer it.Stop()
	later, err := toDeliver(ctx, rest)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream.CachedInfo().Config.Name, err)
	}
	return int(all - min(later, all)), nil
}

// toDeliver is how many events an ordered consumer that has just started
// delivers in all: those it has handed its client already (it prefetches)
// and those still pending.
func toDeliver(ctx context.Context, cons jetstream.Consumer) (uint64, error) {
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return ci.NumPending + ci.Delivered.Consumer, nil
}

// comparison holds the two sides and the per-rule reports.
type comparison struct {
	o                   Options
	deployed, candidate *side
	byRule              map[string]*RuleReport
}

// side is one rule set, its simulation and its counts: each side is
// worked by one goroutine at a time.
type side struct {
	set    *rules.Set
	sim    *pipeline.Simulator
	counts map[string]*Counts // every rule of both sets
	err    error              // the first simulator error; nothing else fails
}

func newComparison(o Options) *comparison {
	window := o.Topology.Sent.TTL
	c := &comparison{o: o, byRule: map[string]*RuleReport{}}
	for _, r := range o.Deployed.Rules() {
		c.byRule[r.Name] = &RuleReport{Rule: r.Name, Change: "removed"}
	}
	for _, r := range o.Candidate.Rules() {
		if rr, ok := c.byRule[r.Name]; ok {
			rr.Change = ""
		} else {
			c.byRule[r.Name] = &RuleReport{Rule: r.Name, Change: "added"}
		}
	}
	newSide := func(set *rules.Set, counts func(*RuleReport) *Counts) *side {
		s := &side{set: set, sim: pipeline.NewSimulator(window, o.Policy), counts: map[string]*Counts{}}
		for name, r := range c.byRule {
			s.counts[name] = counts(r)
		}
		return s
	}
	c.deployed = newSide(o.Deployed, func(r *RuleReport) *Counts { return &r.Before })
	c.candidate = newSide(o.Candidate, func(r *RuleReport) *Counts { return &r.After })
	return c
}

// outcome is what one rule set did with one event for one rule.
type outcome struct {
	delivery *rules.Delivery
	result   string // a pipeline outcome
	err      error
}

// goesOut reports a message that is sent, or waits to be.
func (x outcome) goesOut() bool {
	return x.delivery != nil && (x.result == pipeline.OutcomeSent || x.result == pipeline.OutcomeWaiting)
}

// batch evaluates events with both sets, the two sides in parallel (they
// share nothing but the events), then compares them event by event.
func (c *comparison) batch(evs []*rules.Event) {
	before := make([]map[string]outcome, len(evs))
	var wg sync.WaitGroup
	wg.Go(func() {
		for i, ev := range evs {
			before[i] = c.deployed.evaluate(ev)
		}
	})
	after := make([]map[string]outcome, len(evs))
	for i, ev := range evs {
		after[i] = c.candidate.evaluate(ev)
	}
	wg.Wait()
	for i, ev := range evs {
		for rule, a := range after[i] {
			c.compare(rule, ev, before[i][rule], a)
		}
		for rule, b := range before[i] {
			if _, ok := after[i][rule]; !ok {
				c.compare(rule, ev, b, outcome{})
			}
		}
	}
}

// evaluate runs the side's set on ev and its simulator on the deliveries.
func (s *side) evaluate(ev *rules.Event) map[string]outcome {
	res := s.set.Evaluate(ev)
	if len(res.Deliveries) == 0 && len(res.Errors) == 0 {
		return nil
	}
	out := make(map[string]outcome, len(res.Deliveries)+len(res.Errors))
	for i := range res.Deliveries {
		d := &res.Deliveries[i]
		result, err := s.sim.Offer(d, ev.Time)
		if err != nil && s.err == nil {
			s.err = err
		}
		out[d.Rule] = outcome{delivery: d, result: result}
		n := s.counts[d.Rule]
		n.Matched++
		switch result {
		case pipeline.OutcomeSent:
			n.Sent++
		case pipeline.OutcomeDuplicate:
			n.Duplicates++
		case pipeline.OutcomeThrottled:
			n.Throttled++
		case pipeline.OutcomeWaiting:
			n.Waiting++
		}
	}
	for _, e := range res.Errors {
		out[e.Rule] = outcome{err: e.Err}
		s.counts[e.Rule].Errors++
	}
	return out
}

// compare counts and samples one rule's difference on one event.
func (c *comparison) compare(rule string, ev *rules.Event, b, a outcome) {
	if c.o.Rule != "" && rule != c.o.Rule {
		return
	}
	r := c.byRule[rule]
	var kind, diff string
	switch {
	case a.err != nil && b.err == nil:
		r.NewErrors++
		kind = "error"
	case a.goesOut() && !b.goesOut():
		r.Added++
		kind = "added"
	case b.goesOut() && !a.goesOut():
		r.Removed++
		kind = "removed"
	case a.goesOut() && b.goesOut():
		if diff = MessageDiff(&b.delivery.Message, &a.delivery.Message); diff == "" {
			return
		}
		r.Changed++
		kind = "changed"
	default:
		return
	}
	if c.samples(r, kind) >= c.o.Samples {
		return
	}
	s := Sample{Kind: kind, EventID: ev.ID, Source: ev.Source, Subject: ev.Subject, Time: ev.Time, Diff: diff}
	if b.goesOut() {
		s.Before = &b.delivery.Message
	} else if b.delivery != nil {
		s.Instead = b.result
	}
	if !a.goesOut() && a.delivery != nil {
		s.Instead = a.result
	}
	if a.goesOut() {
		s.After = &a.delivery.Message
		if a.result == pipeline.OutcomeWaiting {
			s.WaitsUntil = &a.delivery.Schedule.At
		}
	}
	if a.err != nil {
		s.Error = a.err.Error()
	}
	r.Samples = append(r.Samples, s)
}

func (c *comparison) samples(r *RuleReport, kind string) int {
	n := 0
	for _, s := range r.Samples {
		if s.Kind == kind {
			n++
		}
	}
	return n
}

// reports are the rules' reports by name (only -rule's, with it), and the
// candidate's new errors in all.
func (c *comparison) reports() ([]*RuleReport, int) {
	var out []*RuleReport
	total := 0
	for _, r := range c.byRule {
		if c.o.Rule != "" && r.Rule != c.o.Rule {
			continue
		}
		total += r.NewErrors
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *RuleReport) int { return cmp.Compare(a.Rule, b.Rule) })
	return out, total
}

// MessageDiff says how two messages differ, field by field, bodies line
// by line; "" when they are the same.
func MessageDiff(before, after *rules.Message) string {
	var out string
	field := func(name, b, a string) {
		if a != b {
			out += name + ":\n" + rules.DiffAs("deployed", "candidate", b, a) + "\n"
		}
	}
	field("message_type", before.MessageType, after.MessageType)
	field("subject", before.Subject, after.Subject)
	field("template", before.Template, after.Template)
	field("from", before.From.ID, after.From.ID)
	field("to", recipients(before.To), recipients(after.To))
	field("cc", recipients(before.Cc), recipients(after.Cc))
	field("bcc", recipients(before.Bcc), recipients(after.Bcc))
	field("body", before.Body, after.Body)
	return out
}

func recipients(rs []rules.Recipient) string {
	var s string
	for i, r := range rs {
		if i > 0 {
			s += ", "
		}
		s += r.String()
	}
	return s
}

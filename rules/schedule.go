package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	// Quiet hours and dateIn name IANA zones, and the Docker image has no
	// zoneinfo: every program that loads rules carries its own.
	_ "time/tzdata"

	"gopkg.in/yaml.v3"
)

// schedule is a rule's schedule block: its message waits, until a delay
// after the event or a time the event gives, moved out of quiet hours,
// unless an event of cancel_on cancels it first.
type schedule struct {
	pos      Pos           // the block, for errors about it as a whole
	delay    time.Duration // after the event's time; zero when at is set
	at       *tmpl         // a template giving the time
	offset   time.Duration // added to at
	quiet    *quietHours   // nil: none
	key      *tmpl         // nil: the delivery's dedupe key
	cancelOn []cancelOn
	maxDelay time.Duration // Options.MaxDelay; 0: unchecked
}

// quietHours is a window of the day, [from, to) in minutes after midnight,
// in which no message goes out. It wraps past midnight when from > to.
type quietHours struct {
	from, to int
	zone     *tmpl          // the zone's template
	loc      *time.Location // the zone, when it is written literally
}

// cancelOn is one entry of cancel_on: an event for which when holds
// cancels the rule's waiting message with the rendered key.
type cancelOn struct {
	when *condition
	key  *tmpl
}

// schedule decodes a rule's schedule block.
func (d *decoder) schedule(n *yaml.Node, opts Options) *schedule {
	var delayNode, atNode, offsetNode, quietNode, keyNode, cancelNode *yaml.Node
	if !d.fields(n, "schedule", map[string]func(*yaml.Node){
		"delay":       func(v *yaml.Node) { delayNode = v },
		"at":          func(v *yaml.Node) { atNode = v },
		"offset":      func(v *yaml.Node) { offsetNode = v },
		"quiet_hours": func(v *yaml.Node) { quietNode = v },
		"key":         func(v *yaml.Node) { keyNode = v },
		"cancel_on":   func(v *yaml.Node) { cancelNode = v },
	}) {
		return nil
	}
	n = resolve(n)
	s := &schedule{pos: d.src.pos(n), maxDelay: opts.MaxDelay}
	switch {
	case delayNode != nil && atNode != nil:
		d.errorf(atNode, "schedule has both delay and at: give one")
	case delayNode != nil:
		var ok bool
		s.delay, ok = d.positiveDuration(delayNode, "schedule.delay")
		if ok && opts.MaxDelay > 0 && s.delay > opts.MaxDelay {
			d.errorf(delayNode, "schedule.delay %s is longer than the events stream keeps an event (nats.events.max_age %s)", resolve(delayNode).Value, opts.MaxDelay)
		}
	case atNode != nil:
		s.at = d.textTemplate(atNode, "schedule.at")
	default:
		d.errorf(n, "schedule needs delay (a duration such as 24h) or at (a template giving an RFC 3339 time)")
	}
	if offsetNode != nil {
		if atNode == nil {
			d.errorf(offsetNode, "schedule.offset only goes with at; with delay, change the delay")
		} else {
			s.offset, _ = d.duration(offsetNode, "schedule.offset")
		}
	}
	if quietNode != nil {
		s.quiet = d.quietHours(quietNode)
	}
	if keyNode != nil {
		s.key = d.textTemplate(keyNode, "schedule.key")
	}
	if cancelNode != nil {
		s.cancelOn = d.cancelOn(cancelNode)
	}
	return s
}

// quietHours decodes schedule.quiet_hours: {from, to, timezone}.
func (d *decoder) quietHours(n *yaml.Node) *quietHours {
	const field = "schedule.quiet_hours"
	var fromNode, toNode, zoneNode *yaml.Node
	if !d.fields(n, field, map[string]func(*yaml.Node){
		"from":     func(v *yaml.Node) { fromNode = v },
		"to":       func(v *yaml.Node) { toNode = v },
		"timezone": func(v *yaml.Node) { zoneNode = v },
	}) {
		return nil
	}
	n = resolve(n)
	q := &quietHours{}
	clock := func(v *yaml.Node, name string) (int, bool) {
		if v == nil {
			d.errorf(n, "%s.%s is required (a time of day such as 21:00)", field, name)
			return 0, false
		}
		s, ok := d.str(v, field+"."+name)
		if !ok {
			return 0, false
		}
		m, err := parseClock(s)
		if err != nil {
			d.errorf(v, "%s.%s: %v", field, name, err)
			return 0, false
		}
		return m, true
	}
	from, okFrom := clock(fromNode, "from")
	to, okTo := clock(toNode, "to")
	if okFrom && okTo && from == to {
		d.errorf(toNode, "%s: from and to are both %s; the window must not be empty", field, formatClock(to))
	}
	q.from, q.to = from, to
	if zoneNode == nil {
		d.errorf(n, "%s.timezone is required (an IANA zone such as Europe/Berlin, or a template giving one)", field)
		return q
	}
	q.zone = d.textTemplate(zoneNode, field+".timezone")
	if q.zone != nil && q.zone.literal {
		loc, err := loadZone(strings.TrimSpace(q.zone.src))
		if err != nil {
			d.errorf(zoneNode, "%s.timezone: %v", field, err)
		}
		q.loc = loc
	}
	return q
}

// cancelOn decodes schedule.cancel_on: a list of {when, key}.
func (d *decoder) cancelOn(n *yaml.Node) []cancelOn {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.errorf(n, "schedule.cancel_on must be a list of {when, key}, got %s", kindName(n))
		return nil
	}
	var out []cancelOn
	for i, item := range n.Content {
		field := fmt.Sprintf("schedule.cancel_on[%d]", i)
		var whenNode, keyNode *yaml.Node
		if !d.fields(item, field, map[string]func(*yaml.Node){
			"when": func(v *yaml.Node) { whenNode = v },
			"key":  func(v *yaml.Node) { keyNode = v },
		}) {
			continue
		}
		var c cancelOn
		if whenNode == nil {
			d.errorf(item, "%s.when is required (the condition of the events that cancel)", field)
		} else if c.when = d.condition(whenNode, field+".when"); c.when == nil {
			if s, ok := d.str(whenNode, field+".when"); ok && strings.TrimSpace(s) == "" {
				d.errorf(whenNode, "%s.when must not be empty", field)
			}
		}
		if keyNode == nil {
			d.errorf(item, "%s.key is required (the key of the waiting message it cancels)", field)
		} else {
			c.key = d.textTemplate(keyNode, field+".key")
		}
		out = append(out, c)
	}
	return out
}

// parseClock reads a time of day, "HH:MM", as minutes after midnight.
func parseClock(s string) (int, error) {
	bad := fmt.Errorf("%q is not a time of day (HH:MM, 00:00 to 23:59)", s)
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, bad
	}
	h, err1 := strconv.ParseUint(hh, 10, 8)
	m, err2 := strconv.ParseUint(mm, 10, 8)
	if err1 != nil || err2 != nil || h > 23 || m > 59 {
		return 0, bad
	}
	return int(h)*60 + int(m), nil
}

func formatClock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// zones caches loaded time zones: a templated zone is loaded for every
// event, and only names that load are kept, so the cache is bounded by the
// zone database.
var zones sync.Map // name → *time.Location

// loadZone loads an IANA time zone by name. "Local" is refused: it is
// whatever the machine is set to, which differs between hosts.
func loadZone(name string) (*time.Location, error) {
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// plan is when a waiting message goes out, and why.
type plan struct {
	due  time.Time      // the event's time plus the delay, or at plus offset
	at   time.Time      // due, moved out of quiet hours
	zone *time.Location // the quiet hours' zone; nil without quiet hours
}

// plan works out when the event's message goes out.
func (s *schedule) plan(ev *Event, env map[string]any) (plan, error) {
	var p plan
	if s.at == nil {
		p.due = ev.Time.Add(s.delay)
	} else {
		v, err := s.at.render(env)
		if err != nil {
			return p, err
		}
		v = strings.TrimSpace(v)
		t, ok := parseInstant(v)
		if !ok {
			return p, &Error{Pos: s.at.where.at(0), Msg: fmt.Sprintf("schedule.at: %q is neither an RFC 3339 time nor unix seconds", v)}
		}
		p.due = t.Add(s.offset)
	}
	p.due = p.due.UTC()
	p.at = p.due
	if q := s.quiet; q != nil {
		loc := q.loc
		if loc == nil {
			name, err := q.zone.render(env)
			if err != nil {
				return p, err
			}
			if loc, err = loadZone(strings.TrimSpace(name)); err != nil {
				return p, &Error{Pos: q.zone.where.at(0), Msg: "schedule.quiet_hours.timezone: " + err.Error()}
			}
		}
		p.zone = loc
		p.at = q.next(p.due, loc).UTC()
	}
	// The waiting message lives in the events stream: one due after
	// max_age would be gone before it goes out.
	if s.maxDelay > 0 && !ev.Time.IsZero() && p.at.Sub(ev.Time) > s.maxDelay {
		return p, &Error{Pos: s.pos, Msg: fmt.Sprintf("schedule: the message would wait until %s, longer after the event than the events stream keeps it (nats.events.max_age %s)",
			p.at.Format(time.RFC3339), s.maxDelay)}
	}
	return p, nil
}

// describe says when a delivery with this plan goes out, for Explain.
func (p plan) describe(q *quietHours, ev *Event) string {
	if !p.at.After(ev.Time) {
		return fmt.Sprintf("sent at once: its time, %s, is not after the event's", p.at.Format(time.RFC3339))
	}
	s := "waits until " + p.at.Format(time.RFC3339)
	if !p.at.Equal(p.due) {
		s += fmt.Sprintf(" (due %s, in quiet hours %s-%s %s)", p.due.Format(time.RFC3339), formatClock(q.from), formatClock(q.to), p.zone)
	}
	return s
}

// next returns t, or, when the clock in loc reads a time inside the quiet
// hours at t, the instant it next reads their end.
func (q *quietHours) next(t time.Time, loc *time.Location) time.Time {
	local := t.In(loc)
	y, m, d := local.Date()
	h, mi, _ := local.Clock()
	now := h*60 + mi
	var day int // the end is today's, or tomorrow's for a window past midnight
	switch {
	case q.from < q.to && now >= q.from && now < q.to:
	case q.from > q.to && now < q.to:
	case q.from > q.to && now >= q.from:
		day = 1
	default:
		return t
	}
	end := time.Date(y, m, d+day, q.to/60, q.to%60, 0, 0, time.UTC)
	return clockReads(end, t, loc)
}

// clockReads returns the first instant, not before t, at which the clock
// in loc reads the wall time w (given as a UTC value). Where the clock is
// set back, it reads w twice: the earlier one that is not before t. Where
// it skips ahead over w, it never reads it: then the instant it jumps.
// time.Date alone does not do: in a gap or a doubled hour it picks one side
// or the other depending on the zone's offset.
func clockReads(w, t time.Time, loc *time.Location) time.Time {
	c := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, loc)
	start, end := c.ZoneBounds()
	if got := wallTime(c); !got.Equal(w) {
		// In a gap: c is w normalized to one side of it.
		if got.Before(w) {
			return latest(end, t)
		}
		return latest(start, t)
	}
	readings := []time.Time{c}
	_, off := c.Zone()
	// A twin reading lies in the zone period before c's or after it.
	var neighbours []time.Time
	if !start.IsZero() {
		neighbours = append(neighbours, start.Add(-time.Second))
	}
	if !end.IsZero() {
		neighbours = append(neighbours, end)
	}
	for _, nb := range neighbours {
		_, other := nb.Zone()
		if twin := c.Add(time.Duration(off-other) * time.Second); !twin.Equal(c) && wallTime(twin.In(loc)).Equal(w) {
			readings = append(readings, twin)
		}
	}
	slices.SortFunc(readings, time.Time.Compare)
	for _, r := range readings {
		if !r.Before(t) {
			return r
		}
	}
	return latest(readings[len(readings)-1], t)
}

// wallTime is what the clock of t's location reads, as a UTC value.
func wallTime(t time.Time) time.Time {
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, m, d, h, mi, s, t.Nanosecond(), time.UTC)
}

// latest is the later of a and b: a message never goes out before it is
// due.
func latest(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// cancels returns the rule's waiting messages that the event cancels, one
// per key. Every entry is tried: one that fails does not keep the others
// from cancelling.
func (r *Rule) cancels(env map[string]any) ([]Cancel, error) {
	var out []Cancel
	var errs []error
	for _, c := range r.schedule.cancelOn {
		ok, err := c.when.eval(env)
		if err == nil && ok {
			var key string
			if key, err = c.key.render(env); err == nil {
				if key = strings.TrimSpace(key); key == "" {
					err = c.key.empty()
				} else if !slices.Contains(out, Cancel{Rule: r.Name, Key: key}) {
					out = append(out, Cancel{Rule: r.Name, Key: key})
				}
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

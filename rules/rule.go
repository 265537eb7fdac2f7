package rules

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Limits that keep a condition from running away.
const (
	// maxConditionNodes bounds a condition's size at compile time.
	maxConditionNodes = 2000
	// conditionMemoryBudget bounds what one evaluation may allocate (in
	// expr's units: elements of ranges, maps and arrays it builds).
	conditionMemoryBudget = 100_000
)

var (
	nameRe    = regexp.MustCompile(`^[a-z0-9._-]+$`)
	adminIDRe = regexp.MustCompile(`^[0-9]+$`)
)

// Rule is one compiled rule. Its exported fields describe it; matching and
// rendering go through the Set.
type Rule struct {
	Name        string
	Description string
	Pos         Pos      // where the rule's entry starts
	Sources     []string // on.sources; empty means any source
	Subjects    []string // on.subjects; empty means any subject
	Mode        string   // ModeLive or ModeShadow

	when *condition // nil: always

	messageType string
	template    string
	from        string
	to, cc, bcc []recipientTmpl
	createdAt   *tmpl // nil: none; see createdAtEvent
	subject     *tmpl
	body        *tmpl
	createConv  *bool
	// createdAtEvent sends the event's time as created_at.
	createdAtEvent bool

	dedupe      *tmpl // nil: the event id
	throttleKey *tmpl // nil: no throttle
	throttlePer time.Duration
	schedule    *schedule // nil: sent at once
}

// Modes of a rule: a live rule's messages are sent; a shadow rule is
// evaluated and rendered on live traffic, counted and logged, and never
// sent.
const (
	ModeLive   = "live"
	ModeShadow = "shadow"
)

// Shadow reports whether the rule only watches (mode: shadow).
func (r *Rule) Shadow() bool { return r.Mode == ModeShadow }

// conditionEnv declares the names a condition can use, with their types.
// Templates see the same names (see Event.env).
var conditionEnv = map[string]any{
	"event":   map[string]any{},
	"source":  "",
	"subject": "",
	"id":      "",
	"type":    "",
	"time":    time.Time{},
	"headers": map[string]any{},
}

// compileRule decodes and compiles one entry of a file's rules list. It
// returns nil, having added the errors, when anything is wrong.
func compileRule(d *decoder, n *yaml.Node, opts Options) *Rule {
	n = resolve(n)
	before := len(*d.errs)
	r := &Rule{Pos: d.src.pos(n), Mode: ModeLive}
	var nameNode, msgNode, whenNode *yaml.Node
	d.fields(n, "a rule", map[string]func(*yaml.Node){
		"name": func(v *yaml.Node) {
			nameNode = v
			r.Name, _ = d.str(v, "name")
		},
		"description": func(v *yaml.Node) { r.Description, _ = d.str(v, "description") },
		"mode": func(v *yaml.Node) {
			if m, ok := d.str(v, "mode"); ok && m != ModeLive && m != ModeShadow {
				d.errorf(v, "mode must be live or shadow, got %q", m)
			} else if ok {
				r.Mode = m
			}
		},
		"on": func(v *yaml.Node) {
			d.fields(v, "on", map[string]func(*yaml.Node){
				"sources":  func(v *yaml.Node) { r.Sources = d.sources(v, opts) },
				"subjects": func(v *yaml.Node) { r.Subjects = d.subjects(v) },
			})
		},
		"when":    func(v *yaml.Node) { whenNode = v },
		"message": func(v *yaml.Node) { msgNode = v },
		"dedupe": func(v *yaml.Node) {
			if s, ok := d.str(v, "dedupe"); ok && s != "" {
				r.dedupe = parseTemplate("dedupe", s, false, d.src.mapScalar(resolve(v)), d.errs)
			}
		},
		"throttle": func(v *yaml.Node) { d.throttle(v, r) },
		"schedule": func(v *yaml.Node) { r.schedule = d.schedule(v, opts) },
	})
	if n.Kind != yaml.MappingNode {
		return nil
	}
	switch {
	case nameNode == nil:
		d.errorf(n, "rule has no name")
	case r.Name == "":
		d.errorf(nameNode, "name must not be empty")
	case !nameRe.MatchString(r.Name):
		d.errorf(nameNode, "name %q may only hold a-z, 0-9, '.', '_' and '-'", r.Name)
	}
	if whenNode != nil {
		r.when = d.condition(whenNode, "when")
	}
	if msgNode == nil {
		d.errorf(n, "rule %q has no message", r.Name)
	} else {
		d.message(msgNode, r, opts)
	}
	if len(*d.errs) > before {
		return nil
	}
	return r
}

// sources decodes on.sources and checks them against the configured ones.
func (d *decoder) sources(n *yaml.Node, opts Options) []string {
	list, _ := d.strList(n, "on.sources")
	if opts.Sources == nil {
		return list
	}
	for i, s := range list {
		known := false
		for _, k := range opts.Sources {
			known = known || k == s
		}
		if !known {
			d.errorf(resolve(n).Content[i], "on.sources: unknown source %q (configured: %s)", s, strings.Join(opts.Sources, ", "))
		}
	}
	return list
}

// subjects decodes on.subjects, NATS subjects with * and > wildcards.
func (d *decoder) subjects(n *yaml.Node) []string {
	list, _ := d.strList(n, "on.subjects")
	for i, s := range list {
		if err := CheckSubjectPattern(s); err != nil {
			d.errorf(resolve(n).Content[i], "on.subjects: %v", err)
		}
	}
	return list
}

// CheckSubjectPattern validates a NATS subject that may hold the wildcards
// * and >.
func CheckSubjectPattern(s string) error {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return fmt.Errorf("subject %q must not be empty or contain white space", s)
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Errorf("subject %q has an empty token", s)
		case t == ">" && i != len(tokens)-1:
			return fmt.Errorf("subject %q: '>' must be the last token", s)
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("subject %q: wildcards must be whole tokens", s)
		}
	}
	return nil
}

// condition is a compiled expr condition: a rule's when, or a cancel_on's.
type condition struct {
	field string // the rule field, for errors: "when"
	prog  *vm.Program
	where *scalarMap
}

// condition compiles a condition field. Errors point into the expression
// in the file. It returns nil for an empty condition or one with errors.
func (d *decoder) condition(n *yaml.Node, field string) *condition {
	src, ok := d.str(n, field)
	if !ok || strings.TrimSpace(src) == "" {
		return nil
	}
	c := &condition{field: field, where: d.src.mapScalar(resolve(n))}
	prog, err := expr.Compile(src, expr.Env(conditionEnv), expr.MaxNodes(maxConditionNodes))
	if err != nil {
		pos, msg := conditionError(c.where, err)
		d.errs.add(pos, "%s: %s", field, msg)
		return nil
	}
	// Not expr.AsBool: it turns a nil result (a missing field) into false.
	// A result that is known not to be a bool is an error here; one known
	// only at run time (an event field) is checked in eval.
	if t := prog.Node().Type(); t != nil && t.Kind() != reflect.Bool && t.Kind() != reflect.Interface {
		d.errs.add(c.where.at(0), "%s: the condition must be true or false, but gives %s", field, t)
		return nil
	}
	c.prog = prog
	return c
}

// conditionError maps an expr error to a file position and its message.
func conditionError(where *scalarMap, err error) (Pos, string) {
	var fe *file.Error
	if errors.As(err, &fe) {
		return where.at(fe.From), fe.Message
	}
	return where.at(0), err.Error()
}

// message decodes and checks the message block against the seed's contract.
func (d *decoder) message(n *yaml.Node, r *Rule, opts Options) {
	var typeNode, subjectNode, templateNode, bodyNode, toNode, ccNode, bccNode, fromNode, createdNode *yaml.Node
	ok := d.fields(n, "message", map[string]func(*yaml.Node){
		"type":       func(v *yaml.Node) { typeNode = v },
		"template":   func(v *yaml.Node) { templateNode = v },
		"from":       func(v *yaml.Node) { fromNode = v },
		"to":         func(v *yaml.Node) { toNode = v },
		"cc":         func(v *yaml.Node) { ccNode = v },
		"bcc":        func(v *yaml.Node) { bccNode = v },
		"created_at": func(v *yaml.Node) { createdNode = v },
		"subject":    func(v *yaml.Node) { subjectNode = v },
		"body":       func(v *yaml.Node) { bodyNode = v },
		"create_conversation_without_contact_reply": func(v *yaml.Node) {
			if b, ok := d.boolean(v, "create_conversation_without_contact_reply"); ok {
				r.createConv = &b
			}
		},
	})
	if !ok {
		return
	}
	n = resolve(n)

	// type: email | inapp
	if typeNode == nil {
		d.errorf(n, "message has no type (email or inapp)")
		return
	}
	r.messageType, _ = d.str(typeNode, "message.type")
	switch r.messageType {
	case "email", "inapp":
	case "in_app", "in-app":
		d.errorf(typeNode, "message.type %q: write inapp", r.messageType)
		return
	default:
		d.errorf(typeNode, "message.type must be email or inapp, got %q", r.messageType)
		return
	}
	email := r.messageType == "email"

	// subject: required for email, not used for inapp.
	switch {
	case subjectNode != nil && !email:
		d.errorf(subjectNode, "message.subject is only used for email messages; remove it from this inapp message")
	case subjectNode == nil && email:
		d.errorf(n, "message.subject is required for email messages")
	case subjectNode != nil:
		if s, ok := d.str(subjectNode, "message.subject"); ok {
			if strings.TrimSpace(s) == "" {
				d.errorf(subjectNode, "message.subject must not be empty")
			} else {
				r.subject = parseTemplate("message.subject", s, false, d.src.mapScalar(resolve(subjectNode)), d.errs)
			}
		}
	}

	// template: plain | personal, email only, default plain.
	switch {
	case templateNode != nil && !email:
		d.errorf(templateNode, "message.template is only valid for email messages")
	case templateNode != nil:
		r.template, _ = d.str(templateNode, "message.template")
		if r.template != "plain" && r.template != "personal" {
			d.errorf(templateNode, "message.template must be plain or personal, got %q", r.template)
		}
	case email:
		r.template = "plain"
	}

	// body: required, HTML.
	if bodyNode == nil {
		d.errorf(n, "message.body is required")
	} else if s, ok := d.str(bodyNode, "message.body"); ok {
		if strings.TrimSpace(s) == "" {
			d.errorf(bodyNode, "message.body must not be empty")
		} else {
			r.body = parseTemplate("message.body", s, true, d.src.mapScalar(resolve(bodyNode)), d.errs)
		}
	}

	// from: an admin id, the rule's or the default.
	if fromNode != nil {
		r.from, _ = d.str(fromNode, "message.from")
		if !adminIDRe.MatchString(r.from) {
			d.errorf(fromNode, "message.from must be an Intercom admin id (digits), got %q", r.from)
		}
	} else if opts.DefaultAdminID == "" {
		d.errorf(n, "message.from is not set and no default admin id is configured (intercom.default_admin_id)")
	} else {
		r.from = opts.DefaultAdminID
	}

	// created_at: "event" (the event's time) or a template giving unix
	// seconds or an RFC 3339 time.
	if createdNode != nil {
		if v, ok := d.str(createdNode, "message.created_at"); ok {
			switch strings.TrimSpace(v) {
			case "event":
				r.createdAtEvent = true
			case "":
				d.errorf(createdNode, "message.created_at must not be empty: write event, or a template giving unix seconds or an RFC 3339 time")
			default:
				r.createdAt = parseTemplate("message.created_at", v, false, d.src.mapScalar(resolve(createdNode)), d.errs)
			}
		}
	}

	// to, cc, bcc: a recipient, or (2.14 and later) a list of them.
	if toNode == nil {
		d.errorf(n, "message.to is required")
		return
	}
	r.to = d.recipients(toNode, "message.to", opts)
	if ccNode != nil {
		r.cc = d.recipients(ccNode, "message.cc", opts)
	}
	if bccNode != nil {
		r.bcc = d.recipients(bccNode, "message.bcc", opts)
	}
}

// recipientTmpl is one recipient of a rule: its type, which identifier
// names it, and the template of that identifier.
type recipientTmpl struct {
	typ   string // user, lead or contact
	ident string // id, user_id or email
	value *tmpl
}

// recipients decodes message.to, .cc or .bcc: one recipient or a list.
func (d *decoder) recipients(n *yaml.Node, field string, opts Options) []recipientTmpl {
	n = resolve(n)
	list := n.Kind == yaml.SequenceNode
	if (list || field != "message.to") && opts.NoRecipientLists {
		what := "a list of recipients"
		if field != "message.to" {
			what = field
		}
		d.errorf(n, "%s needs Intercom-Version 2.14 or later (intercom.version is %s); send one message per recipient, with one rule each",
			what, cmp.Or(opts.IntercomVersion, "older"))
		return nil
	}
	if !list {
		if rt, ok := d.recipient(n, field); ok {
			return []recipientTmpl{rt}
		}
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "%s must not be an empty list", field)
		return nil
	}
	var out []recipientTmpl
	for i, c := range n.Content {
		if rt, ok := d.recipient(c, fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, rt)
		}
	}
	return out
}

// recipient decodes one recipient: a type and exactly one identifier.
func (d *decoder) recipient(n *yaml.Node, field string) (recipientTmpl, bool) {
	var rt recipientTmpl
	var typeNode *yaml.Node
	type ident struct {
		field string
		node  *yaml.Node
	}
	var ids []ident
	idField := func(field string) func(*yaml.Node) {
		return func(v *yaml.Node) { ids = append(ids, ident{field, v}) }
	}
	if !d.fields(n, field, map[string]func(*yaml.Node){
		"type":    func(v *yaml.Node) { typeNode = v },
		"id":      idField("id"),
		"user_id": idField("user_id"),
		"email":   idField("email"),
	}) {
		return rt, false
	}
	n = resolve(n)
	if typeNode == nil {
		d.errorf(n, "%s has no type (user, lead or contact)", field)
		return rt, false
	}
	rt.typ, _ = d.str(typeNode, field+".type")
	switch rt.typ {
	case "user", "contact", "lead":
	default:
		d.errorf(typeNode, "%s.type must be user, lead or contact, got %q", field, rt.typ)
		return rt, false
	}
	switch len(ids) {
	case 0:
		d.errorf(n, "%s needs one of id, user_id or email", field)
		return rt, false
	case 1:
	default:
		d.errorf(ids[1].node, "%s must have exactly one of id, user_id or email; it has %s and %s", field, ids[0].field, ids[1].field)
		return rt, false
	}
	id := ids[0]
	s, ok := d.str(id.node, field+"."+id.field)
	if !ok {
		return rt, false
	}
	if strings.TrimSpace(s) == "" {
		d.errorf(id.node, "%s.%s must not be empty", field, id.field)
		return rt, false
	}
	rt.ident = id.field
	rt.value = parseTemplate(field+"."+id.field, s, false, d.src.mapScalar(resolve(id.node)), d.errs)
	return rt, rt.value != nil
}

// throttle decodes throttle: {key, per}.
func (d *decoder) throttle(n *yaml.Node, r *Rule) {
	var keyNode, perNode *yaml.Node
	if !d.fields(n, "throttle", map[string]func(*yaml.Node){
		"key": func(v *yaml.Node) { keyNode = v },
		"per": func(v *yaml.Node) { perNode = v },
	}) {
		return
	}
	n = resolve(n)
	if keyNode == nil {
		d.errorf(n, "throttle.key is required")
	} else {
		r.throttleKey = d.textTemplate(keyNode, "throttle.key")
	}
	if perNode == nil {
		d.errorf(n, "throttle.per is required (a duration such as 24h)")
		return
	}
	r.throttlePer, _ = d.positiveDuration(perNode, "throttle.per")
}

// textTemplate compiles a text template that must not be empty; nil when
// it has errors.
func (d *decoder) textTemplate(n *yaml.Node, field string) *tmpl {
	s, ok := d.str(n, field)
	if !ok {
		return nil
	}
	if strings.TrimSpace(s) == "" {
		d.errorf(n, "%s must not be empty", field)
		return nil
	}
	return parseTemplate(field, s, false, d.src.mapScalar(resolve(n)), d.errs)
}

// duration decodes a Go duration: 90m, 24h, -48h.
func (d *decoder) duration(n *yaml.Node, field string) (time.Duration, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(n, "%s: %q is not a duration (use units h, m, s: 24h, 90m)", field, s)
		return 0, false
	}
	return v, true
}

// positiveDuration decodes a duration that must be more than zero.
func (d *decoder) positiveDuration(n *yaml.Node, field string) (time.Duration, bool) {
	v, ok := d.duration(n, field)
	if ok && v <= 0 {
		d.errorf(n, "%s must be positive, got %s", field, resolve(n).Value)
		return 0, false
	}
	return v, ok
}

// RecipientForm is one recipient of a rule as written: where it is, its
// type, and which identifier names it (id, user_id or email).
type RecipientForm struct {
	Field string // message.to, message.cc[1], ...
	Pos   Pos
	Type  string
	Ident string
}

// Recipients lists the rule's recipients as written, to, cc and bcc.
func (r *Rule) Recipients() []RecipientForm {
	var out []RecipientForm
	for _, l := range []struct {
		field string
		rts   []recipientTmpl
	}{{"message.to", r.to}, {"message.cc", r.cc}, {"message.bcc", r.bcc}} {
		for i, rt := range l.rts {
			field := l.field
			if len(l.rts) > 1 {
				field = fmt.Sprintf("%s[%d]", l.field, i)
			}
			out = append(out, RecipientForm{Field: field, Pos: rt.value.where.at(0), Type: rt.typ, Ident: rt.ident})
		}
	}
	return out
}

// AdminID is the admin the rule's messages are sent from.
func (r *Rule) AdminID() string { return r.from }

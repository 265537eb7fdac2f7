package rules

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"unicode/utf8"
)

// tmpl is one templated field of a rule: text/template for plain text
// (subject, recipient, keys), html/template for the body so that event values
// are escaped by context. A field without "{{" is kept as a literal.
type tmpl struct {
	field   string // the rule field, e.g. "message.subject"
	src     string
	literal bool
	field1  *parse.FieldNode // set when a text template is just {{ .a.b }}
	text    *texttemplate.Template
	html    *htmltemplate.Template
	where   *scalarMap
}

// executor is what text/template and html/template have in common.
type executor interface {
	Execute(w io.Writer, data any) error
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// parseTemplate compiles the field's source. Problems are added to errs at
// the position inside the file.
func parseTemplate(field, src string, html bool, where *scalarMap, errs *ErrorList) *tmpl {
	t := &tmpl{field: field, src: src, where: where}
	if !strings.Contains(src, "{{") {
		t.literal = true
		return t
	}
	var err error
	if html {
		t.html, err = htmltemplate.New(field).Option("missingkey=error").Funcs(funcs()).Parse(src)
		if err == nil {
			for _, tt := range t.html.Templates() {
				rewriteTree(tt.Tree)
			}
			// html/template checks its escaping contexts on first use: do it
			// now so a malformed body is a load error, not a render error.
			if err = t.html.Execute(io.Discard, nil); err != nil {
				var escErr *htmltemplate.Error
				if !errors.As(err, &escErr) {
					err = nil // an execution error: expected without data
				}
			}
		}
	} else {
		t.text, err = texttemplate.New(field).Option("missingkey=error").Funcs(funcs()).Parse(src)
		if err == nil {
			t.field1 = singleField(t.text)
			for _, tt := range t.text.Templates() {
				rewriteTree(tt.Tree)
			}
		}
	}
	if err != nil {
		pos, msg := t.locate(err)
		errs.add(pos, "%s: %s", field, msg)
		return nil
	}
	return t
}

// render executes the template into a buffer, so a failure leaves no partial
// output, and returns the text.
func (t *tmpl) render(env map[string]any) (string, error) {
	if t.literal {
		return t.src, nil
	}
	if t.field1 != nil {
		return t.renderField(env)
	}
	return t.renderTemplate(env)
}

func (t *tmpl) renderTemplate(env map[string]any) (string, error) {
	var ex executor = t.text
	if t.html != nil {
		ex = t.html
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		buf.Reset()
		bufPool.Put(buf)
	}()
	if err := ex.Execute(buf, env); err != nil {
		pos, msg := t.locate(err)
		return "", &Error{Pos: pos, Msg: t.field + ": " + msg}
	}
	return buf.String(), nil
}

// singleField returns the field of a text template that is nothing but one
// field reference, such as a recipient's '{{ .event.customer.id }}'. Those
// are most keys and recipients; they render without text/template.
func singleField(t *texttemplate.Template) *parse.FieldNode {
	if len(t.Templates()) != 1 || len(t.Tree.Root.Nodes) != 1 {
		return nil
	}
	a, ok := t.Tree.Root.Nodes[0].(*parse.ActionNode)
	if !ok || len(a.Pipe.Decl) > 0 || len(a.Pipe.Cmds) != 1 || len(a.Pipe.Cmds[0].Args) != 1 {
		return nil
	}
	f, _ := a.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
	return f
}

// renderField renders a single-field template as text/template would, with
// the same error for a missing key.
func (t *tmpl) renderField(env map[string]any) (string, error) {
	var v any = env
	for i, key := range t.field1.Ident {
		m, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				break
			}
			// Not a map: let text/template say what is wrong.
			return t.renderTemplate(env)
		}
		if v, ok = m[key]; !ok {
			// Point at the missing key's ".key", as text/template would.
			off := strings.Index(t.src, t.field1.String())
			if i > 0 {
				off += len(strings.Join(t.field1.Ident[:i], ".")) + 1
			}
			return "", &Error{Pos: t.posAt(1, off), Msg: fmt.Sprintf("%s: %s: no field %q", t.field, t.field1, key)}
		}
	}
	return toString(printable(v)), nil
}

var (
	// template: NAME:LINE:COL: executing "NAME" at <.event.x>: message
	execErrRe = regexp.MustCompile(`^template: [^:]*:(\d+):(\d+): executing "[^"]*" at <([^>]*)>: (.*)$`)
	// template: NAME:LINE: message
	parseErrRe = regexp.MustCompile(`^(?:html/)?template: [^:]*:(\d+):(?:(\d+):)? ?(.*)$`)
	noEntryRe  = regexp.MustCompile(`^map has no entry for key "([^"]*)"$`)
)

// locate turns a template error into a file position and a message that
// names the missing field the way the rule author wrote it.
func (t *tmpl) locate(err error) (Pos, string) {
	var escErr *htmltemplate.Error
	if errors.As(err, &escErr) {
		msg := escErr.Description
		if escErr.ErrorCode == htmltemplate.ErrEndContext {
			msg = "the HTML ends inside a tag, an attribute or a script: close it"
		}
		return t.posAt(escErr.Line, -1), msg
	}
	msg := err.Error()
	if m := execErrRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2]) // 0-based bytes
		what := m[4]
		if k := noEntryRe.FindStringSubmatch(what); k != nil {
			what = "no field " + strconv.Quote(k[1])
		}
		return t.posAt(line, col), m[3] + ": " + what
	}
	if m := parseErrRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return t.posAt(line, -1), m[3]
	}
	return t.where.at(0), msg
}

// posAt maps a template's line (1-based) and byte column (0-based; -1 when
// unknown) to the file.
func (t *tmpl) posAt(line, col int) Pos {
	if col < 0 {
		return t.where.atLine(t.src, line)
	}
	off := 0 // the rune offset of (line, col) in the source
	rest := t.src
	for l := 1; l < line; l++ {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		off += utf8.RuneCountInString(rest[:i+1])
		rest = rest[i+1:]
	}
	if col <= len(rest) {
		off += utf8.RuneCountInString(rest[:col])
	}
	return t.where.at(off)
}

// rewriteTree adjusts a parsed template in two ways.
//
// Templates run with missingkey=error, so {{ .event.name }} fails when the
// event has no name, as it should; but in {{ .event.name | default "there" }}
// or {{ with optional .event.coupon }} the author said that the field may be
// missing. Those references become calls to lookupOptional, which yields nil
// for a missing key, instead of failing before default ever runs.
//
// Every action that prints gets a last command, printable, so that numbers
// print as people write them (1234567.5, not 1.2345675e+06) and a JSON null
// prints as nothing rather than "<no value>".
func rewriteTree(tree *parse.Tree) {
	if tree == nil || tree.Root == nil {
		return
	}
	var walk func(n parse.Node)
	walkPipe := func(p *parse.PipeNode) {
		if p == nil {
			return
		}
		for i, cmd := range p.Cmds {
			// X | default Y, X | optional
			if i+1 < len(p.Cmds) && isOptionalCall(p.Cmds[i+1]) && len(cmd.Args) == 1 {
				if args := optionalArgs(cmd.Args[0]); args != nil {
					cmd.Args = args
				}
			}
			// default Y X, optional X
			if isOptionalCall(cmd) {
				for j := 1; j < len(cmd.Args); j++ {
					if args := optionalArgs(cmd.Args[j]); args != nil {
						cmd.Args[j] = &parse.PipeNode{NodeType: parse.NodePipe, Pos: cmd.Args[j].Position(),
							Cmds: []*parse.CommandNode{{NodeType: parse.NodeCommand, Pos: cmd.Args[j].Position(), Args: args}}}
					}
				}
			}
			for _, a := range cmd.Args {
				walk(a)
			}
		}
	}
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walkPipe(n.Pipe)
			if n.Pipe != nil && len(n.Pipe.Decl) == 0 && !endsWithEscaper(n.Pipe) && !endsWithStringFunc(n.Pipe) {
				n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos,
					Args: []parse.Node{parse.NewIdentifier(printableFunc).SetPos(n.Pos)}})
			}
		case *parse.PipeNode:
			walkPipe(n)
		case *parse.IfNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walkPipe(n.Pipe)
		}
	}
	walk(tree.Root)
}

// stringFuncs are the helpers that always return a string.
var stringFuncs = map[string]bool{
	"upper": true, "lower": true, "title": true, "trim": true, "truncate": true, "join": true,
	"date": true, "dateIn": true, "money": true, "moneyMinor": true, "json": true, "printf": true,
}

// endsWithStringFunc reports a pipeline whose value is already a string.
func endsWithStringFunc(p *parse.PipeNode) bool {
	if len(p.Cmds) == 0 || len(p.Cmds[len(p.Cmds)-1].Args) == 0 {
		return false
	}
	id, ok := p.Cmds[len(p.Cmds)-1].Args[0].(*parse.IdentifierNode)
	return ok && stringFuncs[id.Ident]
}

// endsWithEscaper reports a pipeline that ends in one of the escapers that
// html/template insists come last.
func endsWithEscaper(p *parse.PipeNode) bool {
	if len(p.Cmds) == 0 || len(p.Cmds[len(p.Cmds)-1].Args) == 0 {
		return false
	}
	id, ok := p.Cmds[len(p.Cmds)-1].Args[0].(*parse.IdentifierNode)
	return ok && (id.Ident == "html" || id.Ident == "urlquery" || id.Ident == "js")
}

func isOptionalCall(cmd *parse.CommandNode) bool {
	if len(cmd.Args) == 0 {
		return false
	}
	id, ok := cmd.Args[0].(*parse.IdentifierNode)
	return ok && (id.Ident == "default" || id.Ident == "optional")
}

// optionalArgs returns the arguments of a call to lookupOptional that reads
// the same field as n, or nil when n is not a field reference.
func optionalArgs(n parse.Node) []parse.Node {
	var base parse.Node
	var path []string
	switch n := n.(type) {
	case *parse.FieldNode: // .a.b
		base, path = &parse.DotNode{NodeType: parse.NodeDot, Pos: n.Pos}, n.Ident
	case *parse.VariableNode: // $x.a.b
		if len(n.Ident) < 2 {
			return nil
		}
		base = &parse.VariableNode{NodeType: parse.NodeVariable, Pos: n.Pos, Ident: n.Ident[:1]}
		path = n.Ident[1:]
	default:
		return nil
	}
	args := []parse.Node{parse.NewIdentifier(optionalFunc).SetPos(n.Position()), base}
	for _, p := range path {
		args = append(args, &parse.StringNode{NodeType: parse.NodeString, Pos: n.Position(), Quoted: strconv.Quote(p), Text: p})
	}
	return args
}

package rules

import (
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML node tree by hand rather than through yaml.Unmarshal,
// so that every unknown key, wrong type and duplicate key is reported at its
// own line and column, and all of them in one pass.
type decoder struct {
	src  *source
	errs *ErrorList
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs.add(d.src.pos(n), format, args...)
}

// resolve follows aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	n = resolve(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

type pair struct{ key, value *yaml.Node }

// pairs returns a mapping's keys and values. Keys merged in with "<<" come
// first and are overridden by explicit keys; an explicit key given twice is
// an error.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var merged, explicit []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if k.Tag == "!!merge" {
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				if s = resolve(s); s.Kind != yaml.MappingNode {
					d.errorf(s, "<< must merge a mapping, got %s", kindName(s))
					continue
				}
				merged = append(merged, d.pairs(s)...)
			}
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, "duplicate key %q (first at line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		explicit = append(explicit, pair{k, v})
	}
	out := explicit
	for _, p := range merged {
		if seen[p.key.Value] == nil {
			seen[p.key.Value] = p.key
			out = append(out, p)
		}
	}
	return out
}

// fields decodes a mapping: each key goes to its handler; unknown keys are
// errors that list the known ones.
func (d *decoder) fields(n *yaml.Node, what string, handlers map[string]func(*yaml.Node)) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping, got %s", what, kindName(n))
		return false
	}
	for _, p := range d.pairs(n) {
		h, ok := handlers[p.key.Value]
		if !ok {
			known := make([]string, 0, len(handlers))
			for k := range handlers {
				known = append(known, k)
			}
			sort.Strings(known)
			d.errorf(p.key, "unknown field %q in %s (known fields: %s)", p.key.Value, what, strings.Join(known, ", "))
			continue
		}
		h(p.value)
	}
	return true
}

// str decodes a scalar as a string. Numbers and booleans are taken as the
// text they were written as (an admin id may be written unquoted).
func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "%s must be a string, got %s", what, kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		return "", true
	}
	return n.Value, true
}

// strList decodes a list of non-empty strings.
func (d *decoder) strList(n *yaml.Node, what string) ([]string, bool) {
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list, e.g. [%s], got %s", what, n.Value, kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for _, item := range n.Content {
		s, good := d.str(item, what+" item")
		if good && s == "" {
			d.errorf(item, "%s item must not be empty", what)
			good = false
		}
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, ok
}

// boolean decodes true or false.
func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.errorf(n, "%s must be true or false, got %s", what, kindName(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.errorf(n, "%s: %v", what, err)
		return false, false
	}
	return b, true
}

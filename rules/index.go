package rules

import (
	"slices"
	"strings"
)

// index finds the rules whose on: filter admits an event, so that matching
// costs in proportion to the candidates for the event's subject and source,
// not to the number of rules.
type index struct {
	subjects *trieNode        // rules with on.subjects, by pattern
	bySource map[string][]int // rules with on.sources but no on.subjects
	always   []int            // rules with neither filter
	rules    []*Rule
}

// trieNode is one token level of NATS subject patterns.
type trieNode struct {
	next map[string]*trieNode
	star *trieNode // '*': any one token
	rest []int     // '>': one or more tokens
	here []int     // the pattern ends here
}

func newIndex(rules []*Rule) *index {
	x := &index{subjects: &trieNode{}, bySource: map[string][]int{}, rules: rules}
	for i, r := range rules {
		switch {
		case len(r.Subjects) > 0:
			for _, p := range r.Subjects {
				x.subjects.insert(p, i)
			}
		case len(r.Sources) > 0:
			for _, s := range r.Sources {
				x.bySource[s] = append(x.bySource[s], i)
			}
		default:
			x.always = append(x.always, i)
		}
	}
	return x
}

func (n *trieNode) insert(pattern string, rule int) {
	for _, tok := range strings.Split(pattern, ".") {
		switch tok {
		case ">":
			n.rest = append(n.rest, rule)
			return
		case "*":
			if n.star == nil {
				n.star = &trieNode{}
			}
			n = n.star
		default:
			if n.next == nil {
				n.next = map[string]*trieNode{}
			}
			child := n.next[tok]
			if child == nil {
				child = &trieNode{}
				n.next[tok] = child
			}
			n = child
		}
	}
	n.here = append(n.here, rule)
}

// match appends the rules whose patterns match subject (the rest of a
// subject, from one token on).
func (n *trieNode) match(subject string, dst []int) []int {
	tok, rest, more := strings.Cut(subject, ".")
	if tok == "" {
		return dst
	}
	dst = append(dst, n.rest...)
	if child := n.next[tok]; child != nil {
		dst = child.matchRest(rest, more, dst)
	}
	if n.star != nil {
		dst = n.star.matchRest(rest, more, dst)
	}
	return dst
}

func (n *trieNode) matchRest(rest string, more bool, dst []int) []int {
	if !more {
		return append(dst, n.here...)
	}
	return n.match(rest, dst)
}

// candidates appends to dst, in rule order and without repeats, the rules
// whose on: filter admits an event from source on subject.
func (x *index) candidates(source, subject string, dst []int) []int {
	start := len(dst)
	if subject != "" {
		dst = x.subjects.match(subject, dst)
		// Rules with subjects may also name sources: keep those that admit
		// this one.
		kept := dst[:start]
		for _, i := range dst[start:] {
			if admitsSource(x.rules[i], source) {
				kept = append(kept, i)
			}
		}
		dst = kept
	}
	dst = append(dst, x.bySource[source]...)
	dst = append(dst, x.always...)
	if len(dst)-start > 1 {
		slices.Sort(dst[start:])
		dst = append(dst[:start], slices.Compact(dst[start:])...)
	}
	return dst
}

func admitsSource(r *Rule, source string) bool {
	return len(r.Sources) == 0 || slices.Contains(r.Sources, source)
}

// SubjectMatches reports whether a NATS subject matches a pattern with *
// and > wildcards.
func SubjectMatches(pattern, subject string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		stok, srest, smore := strings.Cut(subject, ".")
		switch {
		case ptok == ">":
			return stok != ""
		case stok == "" || (ptok != "*" && ptok != stok):
			return false
		case !pmore || !smore:
			return pmore == smore
		}
		pattern, subject = prest, srest
	}
}

package rules

import (
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// source is one rule file's text, kept to map positions inside scalars (an
// expression's column, a template's line) back to the file.
type source struct {
	name  string
	lines []string
}

func newSource(name string, data []byte) *source {
	return &source{name: name, lines: strings.Split(string(data), "\n")}
}

// pos is the position of a node's first character.
func (s *source) pos(n *yaml.Node) Pos {
	return Pos{File: s.name, Line: n.Line, Col: n.Column}
}

// rawRune is one character of the file with its position.
type rawRune struct {
	r         rune
	line, col int
}

// scalarMap maps rune offsets in a scalar's decoded value to file positions.
type scalarMap struct {
	file string
	pos  []rawRune // one per rune of the value, plus one for its end
}

// at returns the file position of the value's rune at offset off.
func (m *scalarMap) at(off int) Pos {
	if len(m.pos) == 0 {
		return Pos{File: m.file}
	}
	if off < 0 {
		off = 0
	}
	if off >= len(m.pos) {
		off = len(m.pos) - 1
	}
	return Pos{File: m.file, Line: m.pos[off].line, Col: m.pos[off].col}
}

// atLine returns the file position of the first character of the value's
// line n (1-based), for errors that only know a line.
func (m *scalarMap) atLine(value string, n int) Pos {
	off := 0
	for line := 1; line < n; line++ {
		i := strings.IndexByte(value, '\n')
		if i < 0 {
			break
		}
		off += utf8.RuneCountInString(value[:i+1])
		value = value[i+1:]
	}
	return m.at(off)
}

// mapScalar aligns the decoded value of a scalar node with the file's text.
// It walks the raw characters from the node's position and matches them to
// the value's, skipping what YAML's syntax adds: quotes and escapes, the
// indentation of block scalars, and the line breaks that folding turns into
// spaces. For the expressions and templates that rules hold this is exact.
func (s *source) mapScalar(n *yaml.Node) *scalarMap {
	raw := s.rawRunes(n)
	value := []rune(n.Value)
	m := &scalarMap{file: s.name, pos: make([]rawRune, 0, len(value)+1)}
	j := 0
	for i := 0; i < len(value); {
		if j >= len(raw) {
			break
		}
		c, v := raw[j], value[i]
		switch {
		case n.Style&yaml.DoubleQuotedStyle != 0 && c.r == '\\' && j+1 < len(raw):
			if raw[j+1].r == '\n' { // escaped line break: contributes nothing
				j += 2
				continue
			}
			m.pos = append(m.pos, c)
			i++
			j += escapeLen(raw[j+1].r)
		case n.Style&yaml.SingleQuotedStyle != 0 && c.r == '\'' && j+1 < len(raw) && raw[j+1].r == '\'':
			m.pos = append(m.pos, c)
			i++
			j += 2
		case c.r == v || (isSpace(c.r) && isSpace(v)):
			m.pos = append(m.pos, c)
			i++
			j++
		default:
			j++
		}
	}
	// Whatever could not be aligned points at the last known place.
	last := rawRune{line: n.Line, col: n.Column}
	if len(m.pos) > 0 {
		last = m.pos[len(m.pos)-1]
		last.col++
	}
	for len(m.pos) <= len(value) {
		m.pos = append(m.pos, last)
	}
	return m
}

// rawRunes returns the file's characters that can belong to node n's value.
func (s *source) rawRunes(n *yaml.Node) []rawRune {
	var out []rawRune
	if n.Line < 1 || n.Line > len(s.lines) {
		return nil
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		// The value starts on the line after the indicator; each line's
		// indentation is syntax, not content.
		indent := -1
		for l := n.Line; l < len(s.lines); l++ { // s.lines[l] is file line l+1
			text := s.lines[l]
			trimmed := strings.TrimLeft(text, " ")
			if trimmed == "" || trimmed == "\r" {
				out = append(out, rawRune{r: '\n', line: l + 1, col: 1})
				continue
			}
			lead := len(text) - len(trimmed)
			if indent < 0 {
				indent = lead
			}
			if lead < indent {
				break
			}
			col := indent + 1
			for _, r := range text[indent:] {
				out = append(out, rawRune{r: r, line: l + 1, col: col})
				col++
			}
			out = append(out, rawRune{r: '\n', line: l + 1, col: col})
		}
		return out
	}
	start := n.Column - 1 // runes to skip on the first line
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		start++ // the opening quote
	}
	budget := len(n.Value)*2 + 64 // a scalar's text is never much longer than its value
	for l := n.Line - 1; l < len(s.lines) && budget > 0; l++ {
		col := 1
		for _, r := range s.lines[l] {
			if l == n.Line-1 && col <= start {
				col++
				continue
			}
			out = append(out, rawRune{r: r, line: l + 1, col: col})
			col++
			budget--
		}
		out = append(out, rawRune{r: '\n', line: l + 1, col: col})
	}
	return out
}

// escapeLen is the length of a double-quoted escape whose letter is r.
func escapeLen(r rune) int {
	switch r {
	case 'x':
		return 4
	case 'u':
		return 6
	case 'U':
		return 10
	}
	return 2
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

package rules

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// readJSON reads a JSON document into the values DecodeJSON returns
// (map[string]any, []any, string, int64, float64, bool, nil) in one pass,
// without encoding/json's reflection or Normalize's second walk: stage 1
// decodes every event's payload before its rules see it.
//
// It only reads what it is sure of. On anything else (invalid JSON, a
// byte order mark, nesting deeper than maxReadDepth) it returns ok false,
// and DecodeJSON leaves the document to encoding/json, whose result and
// errors stay the reference. FuzzReadJSON checks that whatever readJSON
// accepts, encoding/json reads the same.
func readJSON(data []byte) (v any, ok bool) {
	r := jsonReader{b: data}
	v, ok = r.value(0)
	if !ok {
		return nil, false
	}
	r.space()
	return v, r.i == len(r.b)
}

// maxReadDepth is the deepest nesting readJSON reads; deeper documents
// go to encoding/json, which has its own limit and error.
const maxReadDepth = 1000

type jsonReader struct {
	b []byte
	i int
}

func (r *jsonReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

func (r *jsonReader) value(depth int) (any, bool) {
	r.space()
	if r.i >= len(r.b) {
		return nil, false
	}
	switch c := r.b[r.i]; {
	case c == '{':
		return r.object(depth + 1)
	case c == '[':
		return r.array(depth + 1)
	case c == '"':
		s, ok := r.string()
		return s, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number()
	case c == 't':
		return true, r.literal("true")
	case c == 'f':
		return false, r.literal("false")
	case c == 'n':
		return nil, r.literal("null")
	}
	return nil, false
}

func (r *jsonReader) literal(word string) bool {
	if len(r.b)-r.i < len(word) || string(r.b[r.i:r.i+len(word)]) != word {
		return false
	}
	r.i += len(word)
	return true
}

func (r *jsonReader) object(depth int) (any, bool) {
	if depth > maxReadDepth {
		return nil, false
	}
	r.i++ // {
	m := map[string]any{}
	r.space()
	if r.i < len(r.b) && r.b[r.i] == '}' {
		r.i++
		return m, true
	}
	for {
		r.space()
		if r.i >= len(r.b) || r.b[r.i] != '"' {
			return nil, false
		}
		key, ok := r.string()
		if !ok {
			return nil, false
		}
		r.space()
		if r.i >= len(r.b) || r.b[r.i] != ':' {
			return nil, false
		}
		r.i++
		v, ok := r.value(depth)
		if !ok {
			return nil, false
		}
		m[key] = v // a key given twice keeps its last value, as in encoding/json
		if more, ok := r.more('}'); !more {
			return m, ok
		}
	}
}

func (r *jsonReader) array(depth int) (any, bool) {
	if depth > maxReadDepth {
		return nil, false
	}
	r.i++ // [
	// Not nil: encoding/json reads [] as an empty slice.
	a := []any{}
	r.space()
	if r.i < len(r.b) && r.b[r.i] == ']' {
		r.i++
		return a, true
	}
	for {
		v, ok := r.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := r.more(']'); !more {
			return a, ok
		}
	}
}

// more reads what follows a member of an object or an element of an
// array: a comma (more true), or the closing byte (ok true).
func (r *jsonReader) more(closing byte) (more, ok bool) {
	r.space()
	if r.i >= len(r.b) {
		return false, false
	}
	switch r.b[r.i] {
	case ',':
		r.i++
		return true, true
	case closing:
		r.i++
		return false, true
	}
	return false, false
}

// string reads a string at r.i (its opening quote). One without escapes,
// in valid UTF-8, is taken as it is; one with escapes or invalid UTF-8 is
// unquoted by encoding/json, which replaces bad sequences with U+FFFD.
func (r *jsonReader) string() (string, bool) {
	start := r.i
	r.i++
	plain := true
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			if plain {
				return string(r.b[start+1 : r.i-1]), true
			}
			var s string
			if err := json.Unmarshal(r.b[start:r.i], &s); err != nil {
				return "", false
			}
			return s, true
		case c == '\\':
			plain = false
			r.i += 2 // the escaped byte cannot end the string
		case c < 0x20:
			return "", false // a control character must be escaped
		case c < utf8.RuneSelf:
			r.i++
		default:
			ch, size := utf8.DecodeRune(r.b[r.i:])
			if ch == utf8.RuneError && size == 1 {
				plain = false
			}
			r.i += size
		}
	}
	return "", false
}

// number reads a number as Normalize has it: an int64 when it is a whole
// number in range written without a fraction or exponent, else a float64,
// else (out of float64's range) the number as written.
func (r *jsonReader) number() (any, bool) {
	start := r.i
	if r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.i < len(r.b) && r.b[r.i] >= '1' && r.b[r.i] <= '9':
		r.digits()
	default:
		return nil, false
	}
	whole := true
	if r.i < len(r.b) && r.b[r.i] == '.' {
		whole = false
		r.i++
		if r.digits() == 0 {
			return nil, false
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		whole = false
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			return nil, false
		}
	}
	text := r.b[start:r.i]
	if whole {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			return n, true
		}
	}
	if f, err := strconv.ParseFloat(string(text), 64); err == nil {
		return f, true
	}
	return string(text), true
}

// digits skips decimal digits and returns how many.
func (r *jsonReader) digits() int {
	start := r.i
	for r.i < len(r.b) && r.b[r.i] >= '0' && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i - start
}

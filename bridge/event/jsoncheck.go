package event

import (
	"encoding/json"
	"errors"
	"fmt"
)

// DefaultMaxDepth is the nesting depth CheckJSON allows when given a
// maxDepth below 1. Real event payloads are rarely deeper than ten.
const DefaultMaxDepth = 64

// ErrTooDeep is wrapped by CheckJSON's error when the JSON is nested deeper
// than allowed.
var ErrTooDeep = errors.New("JSON nested too deep")

// CheckJSON reports whether body is exactly one JSON value (surrounding
// white space allowed) with objects and arrays nested at most maxDepth
// levels; "[]" is one level. A maxDepth below 1 means DefaultMaxDepth.
//
// The depth is checked first by a flat byte scan that uses constant
// memory, so a body of a million "[" is refused after reading maxDepth+1 of
// them, before any parser builds state per level.
func CheckJSON(body []byte, maxDepth int) error {
	if maxDepth < 1 {
		maxDepth = DefaultMaxDepth
	}
	if off := exceedsDepth(body, maxDepth); off >= 0 {
		return &tooDeepError{maxDepth: maxDepth, offset: off}
	}
	if json.Valid(body) {
		return nil
	}
	// json.Valid says only yes or no. Unmarshal runs the same scanner
	// before decoding anything and reports where it failed; it is only
	// reached for bodies that are about to be refused anyway. The offset is
	// json.SyntaxError's: the bytes read up to and including the bad one.
	var syntaxErr *json.SyntaxError
	if err := json.Unmarshal(body, new(json.RawMessage)); errors.As(err, &syntaxErr) {
		return fmt.Errorf("invalid JSON at offset %d: %w", syntaxErr.Offset, syntaxErr)
	}
	return errors.New("invalid JSON")
}

// exceedsDepth returns the number of bytes up to and including the first
// '[' or '{' that opens level maxDepth+1 (the convention of
// json.SyntaxError.Offset), or -1 if there is none. It ignores brackets inside strings
// and does not otherwise check the syntax; json.Valid does that afterwards.
func exceedsDepth(body []byte, maxDepth int) int {
	depth := 0
	inString, escaped := false, false
	for i, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > maxDepth {
				return i + 1
			}
		case c == ']' || c == '}':
			// Unbalanced closers make the JSON invalid; json.Valid will
			// say so, and clamping keeps them from hiding later openers.
			if depth > 0 {
				depth--
			}
		}
	}
	return -1
}

// tooDeepError says where the nesting went too deep; it is ErrTooDeep.
type tooDeepError struct{ maxDepth, offset int }

func (e *tooDeepError) Error() string {
	return fmt.Sprintf("JSON nested deeper than %d levels at offset %d", e.maxDepth, e.offset)
}

func (e *tooDeepError) Is(target error) bool { return target == ErrTooDeep }

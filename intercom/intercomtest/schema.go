package intercomtest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// This file validates JSON values against the subset of OpenAPI 3.0 schemas
// that Intercom's descriptions use: $ref, type, nullable, required,
// properties, enum, anyOf, oneOf, allOf, items, pattern and the formats
// uuid, uri and date-time. Properties not listed are allowed, as OpenAPI
// allows them unless additionalProperties says otherwise (these files never
// do). Keywords outside the subset are annotations and ignored.

// A schema is one node of a decoded YAML description.
type schema = map[string]any

// violation is one way a value breaks its schema.
type violation struct {
	path    string // dotted path of the value: "to.id", "to[1].type"; "" for the whole value
	message string
}

func (v violation) String() string {
	if v.path == "" {
		return v.message
	}
	return v.path + ": " + v.message
}

// validator resolves $refs in doc, the whole description.
type validator struct {
	doc schema
}

// validate returns the violations of value (decoded with json.Number for
// numbers) against s, in a stable order.
func (v *validator) validate(s schema, value any) []violation {
	var out []violation
	v.check(s, value, "", &out, 0)
	return out
}

// maxDepth bounds $ref recursion (search filters nest through refs).
const maxDepth = 32

func (v *validator) check(s schema, value any, path string, out *[]violation, depth int) {
	if depth > maxDepth {
		*out = append(*out, violation{path, "nested too deeply"})
		return
	}
	s, err := v.resolve(s)
	if err != nil {
		*out = append(*out, violation{path, err.Error()})
		return
	}
	if value == nil {
		// OpenAPI 3.0: null is valid only where nullable says so; a schema
		// without a type says nothing.
		if _, typed := s["type"]; typed && s["nullable"] != true {
			*out = append(*out, violation{path, "must not be null"})
		}
		return
	}
	if t, ok := s["type"].(string); ok && !hasType(value, t) {
		*out = append(*out, violation{path, fmt.Sprintf("must be %s %s, not %s", article(t), t, jsonKind(value))})
		return
	}
	if enum, ok := s["enum"].([]any); ok && !inEnum(enum, value) {
		*out = append(*out, violation{path, fmt.Sprintf("must be one of %s, not %s", listEnum(enum), show(value))})
	}
	if p, ok := s["pattern"].(string); ok {
		if str, isStr := value.(string); isStr {
			if re, err := regexp.Compile(p); err == nil && !re.MatchString(str) {
				*out = append(*out, violation{path, fmt.Sprintf("must match %s, not %s", p, show(value))})
			}
		}
	}
	if f, ok := s["format"].(string); ok {
		if msg := checkFormat(f, value); msg != "" {
			*out = append(*out, violation{path, msg})
		}
	}
	if obj, ok := value.(map[string]any); ok {
		v.checkObject(s, obj, path, out, depth)
	}
	if arr, ok := value.([]any); ok {
		if items, ok := s["items"].(schema); ok {
			for i, item := range arr {
				v.check(items, item, fmt.Sprintf("%s[%d]", path, i), out, depth+1)
			}
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if sub, ok := sub.(schema); ok {
				v.check(sub, value, path, out, depth+1)
			}
		}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if subs, ok := s[kw].([]any); ok {
			v.checkAlternatives(kw, subs, value, path, out, depth)
		}
	}
}

func (v *validator) checkObject(s schema, obj map[string]any, path string, out *[]violation, depth int) {
	if req, ok := s["required"].([]any); ok {
		for _, name := range req {
			if name, ok := name.(string); ok {
				if _, present := obj[name]; !present {
					*out = append(*out, violation{join(path, name), "is required"})
				}
			}
		}
	}
	props, _ := s["properties"].(schema)
	names := make([]string, 0, len(obj))
	for name := range obj {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if ps, ok := props[name].(schema); ok {
			v.check(ps, obj[name], join(path, name), out, depth+1)
		}
	}
}

// checkAlternatives checks anyOf (at least one branch) and oneOf (exactly
// one). When none fits, it reports why the likeliest branch does not: the
// only one whose type fits the value, else every branch's first complaint.
func (v *validator) checkAlternatives(kw string, subs []any, value any, path string, out *[]violation, depth int) {
	var fits int
	var failures [][]violation
	var sameType [][]violation
	for _, sub := range subs {
		sub, ok := sub.(schema)
		if !ok {
			continue
		}
		var vs []violation
		v.check(sub, value, path, &vs, depth+1)
		if len(vs) == 0 {
			fits++
			continue
		}
		failures = append(failures, vs)
		if rs, err := v.resolve(sub); err == nil {
			if t, ok := rs["type"].(string); !ok || hasType(value, t) {
				sameType = append(sameType, vs)
			}
		}
	}
	switch {
	case fits == 0 && len(sameType) == 1:
		*out = append(*out, sameType[0]...)
	case fits == 0:
		var why []string
		for _, vs := range failures {
			why = append(why, vs[0].String())
		}
		*out = append(*out, violation{path, "matches none of the allowed forms (" + strings.Join(why, "; ") + ")"})
	case kw == "oneOf" && fits > 1:
		*out = append(*out, violation{path, fmt.Sprintf("matches %d of the allowed forms, want exactly one", fits)})
	}
}

// resolve follows $refs of the form "#/components/schemas/name".
func (v *validator) resolve(s schema) (schema, error) {
	for range maxDepth {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s, nil
		}
		var node any = v.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := node.(schema)
			if !ok {
				return nil, fmt.Errorf("schema reference %s not found", ref)
			}
			node = m[part]
		}
		next, ok := node.(schema)
		if !ok {
			return nil, fmt.Errorf("schema reference %s not found", ref)
		}
		s = next
	}
	return nil, fmt.Errorf("schema references loop")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func hasType(value any, t string) bool {
	switch t {
	case "object":
		_, ok := value.(map[string]any)
		return ok
	case "array":
		_, ok := value.([]any)
		return ok
	case "string":
		_, ok := value.(string)
		return ok
	case "boolean":
		_, ok := value.(bool)
		return ok
	case "number":
		_, ok := value.(json.Number)
		return ok
	case "integer":
		n, ok := value.(json.Number)
		if !ok {
			return false
		}
		r, ok := new(big.Rat).SetString(string(n))
		return ok && r.IsInt()
	}
	return true // an unknown type says nothing
}

func jsonKind(value any) string {
	switch value.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	}
	return "null"
}

func article(t string) string {
	if strings.ContainsAny(t[:1], "aeiou") {
		return "an"
	}
	return "a"
}

func inEnum(enum []any, value any) bool {
	for _, e := range enum {
		if equalJSON(e, value) {
			return true
		}
	}
	return false
}

// equalJSON compares a value from YAML with one from JSON, for enums:
// YAML numbers are ints or floats, JSON ones json.Number.
func equalJSON(yamlValue, jsonValue any) bool {
	if n, ok := jsonValue.(json.Number); ok {
		return fmt.Sprint(yamlValue) == string(n)
	}
	return yamlValue == jsonValue
}

func listEnum(enum []any) string {
	var s []string
	for _, e := range enum {
		s = append(s, fmt.Sprint(e))
	}
	return strings.Join(s, ", ")
}

// show quotes a scalar for an error message.
func show(value any) string {
	switch x := value.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case json.Number:
		return string(x)
	case bool:
		return fmt.Sprint(x)
	}
	return jsonKind(value)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkFormat checks the formats the descriptions use. A date-time on an
// integer is Intercom's way of saying unix seconds, which the type already
// checks.
func checkFormat(format string, value any) string {
	s, ok := value.(string)
	if !ok {
		return ""
	}
	switch format {
	case "uuid":
		if !uuidPattern.MatchString(s) {
			return fmt.Sprintf("must be a UUID, not %q", s)
		}
	case "uri":
		if _, err := url.Parse(s); err != nil {
			return fmt.Sprintf("must be a URI, not %q", s)
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return fmt.Sprintf("must be an RFC 3339 date-time, not %q", s)
		}
	}
	return ""
}

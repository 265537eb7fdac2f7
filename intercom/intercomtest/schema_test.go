package intercomtest

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidator(t *testing.T) {
	doc := schema{"components": schema{"schemas": schema{
		"thing": schema{"type": "object", "required": []any{"id"}, "properties": schema{
			"id":    schema{"type": "integer"},
			"name":  schema{"type": "string", "nullable": true, "enum": []any{"a", "b"}},
			"tags":  schema{"type": "array", "items": schema{"type": "string"}},
			"when":  schema{"type": "string", "format": "date-time"},
			"req":   schema{"type": "string", "format": "uuid"},
			"one":   schema{"oneOf": []any{schema{"type": "string"}, schema{"type": "integer"}}},
			"any":   schema{"anyOf": []any{schema{"type": "string"}, schema{"type": "number"}}},
			"both":  schema{"allOf": []any{schema{"type": "string"}, schema{"pattern": "^x"}}},
			"child": schema{"$ref": "#/components/schemas/thing"},
		}},
	}}}
	v := &validator{doc: doc}
	root := schema{"$ref": "#/components/schemas/thing"}
	tests := []struct {
		name, json string
		want       string // the violations, joined by "; "
	}{
		{"valid", `{"id":1,"name":"a","tags":["x"],"when":"2024-01-02T03:04:05Z","req":"f93ecfa8-d08a-4325-8694-89aeb89c8f85","one":"s","any":1.5,"both":"xy","child":{"id":2}}`, ""},
		{"extra properties are allowed", `{"id":1,"other":{}}`, ""},
		{"nullable", `{"id":1,"name":null}`, ""},
		{"missing required", `{}`, "id: is required"},
		{"wrong type", `{"id":"1"}`, "id: must be an integer, not a string"},
		{"fraction for an integer", `{"id":1.5}`, "id: must be an integer, not a number"},
		{"null not nullable", `{"id":null}`, "id: must not be null"},
		{"enum", `{"id":1,"name":"c"}`, `name: must be one of a, b, not "c"`},
		{"items", `{"id":1,"tags":["x",2]}`, "tags[1]: must be a string, not a number"},
		{"format date-time", `{"id":1,"when":"yesterday"}`, `when: must be an RFC 3339 date-time, not "yesterday"`},
		{"format uuid", `{"id":1,"req":"nope"}`, `req: must be a UUID, not "nope"`},
		{"oneOf none", `{"id":1,"one":true}`, "one: matches none of the allowed forms (one: must be a string, not a boolean; one: must be an integer, not a boolean)"},
		{"anyOf", `{"id":1,"any":"s"}`, ""},
		{"allOf", `{"id":1,"both":"y"}`, `both: must match ^x, not "y"`},
		{"nested ref", `{"id":1,"child":{}}`, "child.id: is required"},
		{"not an object", `[]`, "must be an object, not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tt.json))
			dec.UseNumber()
			var value any
			if err := dec.Decode(&value); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, vi := range v.validate(root, value) {
				got = append(got, vi.String())
			}
			if g := strings.Join(got, "; "); g != tt.want {
				t.Errorf("violations = %q, want %q", g, tt.want)
			}
		})
	}
}

// The corrections of the descriptions apply to every version.
func TestContractCorrections(t *testing.T) {
	cs, err := contracts()
	if err != nil {
		t.Fatal(err)
	}
	for version, c := range cs {
		if !strings.Contains(strings.Join(c.required["email"], ","), "template") || len(c.required["inapp"]) == 0 {
			t.Errorf("%s: message branches %v", version, c.required)
		}
	}
}

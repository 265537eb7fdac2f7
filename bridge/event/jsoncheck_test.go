package event

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name     string
		body     string
		maxDepth int
		wantErr  string // substring; "" = valid
		tooDeep  bool
	}{
		{name: "object", body: `{"a":[1,2,{"b":null}]}`, maxDepth: 64},
		{name: "scalar", body: `42`, maxDepth: 1},
		{name: "string", body: `"x"`, maxDepth: 1},
		{name: "surrounding white space", body: " \n\t{}\r\n ", maxDepth: 1},
		{name: "exactly max depth", body: nested(64), maxDepth: 64},
		{name: "brackets inside strings", body: `{"a":"[[[[{{{{","b":"\"[[["}`, maxDepth: 1},
		{name: "escaped backslash before quote", body: `["\\", [1]]`, maxDepth: 2},
		{name: "huge number", body: `1e400`, maxDepth: 1},
		{name: "default depth", body: nested(64), maxDepth: 0},

		{name: "one level too deep", body: nested(65), maxDepth: 64, wantErr: "JSON nested deeper than 64 levels at offset 65", tooDeep: true},
		{name: "default depth exceeded", body: nested(65), maxDepth: 0, wantErr: "JSON nested deeper than 64 levels", tooDeep: true},
		{name: "objects too deep", body: `{"a":{"b":{"c":1}}}`, maxDepth: 2, wantErr: "nested deeper than 2 levels at offset 11", tooDeep: true},
		{name: "megabyte of brackets", body: strings.Repeat("[", 1<<20), maxDepth: 64, wantErr: "nested deeper than 64 levels", tooDeep: true},
		{name: "trailing data", body: `{"a":1} {"b":2}`, maxDepth: 64, wantErr: "invalid JSON at offset 9: invalid character '{' after top-level value"},
		{name: "trailing garbage", body: `[1]x`, maxDepth: 64, wantErr: "invalid JSON at offset 4"},
		{name: "invalid token", body: `{"a":tru}`, maxDepth: 64, wantErr: "invalid JSON at offset 9"},
		{name: "trailing comma", body: `[1,]`, maxDepth: 64, wantErr: "invalid JSON at offset 4"},
		{name: "unterminated", body: `{"a":1`, maxDepth: 64, wantErr: "invalid JSON at offset 6: unexpected end of JSON input"},
		{name: "unbalanced closer", body: `]`, maxDepth: 64, wantErr: "invalid JSON at offset 1"},
		{name: "empty", body: ``, maxDepth: 64, wantErr: "invalid JSON at offset 0: unexpected end of JSON input"},
		{name: "only white space", body: "  ", maxDepth: 64, wantErr: "invalid JSON"},
		{name: "single quotes", body: `{'a':1}`, maxDepth: 64, wantErr: "invalid JSON at offset 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckJSON([]byte(tt.body), tt.maxDepth)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckJSON = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckJSON = %v, want error containing %q", err, tt.wantErr)
			}
			if got := errors.Is(err, ErrTooDeep); got != tt.tooDeep {
				t.Errorf("errors.Is(err, ErrTooDeep) = %v, want %v", got, tt.tooDeep)
			}
		})
	}
}

func BenchmarkCheckJSON(b *testing.B) {
	body := []byte(`{"order_id":42,"customer":{"id":"c_1","email":"a@example.com","tags":["x","y"]},"amount":1999}`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := CheckJSON(body, DefaultMaxDepth); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckJSONDeep(b *testing.B) {
	body := []byte(strings.Repeat("[", 1<<20))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := CheckJSON(body, DefaultMaxDepth); err == nil {
			b.Fatal("accepted")
		}
	}
}

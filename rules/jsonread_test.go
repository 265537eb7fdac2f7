package rules

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

// TestReadJSON says, for each shape, whether readJSON reads it itself
// (read) and what DecodeJSON returns either way: the same as
// encoding/json with Normalize.
func TestReadJSON(t *testing.T) {
	deep := strings.Repeat("[", maxReadDepth+1) + strings.Repeat("]", maxReadDepth+1)
	tests := []struct {
		name string
		in   string
		read bool // readJSON takes it; else encoding/json does
		want any  // DecodeJSON's value; ignored when wantErr
		err  bool
	}{
		{"object", `{"a": 1, "b": "x", "c": true, "d": null, "e": false}`, true,
			map[string]any{"a": int64(1), "b": "x", "c": true, "d": nil, "e": false}, false},
		{"nested", ` {"l": [1, {"x": [ ]}, {}], "o": {"p": {"q": -2}}} `, true,
			map[string]any{"l": []any{int64(1), map[string]any{"x": []any{}}, map[string]any{}}, "o": map[string]any{"p": map[string]any{"q": int64(-2)}}}, false},
		{"whitespace of every kind", "\t{\r\n\"a\"\t:\n1 }\n", true, map[string]any{"a": int64(1)}, false},
		{"a key twice keeps the last", `{"a": 1, "a": 2}`, true, map[string]any{"a": int64(2)}, false},
		{"whole numbers", `[0, -0, 7, -42, 999999999999999999, -999999999999999999]`, true,
			[]any{int64(0), int64(0), int64(7), int64(-42), int64(999999999999999999), int64(-999999999999999999)}, false},
		{"int64's ends", `[9223372036854775807, -9223372036854775808]`, true,
			[]any{int64(math.MaxInt64), int64(math.MinInt64)}, false},
		{"past int64 is a float", `[9223372036854775808]`, true, []any{9223372036854775808.0}, false},
		{"fractions and exponents", `[1.5, -0.25, 1e3, 2E-2, 1.0, 5e+1]`, true,
			[]any{1.5, -0.25, 1000.0, 0.02, 1.0, 50.0}, false},
		{"past float64 is the number as written", `[1e400]`, true, []any{"1e400"}, false},
		{"plain and UTF-8 strings", `["", "héllo", "日本", "a/b"]`, true, []any{"", "héllo", "日本", "a/b"}, false},
		{"escapes", `["a\"b", "\\", "\n\t", "\u00e9", "\ud83d\ude00", "\/"]`, true,
			[]any{`a"b`, `\`, "\n\t", "é", "😀", "/"}, false},
		{"a lone surrogate becomes U+FFFD", `["\ud83d"]`, true, []any{"\uFFFD"}, false},
		{"invalid UTF-8 becomes U+FFFD", "[\"a\xffb\"]", true, []any{"a\uFFFDb"}, false},
		{"a top-level scalar", `"x"`, true, "x", false},
		{"deeper than readJSON reads", deep, false, nil, false},
		{"empty", ``, false, nil, true},
		{"only space", `  `, false, nil, true},
		{"unclosed", `{"a": 1`, false, nil, true},
		{"trailing comma", `{"a": 1,}`, false, nil, true},
		{"two documents", `{} {}`, false, nil, true},
		{"trailing garbage", `{} x`, false, nil, true},
		{"leading zero", `[01]`, false, nil, true},
		{"plus sign", `[+1]`, false, nil, true},
		{"bare fraction", `[.5]`, false, nil, true},
		{"no fraction digits", `[1.]`, false, nil, true},
		{"no exponent digits", `[1e]`, false, nil, true},
		{"a control character in a string", "[\"a\x01\"]", false, nil, true},
		{"a bad escape", `["\x"]`, false, nil, true},
		{"an unquoted key", `{a: 1}`, false, nil, true},
		{"single quotes", `{'a': 1}`, false, nil, true},
		{"a capital literal", `[True]`, false, nil, true},
		{"a cut literal", `[nul]`, false, nil, true},
		{"a byte order mark", "\xef\xbb\xbf{}", false, nil, true},
		{"NaN", `[NaN]`, false, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, read := readJSON([]byte(tc.in)); read != tc.read {
				t.Errorf("readJSON reads it: %v, want %v", read, tc.read)
			}
			got, err := DecodeJSON([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("DecodeJSON error %v, want error %v", err, tc.err)
			}
			ref, refErr := decodeJSONReflect([]byte(tc.in))
			if (refErr != nil) != tc.err {
				t.Fatalf("encoding/json error %v, want error %v", refErr, tc.err)
			}
			if tc.err {
				return
			}
			if !reflect.DeepEqual(got, ref) {
				t.Errorf("DecodeJSON %#v, encoding/json %#v", got, ref)
			}
			if tc.in != deep && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("DecodeJSON %#v, want %#v", got, tc.want)
			}
		})
	}
}

// FuzzReadJSON: whatever readJSON accepts, encoding/json with Normalize
// accepts and reads to the same value.
func FuzzReadJSON(f *testing.F) {
	for _, s := range []string{
		`{"type":"order.paid","amount":150,"currency":"EUR","order_id":1,"customer":{"id":"u"}}`,
		`{"a":[1,2.5,-0,1e400,"\u00e9",null,true,false,{}],"b":"x\"y"}`,
		`[9223372036854775807,-9223372036854775808,9223372036854775808]`,
		"[\"\xff\\ud83d\"]", `"x"`, `0`, ` {} `, `{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := readJSON(data)
		if !ok {
			return
		}
		ref, err := decodeJSONReflect(data)
		if err != nil {
			t.Fatalf("readJSON read %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("%q: readJSON %#v, encoding/json %#v", data, got, ref)
		}
	})
}

func BenchmarkDecodeJSON(b *testing.B) {
	payload := []byte(`{"type":"order.paid","kind":"k3","n":41234,"user":"u-41234","amount":150.25,` +
		`"currency":"EUR","customer":{"id":"c-1","email":"ada@example.com","name":"Ada Lovelace"},` +
		`"items":[{"sku":"A-1","qty":2},{"sku":"B-2","qty":1}],"note":"Thanks \u2014 see you"}`)
	for _, bc := range []struct {
		name   string
		decode func([]byte) (any, error)
	}{{"read", DecodeJSON}, {"encoding-json", decodeJSONReflect}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppend checks Append against encoding/json (HTML left unescaped) on
// any string, valid UTF-8 or not.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\n\r\t\b\f\x00\x1f", "<&>", "\u2028\u2029", "\xff", "\xc3\x28", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := Append([]byte("x"), s)
		if !bytes.Equal(got[1:], bytes.TrimSuffix(want.Bytes(), []byte("\n"))) || got[0] != 'x' {
			t.Fatalf("Append(%q) = %q, want %q after what was there", s, got, want.Bytes())
		}
	})
}

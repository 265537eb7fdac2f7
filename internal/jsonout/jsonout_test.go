package jsonout

import (
	"bytes"
	"testing"
)

// FuzzAppendString checks AppendString against Marshal (encoding/json, HTML
// left as it is) on any string, valid UTF-8 or not.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\\n\r\t\b\f\x00\x1f", "<&>", "\u2028\u2029", "\xff", "\xc3\x28", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got := AppendString([]byte("x"), s)
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Fatalf("AppendString(%q) = %q, want %q after what was there", s, got, want)
		}
	})
}

// Package readme reads the examples out of the project's README.md, so
// that tests run them as a user copies them. It is for tests only and
// imports none of the bridge's packages.
package readme

import (
	"os"
	"strings"
	"testing"
)

// Block returns the first ```lang block after the first occurrence of
// marker in the README at path.
func Block(t testing.TB, path, marker, lang string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatalf("%s has no %q", path, marker)
	}
	_, rest, ok = strings.Cut(rest, "```"+lang+"\n")
	if !ok {
		t.Fatalf("%s has no %s block after %q", path, lang, marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("%s: the %s block after %q does not end", path, lang, marker)
	}
	return block
}

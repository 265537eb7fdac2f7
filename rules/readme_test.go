package rules

import (
	"os"
	"strings"
	"testing"
)

// readmeBlock is the first ```yaml block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no heading %q", heading)
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatalf("README.md has no yaml block after %q", heading)
	}
	block, _, _ := strings.Cut(rest, "```")
	return block
}

// The README's rule and rule test examples load as they are.
func TestReadmeExamples(t *testing.T) {
	set, err := Parse([]File{{Name: "README.md", Data: []byte(readmeBlock(t, "## Rules"))}}, Options{})
	if err != nil {
		t.Fatalf("the README's rule: %v", err)
	}
	if set.Len() != 1 {
		t.Errorf("the README's rule block has %d rules", set.Len())
	}
	_, err = Parse([]File{{Name: "README.md", Data: []byte(readmeBlock(t, "## Rules"))}}, Options{NoRecipientLists: true, IntercomVersion: "2.11"})
	if err == nil || !strings.Contains(err.Error(), "message.bcc needs Intercom-Version 2.14") {
		t.Errorf("the README's rule at 2.11: %v; want its bcc refused", err)
	}
	tf, err := ParseTests(File{Name: "README.md", Data: []byte(readmeBlock(t, "## Rule tests"))})
	if err != nil {
		t.Fatalf("the README's rule tests: %v", err)
	}
	if len(tf.Cases) != 3 || len(tf.Contacts) != 1 || tf.Cases[0].Expect[0].Request == nil {
		t.Errorf("the README's rule tests: %d cases, %d contacts", len(tf.Cases), len(tf.Contacts))
	}
}

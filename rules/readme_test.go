package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/readme"
)

// readmeBlock is the first ```yaml block after heading in README.md.
func readmeBlock(t *testing.T, heading string) string {
	return readme.Block(t, "../README.md", "\n"+heading+"\n", "yaml")
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

// The README's waiting message loads, and its test passes.
func TestReadmeWaitingMessage(t *testing.T) {
	set, err := Parse([]File{{Name: "README.md", Data: []byte(readmeBlock(t, "### Waiting messages"))}}, Options{MaxDelay: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("the README's waiting message: %v", err)
	}
	tests := readme.Block(t, "../README.md", "no longer there to cancel:", "yaml")
	tf, err := ParseTests(File{Name: "README.md", Data: []byte(tests)})
	if err != nil {
		t.Fatalf("the README's test of it: %v", err)
	}
	if len(tf.Cases) != 1 || len(tf.Cases[0].Then) != 2 {
		t.Fatalf("the README's test of it: %d cases", len(tf.Cases))
	}
	if res := tf.Cases[0].Run(set, nil); !res.Passed() {
		t.Errorf("the README's test of it fails:\n%s", strings.Join(res.Failures, "\n"))
	}
}

package watch

import "testing"

func TestRuleFileNames(t *testing.T) {
	for name, want := range map[string]bool{
		"rules.yaml": true, "rules.yml": true, "rules.test.yaml": false, "rules.yaml.tmp": false,
		".rules.yaml.swp": false, "rules.yaml~": false, "#rules.yaml#": false, ".#rules.yaml": false,
		"notes.txt": false, "rules.json": false,
	} {
		if got := isRuleFileName(name) && !ignoredRuleFileName(name); got != want {
			t.Errorf("%q counts as a rule file: %v, want %v", name, got, want)
		}
	}
}

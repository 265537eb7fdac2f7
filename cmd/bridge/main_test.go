package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the test scripts run "bridge" as a command: testscript
// re-executes this test binary as it.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"bridge": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the CLI scripts in testdata/script: each is a txtar
// archive of files and the commands to run on them, with their expected
// output.
func TestScripts(t *testing.T) {
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("EXAMPLES", examples)
			return nil
		},
	})
}

// The example config and the example rules it names agree: the README's
// first command runs them together.
func TestExampleConfigValidatesWithItsRules(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"validate", "-config", "../../config.example.yaml"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "ok: ../../config.example.yaml") || !strings.Contains(out.String(), "rules in") {
		t.Errorf("exit %d:\n%s%s", code, out.String(), errOut.String())
	}
}

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/contactsfile"
	"github.com/intercom-bridge/bridge/internal/plural"
	"github.com/intercom-bridge/bridge/rules"
)

// printErrors writes an error, one line per rule file problem.
func printErrors(w io.Writer, err error) {
	var list rules.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, e)
		}
		return
	}
	fmt.Fprintln(w, err)
}

// rulePaths discovers rule and test files. A test file named on its own
// brings in the rules of its directory, but not the other tests there:
// `bridge test dir/a.test.yaml` runs a.test.yaml's cases only.
func rulePaths(paths []string) (ruleFiles, testFiles []string, err error) {
	ruleFiles, testFiles, err = rules.Discover(paths)
	if err != nil {
		return nil, nil, err
	}
	var dirs []string
	for _, p := range paths {
		if rules.IsTestFile(p) {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	if len(dirs) == 0 {
		return ruleFiles, testFiles, nil
	}
	beside, _, err := rules.Discover(dirs)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range beside {
		if !slices.Contains(ruleFiles, f) {
			ruleFiles = append(ruleFiles, f)
		}
	}
	return ruleFiles, testFiles, nil
}

// runValidate checks rule files (and the rule tests beside them) and prints
// every problem as file:line:col: message.
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "[-config FILE] [flags] [PATH...]", stderr)
	configPath := fs.String("config", "", "configuration `file` to check, with the rules it names")
	defaultAdmin := fs.String("default-admin", "", "admin `id` for rules that set no message.from")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	paths := fs.Args()
	cfg, opts, err := configRules(*configPath, *defaultAdmin, "")
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if cfg != nil {
		paths = append(paths, cfg.Rules.Paths...)
		// Weak settings work, so they do not fail the check; each is worth
		// a look.
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stderr, "%s: warning: %s\n", w.Pos, w.Msg)
		}
		fmt.Fprintf(stdout, "ok: %s\n", *configPath)
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	ruleFiles, testFiles, err := rulePaths(paths)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	set, ruleErr := rules.LoadFiles(ruleFiles, opts)
	_, testErr := rules.LoadTests(testFiles)
	if err := errors.Join(ruleErr, testErr); err != nil {
		if ruleErr != nil {
			printErrors(stderr, ruleErr)
		}
		if testErr != nil {
			printErrors(stderr, testErr)
		}
		return 1
	}
	for _, r := range set.Rules() {
		for _, f := range r.Recipients() {
			if note := lookupNote(f, opts.IntercomVersion); note != "" {
				fmt.Fprintf(stdout, "%s: note: rule %s: %s\n", f.Pos, r.Name, note)
			}
		}
	}
	fmt.Fprintf(stdout, "ok: %s in %s, %s\n", plural.Count(set.Len(), "rule"), plural.Count(len(ruleFiles), "file"), plural.Count(len(testFiles), "test file"))
	return 0
}

// lookupNote explains how a recipient the rule names in a form Intercom's
// 2.x API lacks is sent: looked up first, then as {type: user|lead, id}.
func lookupNote(f rules.RecipientForm, version string) string {
	// A stand-in value: what is looked up depends on the form, not on it.
	p := rules.Recipient{Type: f.Type}
	switch f.Ident {
	case "user_id":
		p.UserID = "{user_id}"
	case "email":
		p.Email = "{email}"
	default:
		p.ID = "{id}"
	}
	how := pipeline.DescribeLookup(p, intercom.Capabilities(version).FindByExternalID)
	switch {
	case how == "":
		return ""
	case f.Ident == "id":
		return fmt.Sprintf("%s: Intercom %s has no type contact; the contact is fetched (%s, cached) and sent with its role as type", f.Field, version, how)
	}
	return fmt.Sprintf("%s: Intercom %s has no %s in a recipient; the %s is looked up before the send (%s, cached) and sent as {type: user|lead, id}",
		f.Field, version, f.Ident, f.Type, how)
}

// runTest runs the rule tests the way go test runs tests: a line per case,
// the differences of each failure, and a summary.
func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test", "[flags] PATH...", stderr)
	configPath := fs.String("config", "", "configuration `file` of the service the rules run in: its sources, subjects, default admin and Intercom version")
	defaultAdmin := fs.String("default-admin", "", "admin `id` for rules that set no message.from")
	runPattern := fs.String("run", "", "run only the cases whose \"file: name\" matches this `regexp`")
	verbose := fs.Bool("v", false, "print passing cases too")
	version := fs.String("version", "", "the Intercom-Version expected requests are written for (default: the config's, else "+intercom.DefaultVersion+")")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if code := checkVersionFlag(*version, stderr); code != 0 {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var filter *regexp.Regexp
	if *runPattern != "" {
		var err error
		if filter, err = regexp.Compile(*runPattern); err != nil {
			fmt.Fprintf(stderr, "-run: %v\n", err)
			return 2
		}
	}
	cfg, opts, err := configRules(*configPath, *defaultAdmin, *version)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	ruleFiles, testFiles, err := rulePaths(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	set, err := rules.LoadFiles(ruleFiles, opts)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	tests, err := rules.LoadTests(testFiles)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	passed, failed, found := 0, 0, 0
	for _, tf := range tests {
		found += len(tf.Cases)
		request := render.TestRequest(opts.IntercomVersion, tf)
		for _, tc := range rules.FilterCases(tf, filter) {
			if err := cfg.AsStored(&tc.Event); err != nil {
				fmt.Fprintf(stderr, "%s: %s: %v\n", tc.Pos, tc.Name, err)
				return 1
			}
			res := tc.Run(set, request)
			if res.Passed() {
				passed++
				if *verbose {
					fmt.Fprintf(stdout, "--- PASS: %s: %s\n", tc.Pos, tc.Name)
				}
				continue
			}
			failed++
			fmt.Fprintf(stdout, "--- FAIL: %s: %s\n", tc.Pos, tc.Name)
			for _, f := range res.Failures {
				fmt.Fprintf(stdout, "    %s\n", strings.ReplaceAll(f, "\n", "\n    "))
			}
		}
	}
	switch {
	case found == 0:
		fmt.Fprintln(stderr, "no rule tests found (*.test.yaml)")
		return 1
	case passed+failed == 0: // as go test -run: a filter that matches nothing is not a failure
		fmt.Fprintf(stdout, "no tests match -run %s\n", *runPattern)
		return 0
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}

// checkVersionFlag checks an Intercom-Version given with -version; "" is
// the default. It returns the exit code of a usage error, or 0.
func checkVersionFlag(version string, stderr io.Writer) int {
	if version == "" {
		return 0
	}
	if err := intercom.ValidateVersion(version); err != nil {
		fmt.Fprintf(stderr, "-version: %s\n", strings.TrimPrefix(err.Error(), "intercom: "))
		return 2
	}
	return 0
}

// configRules loads the config at path, when there is one, and returns the
// rule options the service would use with it: its sources, default admin
// and Intercom-Version. A -default-admin or -version given on the command
// line wins; without a config they are all there is.
func configRules(path, defaultAdmin, version string) (*config.Config, rules.Options, error) {
	var cfg *config.Config
	opts := rules.Options{}
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, opts, err
		}
		opts = cfg.RuleOptions()
	}
	if defaultAdmin != "" {
		opts.DefaultAdminID = defaultAdmin
	}
	if version != "" || opts.IntercomVersion == "" {
		opts.IntercomVersion = cmp.Or(version, intercom.DefaultVersion)
		opts.NoRecipientLists = !intercom.Capabilities(opts.IntercomVersion).RecipientLists
	}
	return cfg, opts, nil
}

// runRender prints the Intercom request bodies an event would produce, or
// with -explain what every rule did with it.
func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("render", "-rules PATH|-config FILE -event FILE [flags]", stderr)
	var rulePathsFlag stringsFlag
	fs.Var(&rulePathsFlag, "rules", "rule file or directory (repeatable; default with -config: its rules.paths)")
	configPath := fs.String("config", "", "configuration `file` of the service the rules run in: its sources, subjects, default admin and Intercom version")
	eventFile := fs.String("event", "", "JSON payload `file` of the event (- for standard input)")
	source := fs.String("source", "", "the event's source name")
	subject := fs.String("subject", "", "the event's NATS subject (default with -config, for a webhook source: the one the service gives it)")
	id := fs.String("id", "render-1", "the event id")
	ceType := fs.String("type", "", "the event's CloudEvents type")
	at := fs.String("time", "", "the event's time, RFC 3339 or unix seconds (default now)")
	headers := headerFlags{}
	fs.Var(headers, "header", "a header as `name=value` (repeatable)")
	defaultAdmin := fs.String("default-admin", "", "admin `id` for rules that set no message.from")
	explain := fs.Bool("explain", false, "say what every rule did with the event")
	version := fs.String("version", "", "the Intercom-Version the request is written for (default: the config's, else "+intercom.DefaultVersion+")")
	contactsFile := fs.String("contacts", "", "JSON or YAML `file` of contacts to look recipients up in: [{id, role, external_id, email}, ...]")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if (len(rulePathsFlag) == 0 && *configPath == "") || *eventFile == "" {
		fs.Usage()
		return 2
	}
	if code := checkVersionFlag(*version, stderr); code != 0 {
		return code
	}
	when, err := parseTimeFlag(*at)
	if err != nil {
		fmt.Fprintf(stderr, "-time: %v\n", err)
		return 2
	}
	var contacts render.Contacts
	if *contactsFile != "" {
		list, err := contactsfile.Load(*contactsFile)
		if err != nil {
			fmt.Fprintf(stderr, "-contacts: %v\n", err)
			return 2
		}
		contacts = list
	}
	cfg, opts, err := configRules(*configPath, *defaultAdmin, *version)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	if len(rulePathsFlag) == 0 {
		rulePathsFlag = cfg.Rules.Paths
	}
	ruleFiles, _, err := rules.Discover(rulePathsFlag)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	set, err := rules.LoadFiles(ruleFiles, opts)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	var raw []byte
	if *eventFile == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(*eventFile)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	data, err := rules.DecodeJSON(raw)
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid JSON: %v\n", *eventFile, err)
		return 1
	}
	ev := &rules.Event{ID: *id, Source: *source, Subject: *subject, Type: *ceType, Headers: headers, Data: data, Time: when}
	if err := cfg.AsStored(ev); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *explain {
		// A rule that fails for the event fails the command, as without
		// -explain.
		failed, err := render.Explain(stdout, set, ev, opts.IntercomVersion, contacts)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if failed {
			return 1
		}
		return 0
	}
	res := set.Evaluate(ev)
	out := make([]render.Delivery, 0, len(res.Deliveries))
	for _, d := range res.Deliveries {
		r, err := render.DeliveryFor(d, opts.IntercomVersion, contacts)
		if err != nil {
			fmt.Fprintf(stderr, "rule %s: %v\n", d.Rule, err)
			return 1
		}
		out = append(out, r)
	}
	if err := render.WriteJSON(stdout, out, ""); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Cancels follow as a second JSON value, so that the deliveries print
	// as they always have.
	if len(res.Cancels) > 0 {
		var c render.Cancels
		for _, x := range res.Cancels {
			c.Cancels = append(c.Cancels, render.Cancel{Rule: x.Rule, Key: x.Key})
		}
		if err := render.WriteJSON(stdout, c, ""); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	for _, e := range res.Errors {
		fmt.Fprintln(stderr, e)
	}
	if len(res.Errors) > 0 {
		return 1
	}
	return 0
}

// parseTimeFlag reads -time: RFC 3339 or unix seconds; "" is now.
func parseTimeFlag(s string) (time.Time, error) {
	if s == "" {
		return time.Now().UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-03-14T10:00:00Z) or unix seconds (1773482400)", s)
}

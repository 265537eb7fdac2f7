package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/rules"
)

// runRules lists the rules of a bridge with their mode, their matches and
// their last match: those of the running bridge, from its admin listener's
// /rules; when it does not answer, those of the config's rule files,
// without matches.
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("rules", "[-config FILE] [-json]", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file` of the bridge: its admin.listen, and its rules.paths")
	asJSON := fs.Bool("json", false, "print the rules as JSON (the body of the admin listener's /rules)")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return dlqUsageError(fs, stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	st, err := runningRules(ctx, cfg.Admin.Listen)
	if err != nil {
		// Not running, or not reachable: the files say the rest.
		fmt.Fprintf(stderr, "bridge rules: %v; listing the rule files, without matches\n", err)
		set, err := rules.Load(cfg.Rules.Paths, cfg.RuleOptions())
		if err != nil {
			printErrors(stderr, err)
			return 1
		}
		st = &bridge.RulesStatus{Hash: set.Hash(), Rules: []bridge.RuleStatus{}}
		for _, r := range set.Rules() {
			st.Rules = append(st.Rules, bridge.RuleStatus{Name: r.Name, Pos: r.Pos.String(), Mode: r.Mode})
		}
	}
	if *asJSON {
		if err := render.WriteJSON(stdout, st, ""); err != nil {
			return dlqFailed(fs, stderr, err)
		}
		return 0
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tMODE\tMATCHES\tLAST MATCH\tAT")
	for _, r := range st.Rules {
		last := "-"
		if r.LastMatch != nil {
			last = dlqAge(now.Sub(*r.LastMatch)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", r.Name, r.Mode, r.Matches, last, r.Pos)
	}
	tw.Flush()
	return 0
}

// runningRules asks the bridge's admin listener for its rules.
func runningRules(ctx context.Context, listen string) (*bridge.RulesStatus, error) {
	if listen == "" {
		return nil, fmt.Errorf("admin.listen is off, so the running bridge cannot be asked")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1" // listening everywhere: this machine too
	}
	url := "http://" + net.JoinHostPort(host, port) + "/rules"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no bridge answers at %s", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	var st bridge.RulesStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &st, nil
}

package main

import (
	"context"
	"fmt"
	"io"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/internal/plural"
)

// runCheck verifies the token, the admin ids, NATS and the streams, a line
// per check.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check", "-config FILE", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file`")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	failed := 0
	for _, r := range bridge.Check(ctx, cfg, "intercom-bridge/"+versionString()) {
		fmt.Fprintf(stdout, "%-4s  %-22s %s\n", r.Status, r.Name, r.Detail)
		if r.Status == "fail" {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%s failed\n", plural.Count(failed, "check"))
		return 1
	}
	return 0
}

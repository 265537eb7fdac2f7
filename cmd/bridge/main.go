// Command bridge turns events from NATS subjects and webhooks into Intercom
// messages, as decided by YAML rule files.
//
// Each subcommand lives in its own file as a function with the signature of
// command.run; main only dispatches.
//
// It owns the command line (flags, usage, exit codes, human messages) and
// the process (signals, the reload channel); it holds no logic of the
// service's, which it reaches through the bridge packages and config.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand of the CLI.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists the subcommands in the order `bridge help` shows them.
func commands() []command {
	return []command{
		{"run", "run the bridge", runRun},
		{"validate", "check config and rule files; print every error as file:line:col", runValidate},
		{"test", "run the rule tests (*.test.yaml) beside the rules", runTest},
		{"render", "print the Intercom request bodies an event would produce", runRender},
		{"rules", "list the rules with their mode, matches and last match", runRules},
		{"backtest", "compare candidate rules with the deployed ones over the stored events", runBacktest},
		{"check", "verify the Intercom token, admin ids, NATS and streams", runCheck},
		{"dlq", "list, show, replay or purge dead letters", runDLQ},
		{"scheduled", "list or cancel the messages that wait", runScheduled},
		{"send", "post a signed JSON event to a webhook source of a running bridge", runSend},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit, so tests can call it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "help": // bridge help CMD is bridge CMD -h
		if len(rest) == 0 {
			usage(stdout)
			return 0
		}
		name, rest = rest[0], append(rest[1:], "-h")
	case "-version", "--version":
		name = "version"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "bridge: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: bridge <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'bridge <command> -h' for the flags of a command.")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/internal/plural"
)

// runScheduled lists or cancels the messages that wait.
func runScheduled(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "scheduled", map[string]func(context.Context, []string, io.Writer, io.Writer) int{
		"list": runScheduledList, "cancel": runScheduledCancel,
	}, `Usage: bridge scheduled <command> [-config FILE] [flags]

Commands:
  list    [-rule R] [-key K] [-json]   messages that wait, soonest first: when, rule, key, recipient
  cancel  -rule R -key K               cancel the message of rule R that waits under key K

Run 'bridge scheduled <command> -h' for the flags.
`, args, stdout, stderr)
}

// openWaiting opens the messages that wait of the bridge configured in
// path.
func openWaiting(ctx context.Context, path string) (*pipeline.Waiting, func(), error) {
	cfg, b, err := dialBridge(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	w, err := pipeline.OpenWaiting(ctx, b.JS, cfg.Topology())
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return w, func() { b.Close() }, nil
}

func runScheduledList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("scheduled list", "[-config FILE] [-rule R] [-key K] [-json]", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file` of the bridge")
	rule := fs.String("rule", "", "only the messages of this `rule`")
	key := fs.String("key", "", "only the messages waiting under this `key`")
	asJSON := fs.Bool("json", false, "print the messages as JSON")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return dlqUsageError(fs, stderr, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	w, closeFn, err := openWaiting(ctx, *configPath)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	defer closeFn()
	msgs, err := w.List(ctx, *rule, *key)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	if *asJSON {
		if msgs == nil {
			msgs = []pipeline.WaitingMessage{}
		}
		if err := render.WriteJSON(stdout, msgs, ""); err != nil {
			return dlqFailed(fs, stderr, err)
		}
		return 0
	}
	if len(msgs) == 0 {
		fmt.Fprintln(stdout, "no messages wait")
		return 0
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tIN\tRULE\tKEY\tTO\tEVENT")
	for _, m := range msgs {
		to := "-"
		if len(m.Job.Message.To) > 0 {
			to = m.Job.Message.To[0].String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.At.UTC().Format(time.RFC3339), dlqAge(m.At.Sub(now)), m.Rule, m.Key, to, dlqDash(m.Job.EventID))
	}
	tw.Flush()
	fmt.Fprintln(stdout, plural.Count(len(msgs), "message")+" waiting")
	return 0
}

func runScheduledCancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("scheduled cancel", "[-config FILE] -rule R -key K", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file` of the bridge")
	rule := fs.String("rule", "", "the `rule` of the message")
	key := fs.String("key", "", "the `key` it waits under (the KEY column of 'bridge scheduled list')")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	if *rule == "" || *key == "" || fs.NArg() > 0 {
		return dlqUsageError(fs, stderr, errors.New("name the message with -rule and -key, and nothing else"))
	}
	w, closeFn, err := openWaiting(ctx, *configPath)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	defer closeFn()
	// What waits now is cancelled; what an event stored after this
	// schedules is not.
	last, err := w.LastEventSeq(ctx)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	cancelled, err := w.Cancel(ctx, *rule, *key, last+1)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	if !cancelled {
		fmt.Fprintf(stdout, "no message of rule %s waits under key %q (if one fires now, it is dropped)\n", *rule, *key)
		return 0
	}
	fmt.Fprintf(stdout, "cancelled the message of rule %s waiting under key %q\n", *rule, *key)
	return 0
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/internal/plural"
)

// dlqReasons are the values -reason accepts.
var dlqReasons = []string{
	pipeline.ReasonPermanent, pipeline.ReasonExhausted, pipeline.ReasonUncertain,
	pipeline.ReasonRender, pipeline.ReasonInvalidEvent, dlq.ReasonUnreadable,
}

// runDLQ lists, shows, replays or purges dead letters.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runSubcommand(ctx, "dlq", map[string]func(context.Context, []string, io.Writer, io.Writer) int{
		"list": runDLQList, "show": runDLQShow, "replay": runDLQReplay, "purge": runDLQPurge,
	}, `Usage: bridge dlq <command> [-config FILE] [flags]

Commands:
  list    [-rule R] [-reason X] [-since D] [-json]        dead letters by rule and reason, then one line each
  show    ID...                                           entries in full, as JSON
  replay  [-rule R] [-reason X] [-since D] [ID...]        put entries back into the pipeline (default: all)
  purge   [-rule R] [-reason X] [-since D] [-yes] [ID...] delete entries

IDs are the first column of 'bridge dlq list'. Run 'bridge dlq <command> -h' for the flags.
`, args, stdout, stderr)
}

// runSubcommand runs the subcommand of a command with subcommands
// (bridge dlq list): "help SUB" is "SUB -h", and a missing or unknown
// subcommand prints usage (to stdout with exit 0 when asked for, else to
// stderr with exit 2).
func runSubcommand(ctx context.Context, name string, sub map[string]func(context.Context, []string, io.Writer, io.Writer) int,
	usage string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[0] == "help" { // bridge dlq help list
		args = append(args[1:2], "-h")
	}
	if len(args) > 0 {
		if run, ok := sub[args[0]]; ok {
			return run(ctx, args[1:], stdout, stderr)
		}
	}
	code, w := 2, stderr
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help") {
		code, w = 0, stdout
	} else if len(args) > 0 {
		fmt.Fprintf(stderr, "bridge %s: unknown command %q\n\n", name, args[0])
	}
	fmt.Fprint(w, usage)
	return code
}

// dlqFlags are the flags the dlq commands share.
type dlqFlags struct {
	fs         *flag.FlagSet
	configPath *string
	rule       *string
	reason     *string
	since      *string
}

func newDLQFlags(name, usage string, filter bool, stderr io.Writer) *dlqFlags {
	fs := newFlagSet("dlq "+name, usage, stderr)
	f := &dlqFlags{fs: fs, configPath: fs.String("config", "config.yaml", "configuration `file` of the bridge")}
	if filter {
		f.rule = fs.String("rule", "", "only the dead letters of this `rule`")
		f.reason = fs.String("reason", "", "only dead letters with this `reason`: "+strings.Join(dlqReasons, ", "))
		f.since = fs.String("since", "", "only dead letters younger than this `age` (90m, 24h, 7d)")
	}
	return f
}

// filter builds the filter from the flags and the IDs in args; the error is
// a usage error.
func (f *dlqFlags) filter() (dlq.Filter, error) {
	var flt dlq.Filter
	if f.rule != nil {
		flt.Rule = *f.rule
	}
	if f.reason != nil && *f.reason != "" {
		if !slices.Contains(dlqReasons, *f.reason) {
			return flt, fmt.Errorf("-reason: unknown reason %q (one of %s)", *f.reason, strings.Join(dlqReasons, ", "))
		}
		flt.Reason = *f.reason
	}
	if f.since != nil && *f.since != "" {
		d, err := config.ParseDuration(*f.since)
		if err != nil || d <= 0 {
			return flt, fmt.Errorf("-since: want a positive age such as 90m, 24h or 7d, got %q", *f.since)
		}
		flt.Since = d
	}
	ids, err := parseDLQIDs(f.fs.Args())
	flt.IDs = ids
	return flt, err
}

func parseDLQIDs(args []string) ([]uint64, error) {
	var ids []uint64
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("%q is not a dead letter ID (the first column of 'bridge dlq list')", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// dialBridge connects to the NATS of the bridge configured in path, as
// the dlq and scheduled commands do.
func dialBridge(ctx context.Context, path string) (*config.Config, *broker.Broker, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	b, err := broker.Dial(ctx, cfg.BrokerOptions(), zerolog.Nop())
	if err != nil && cfg.NATS.URL != "" {
		// The error names the address tried; say what it most likely means.
		return nil, nil, fmt.Errorf("%w: is that NATS server running, and reachable from here?", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return cfg, b, nil
}

// openDLQ opens the dead-letter stream of the bridge configured in path.
func openDLQ(ctx context.Context, path string) (*dlq.DLQ, func(), error) {
	cfg, b, err := dialBridge(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	dec, err := cfg.Decoder()
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	q, err := dlq.Open(ctx, b.JS, cfg.Topology(), dec)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return q, func() { b.Close() }, nil
}

// dlqUsageError prints a usage problem and returns 2.
func dlqUsageError(fs *flag.FlagSet, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "bridge %s: %v\n", fs.Name(), err)
	fmt.Fprintf(stderr, "Run 'bridge %s -h' for usage.\n", fs.Name())
	return 2
}

func dlqFailed(fs *flag.FlagSet, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "bridge %s: ", fs.Name())
	printErrors(stderr, err)
	return 1
}

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newDLQFlags("list", "[-config FILE] [-rule R] [-reason X] [-since D] [-json] [ID...]", true, stderr)
	asJSON := f.fs.Bool("json", false, "print the entries as JSON")
	if code, ok := parseFlags(f.fs, args, stdout); !ok {
		return code
	}
	flt, err := f.filter()
	if err != nil {
		return dlqUsageError(f.fs, stderr, err)
	}
	q, closeFn, err := openDLQ(ctx, *f.configPath)
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	defer closeFn()
	entries, err := q.List(ctx, flt)
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	if *asJSON {
		if entries == nil {
			entries = []dlq.Entry{}
		}
		if err := render.WriteJSON(stdout, entries, ""); err != nil {
			return dlqFailed(f.fs, stderr, err)
		}
		return 0
	}
	if len(entries) == 0 {
		if flt.IsZero() {
			fmt.Fprintln(stdout, "no dead letters")
		} else {
			fmt.Fprintln(stdout, "no dead letters match")
		}
		return 0
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tREASON\tCOUNT\tOLDEST\tNEWEST")
	total := 0
	for _, s := range dlq.Summarize(entries) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", dlqDash(s.Rule), s.Reason, s.Count, dlqAge(now.Sub(s.Oldest)), dlqAge(now.Sub(s.Newest)))
		total += s.Count
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%s\n\n", plural.Count(total, "dead letter"))
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tRULE\tREASON\tEVENT\tERROR")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, dlqAge(now.Sub(e.At)), dlqDash(e.Rule), e.Reason, dlqDash(e.EventID), dlqShortError(e.Error))
	}
	tw.Flush()
	return 0
}

// dlqShownEntry is an entry as dlq show prints it: the stored fields, its age,
// and an unreadable event's bytes as text when they are text.
type dlqShownEntry struct {
	dlq.Entry
	Age     string `json:"age"`
	RawText string `json:"raw_text,omitempty"`
}

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newDLQFlags("show", "[-config FILE] ID...", false, stderr)
	if code, ok := parseFlags(f.fs, args, stdout); !ok {
		return code
	}
	ids, err := parseDLQIDs(f.fs.Args())
	if err == nil && len(ids) == 0 {
		err = errors.New("name the IDs to show (the first column of 'bridge dlq list')")
	}
	if err != nil {
		return dlqUsageError(f.fs, stderr, err)
	}
	q, closeFn, err := openDLQ(ctx, *f.configPath)
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	defer closeFn()
	code := 0
	for _, id := range ids {
		e, err := q.Get(ctx, id)
		if err != nil {
			code = dlqFailed(f.fs, stderr, err)
			continue
		}
		out := dlqShownEntry{Entry: *e, Age: dlqAge(time.Since(e.At))}
		if e.Raw != nil && utf8.Valid(e.Raw.Data) {
			out.RawText = string(e.Raw.Data)
		}
		if err := render.WriteJSON(stdout, out, ""); err != nil {
			return dlqFailed(f.fs, stderr, err)
		}
	}
	return code
}

func runDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newDLQFlags("replay", "[-config FILE] [-rule R] [-reason X] [-since D] [ID...]", true, stderr)
	if code, ok := parseFlags(f.fs, args, stdout); !ok {
		return code
	}
	flt, err := f.filter()
	if err != nil {
		return dlqUsageError(f.fs, stderr, err)
	}
	q, closeFn, err := openDLQ(ctx, *f.configPath)
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	defer closeFn()
	progress := func(done, total int) {
		step := 10
		for total > 20*step {
			step *= 10
		}
		if done%step == 0 && done < total {
			fmt.Fprintf(stdout, "replayed %d/%d\n", done, total)
		}
	}
	n, err := q.Replay(ctx, flt, progress)
	fmt.Fprintf(stdout, "replayed %s\n", plural.Count(n, "dead letter"))
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	return 0
}

func runDLQPurge(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := newDLQFlags("purge", "[-config FILE] [-rule R] [-reason X] [-since D] [-yes] [ID...]", true, stderr)
	yes := f.fs.Bool("yes", false, "purge every dead letter when no filter or ID is given")
	if code, ok := parseFlags(f.fs, args, stdout); !ok {
		return code
	}
	flt, err := f.filter()
	if err != nil {
		return dlqUsageError(f.fs, stderr, err)
	}
	if flt.IsZero() && !*yes {
		return dlqUsageError(f.fs, stderr, errors.New("refusing to purge every dead letter: add -yes, or select some with -rule, -reason, -since or IDs"))
	}
	q, closeFn, err := openDLQ(ctx, *f.configPath)
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	defer closeFn()
	n, err := q.Purge(ctx, flt)
	fmt.Fprintf(stdout, "purged %s\n", plural.Count(n, "dead letter"))
	if err != nil {
		return dlqFailed(f.fs, stderr, err)
	}
	return 0
}

// dlqAge writes an age the short way: 45s, 3m, 2h, 4d.
func dlqAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d/time.Second), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// dlqShortError is the first line of an error, cut to fit a line.
func dlqShortError(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > 72 {
		r := []rune(s)
		s = string(r[:69]) + "..."
	}
	if s == "" {
		return "-"
	}
	return s
}

func dlqDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

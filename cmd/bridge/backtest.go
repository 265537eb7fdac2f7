package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/intercom-bridge/bridge/bridge"
	"github.com/intercom-bridge/bridge/bridge/backtest"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/internal/plural"
	"github.com/intercom-bridge/bridge/rules"
)

// backtestSamples is how many sample events each rule shows per kind of
// difference.
const backtestSamples = 3

// runBacktest compares the deployed rules with candidate rules over the
// stored events. Exit 1 when the candidate has render errors the deployed
// rules had not (or the backtest could not run), 2 for bad input: flags, a
// candidate set that does not load, a window outside the stream.
func runBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("backtest", "-config FILE -rules PATH [-since D | -from T -to T] [-rule R] [-json]", stderr)
	configPath := fs.String("config", "config.yaml", "configuration `file` of the bridge: its NATS, its deployed rules (rules.paths), its dedupe window")
	var candidatePaths stringsFlag
	fs.Var(&candidatePaths, "rules", "candidate rule file or directory (repeatable)")
	since := fs.String("since", "", "the events stored within this `age` (90m, 24h, 7d; default: all the stream holds)")
	fromFlag := fs.String("from", "", "the events stored from this `time` on (RFC 3339 or unix seconds)")
	toFlag := fs.String("to", "", "the events stored up to this `time` (default: the last)")
	rule := fs.String("rule", "", "report this `rule` only")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := parseFlags(fs, args, stdout); !ok {
		return code
	}
	usageErr := func(err error) int { return dlqUsageError(fs, stderr, err) }
	if len(candidatePaths) == 0 {
		return usageErr(errors.New("name the candidate rules with -rules PATH"))
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	from, to, err := backtestWindow(*since, *fromFlag, *toFlag, time.Now())
	if err != nil {
		return usageErr(err)
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	deployed, err := rules.Load(cfg.Rules.Paths, cfg.RuleOptions())
	if err != nil {
		fmt.Fprintf(stderr, "bridge backtest: the deployed rules (%s) do not load:\n", strings.Join(cfg.Rules.Paths, ", "))
		printErrors(stderr, err)
		return 1
	}
	candidate, err := rules.Load(candidatePaths, cfg.RuleOptions())
	if err != nil {
		printErrors(stderr, err) // as validate: every problem, file:line:col
		return 2
	}
	if *rule != "" && deployed.Rule(*rule) == nil && candidate.Rule(*rule) == nil {
		return usageErr(fmt.Errorf("-rule: no rule %q in the deployed or the candidate rules", *rule))
	}
	decoder, err := cfg.Decoder()
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}

	_, b, err := dialBridge(ctx, *configPath)
	if err != nil {
		return dlqFailed(fs, stderr, err)
	}
	defer b.Close()
	bar := newProgress(stderr)
	rep, err := backtest.Run(ctx, b.JS, backtest.Options{Topology: cfg.Topology(), Decoder: decoder,
		Deployed: deployed, Candidate: candidate, From: from, To: to, Rule: *rule,
		Policy: cfg.Policy(), Samples: backtestSamples, Progress: bar.update})
	bar.done()
	var rangeErr *backtest.RangeError
	switch {
	case errors.As(err, &rangeErr):
		fmt.Fprintf(stderr, "bridge backtest: %v\n", err)
		return 2
	case err != nil:
		return dlqFailed(fs, stderr, err)
	}
	if *asJSON {
		if err := render.WriteJSON(stdout, rep, ""); err != nil {
			return dlqFailed(fs, stderr, err)
		}
	} else {
		printBacktest(stdout, rep)
	}
	if rep.NewErrors > 0 {
		if !*asJSON {
			fmt.Fprintf(stdout, "FAIL: the candidate rules fail for %s the deployed rules do not fail for\n", plural.Count(rep.NewErrors, "event"))
		}
		return 1
	}
	return 0
}

// backtestWindow reads -since, or -from and -to; zero times are the
// stream's first and last event.
func backtestWindow(since, from, to string, now time.Time) (time.Time, time.Time, error) {
	var f, t time.Time
	if since != "" && (from != "" || to != "") {
		return f, t, errors.New("-since and -from/-to are two ways to say the same: use one")
	}
	if since != "" {
		d, err := config.ParseDuration(since)
		if err != nil || d <= 0 {
			return f, t, fmt.Errorf("-since: want a positive age such as 90m, 24h or 7d, got %q", since)
		}
		return now.Add(-d), t, nil
	}
	var err error
	if from != "" {
		if f, err = parseTimeFlag(from); err != nil {
			return f, t, fmt.Errorf("-from: %w", err)
		}
	}
	if to != "" {
		if t, err = parseTimeFlag(to); err != nil {
			return f, t, fmt.Errorf("-to: %w", err)
		}
	}
	if !f.IsZero() && !t.IsZero() && !t.After(f) {
		return f, t, fmt.Errorf("-to (%s) must be after -from (%s)", t.Format(time.RFC3339), f.Format(time.RFC3339))
	}
	return f, t, nil
}

// printBacktest writes the report for people: the window, a line per rule
// with before → after, then the sample events of each rule that differs.
func printBacktest(w io.Writer, rep *backtest.Report) {
	fmt.Fprintf(w, "%s from %s to %s (stream %s)", plural.Count(rep.Events, "event"), stamp(rep.From), stamp(rep.To), rep.Stream.Name)
	if rep.Unreadable > 0 {
		fmt.Fprintf(w, ", %s unreadable", plural.Count(rep.Unreadable, "event"))
	}
	fmt.Fprintln(w)
	if rep.From.Before(rep.Stream.First) {
		fmt.Fprintf(w, "note: the stream's first event is from %s; older ones have aged out (nats.events.max_age)\n", stamp(rep.Stream.First))
	}
	if rep.Events == 0 {
		fmt.Fprintf(w, "no events in the window: the stream holds %s from %s to %s\n",
			plural.Count(int(rep.Stream.Events), "event"), stamp(rep.Stream.First), stamp(rep.Stream.Last))
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tCHANGE\tMATCHED\tSENT\tDUPLICATE\tTHROTTLED\tWAITING\tERRORS\tADDED\tREMOVED\tCHANGED")
	for _, r := range rep.Rules {
		b, a := r.Before, r.After
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", r.Rule, dlqDash(r.Change),
			arrow(b.Matched, a.Matched), arrow(b.Sent, a.Sent), arrow(b.Duplicates, a.Duplicates),
			arrow(b.Throttled, a.Throttled), arrow(b.Waiting, a.Waiting), arrow(b.Errors, a.Errors),
			r.Added, r.Removed, r.Changed)
	}
	tw.Flush()
	for _, r := range rep.Rules {
		if len(r.Samples) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", r.Rule)
		for _, s := range r.Samples {
			fmt.Fprintf(w, "  %s: event %s (source %s, subject %s, %s)\n", s.Kind, s.EventID, dlqDash(s.Source), dlqDash(s.Subject), stamp(s.Time))
			switch {
			case s.Kind == "error":
				fmt.Fprintf(w, "    %s\n", s.Error)
			case s.Diff != "":
				fmt.Fprintf(w, "    %s", strings.ReplaceAll(strings.TrimSuffix(s.Diff, "\n"), "\n", "\n    ")+"\n")
			case s.After != nil:
				fmt.Fprintf(w, "    would send %s to %s%s\n", s.After.MessageType, recipientList(s.After.To), instead(s.Instead, "deployed"))
			case s.Before != nil:
				fmt.Fprintf(w, "    would no longer send %s to %s%s\n", s.Before.MessageType, recipientList(s.Before.To), instead(s.Instead, "candidate"))
			}
			if s.WaitsUntil != nil {
				fmt.Fprintf(w, "    would wait until %s\n", stamp(*s.WaitsUntil))
			}
		}
	}
}

// instead says why the other set sends nothing, when its rule matched.
func instead(outcome, set string) string {
	if outcome == "" {
		return ""
	}
	return fmt.Sprintf(" (%s: %s)", set, outcome)
}

// arrow writes a count before and after: "12" when it did not change,
// "12 → 15" when it did.
func arrow(before, after int) string {
	if before == after {
		return fmt.Sprint(before)
	}
	return fmt.Sprintf("%d → %d", before, after)
}

func recipientList(rs []rules.Recipient) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// progress shows how far a long read is: a bar redrawn in place on a
// terminal, else a plain line every 10 %.
type progress struct {
	w        io.Writer
	terminal bool
	start    time.Time
	last     time.Time
	lastTen  int
	drawn    bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, terminal: bridge.IsTerminal(w), start: time.Now()}
}

func (p *progress) update(read, total int) {
	now := time.Now()
	if total == 0 {
		return
	}
	rate := float64(read) / max(now.Sub(p.start).Seconds(), 1e-3)
	if !p.terminal {
		if ten := read * 10 / total; ten > p.lastTen && read < total {
			p.lastTen = ten
			fmt.Fprintf(p.w, "read %d/%d events (%d%%), %.0f events/s\n", read, total, ten*10, rate)
		}
		return
	}
	if now.Sub(p.last) < 100*time.Millisecond && read < total {
		return
	}
	p.last, p.drawn = now, true
	const width = 30
	filled := read * width / total
	eta := "-"
	if rate > 0 {
		eta = (time.Duration(float64(total-read)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d events  %.0f/s  ETA %s \x1b[K", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		read, total, rate, eta)
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

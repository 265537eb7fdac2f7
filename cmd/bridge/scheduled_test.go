package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/rules"
)

func TestScheduledListAndCancel(t *testing.T) {
	e := newDLQEnv(t)
	ctx := context.Background()
	w, err := pipeline.OpenWaiting(ctx, e.js, e.cfg.Topology())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	for i, key := range []string{"u-1", "u-2"} {
		job := dlqTestJob("nudge", key)
		job.Message.To = []rules.Recipient{{Type: "user", UserID: key}}
		job.Schedule = &pipeline.JobSchedule{At: at.Add(time.Duration(i) * time.Hour), Key: key, EventSeq: 1}
		if _, err := w.Schedule(ctx, job); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string, string) {
		args = append([]string{args[0], "-config", e.cfgPath}, args[1:]...)
		var out, errOut bytes.Buffer
		code := runScheduled(ctx, args, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run("list")
	lines := dlqLines(out)
	if code != 0 || len(lines) != 4 || lines[0] != "AT IN RULE KEY TO EVENT" ||
		!strings.HasPrefix(lines[1], at.Format(time.RFC3339)+" 2h nudge u-1 user user_id u-1 ev-u-1") ||
		!strings.Contains(lines[2], " nudge u-2 ") || lines[3] != "2 messages waiting" {
		t.Errorf("list: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run("list", "-key", "u-2", "-json"); code != 0 || !strings.Contains(out, `"key": "u-2"`) || strings.Contains(out, `"key": "u-1"`) {
		t.Errorf("list -key u-2 -json: %d\n%s", code, out)
	}

	if code, out, errOut := run("cancel", "-rule", "nudge", "-key", "u-1"); code != 0 || out != "cancelled the message of rule nudge waiting under key \"u-1\"\n" {
		t.Errorf("cancel: %d %q %q", code, out, errOut)
	}
	if code, out, _ := run("cancel", "-rule", "nudge", "-key", "u-1"); code != 0 || !strings.HasPrefix(out, "no message of rule nudge waits under key \"u-1\"") {
		t.Errorf("cancel again: %d %q", code, out)
	}
	if code, out, _ := run("list"); code != 0 || !strings.HasSuffix(out, "1 message waiting\n") || strings.Contains(out, "u-1") {
		t.Errorf("list after the cancel: %d\n%s", code, out)
	}
	if code, _, errOut := run("cancel", "-rule", "nudge"); code != 2 || !strings.Contains(errOut, "-rule and -key") {
		t.Errorf("cancel without -key: %d %q", code, errOut)
	}
}

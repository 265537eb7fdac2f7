package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/internal/plural"
)

// maxListed bounds the rows of the dead-letter list; the counts above it
// cover all of them.
const maxListed = 500

// reasons are the filter's choices.
var reasons = append(slices.Clone(pipeline.Reasons), dlq.ReasonUnreadable)

type deadLettersData struct {
	Rule, Reason, Age string
	Rules             []string
	Reasons           []string
	Summary           []dlq.Summary
	Entries           []dlq.Entry // newest first
	Total             int
}

// filter reads the list's filter from the query: rule, reason, age (a
// duration such as 90m or 24h).
func filterOf(r *http.Request) (dlq.Filter, error) {
	q := r.URL.Query()
	f := dlq.Filter{Rule: q.Get("rule"), Reason: q.Get("reason")}
	if a := q.Get("age"); a != "" {
		d, err := time.ParseDuration(a)
		if err != nil || d <= 0 {
			return f, fmt.Errorf("age: %q is not a duration such as 90m or 24h", a)
		}
		f.Since = d
	}
	return f, nil
}

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	entries, err := c.dlq.List(r.Context(), f)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	q := r.URL.Query()
	d := deadLettersData{Rule: f.Rule, Reason: f.Reason, Age: q.Get("age"), Reasons: reasons, Summary: dlq.Summarize(entries), Total: len(entries)}
	for _, rule := range c.opts.Rules().Rules() {
		d.Rules = append(d.Rules, rule.Name)
	}
	slices.Reverse(entries)
	d.Entries = entries[:min(len(entries), maxListed)]
	c.render(w, r, "deadletters", d)
}

type deadLetterData struct {
	dlq.Entry
	Request        string // the body the job sends, at the config's Intercom-Version
	RequestVersion string
	Event          string
}

func (c *Console) deadLetterPage(w http.ResponseWriter, r *http.Request) {
	seq, err := parseSeq(r.PathValue("id"))
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err)
		return
	}
	e, err := c.dlq.Get(r.Context(), seq)
	if errors.Is(err, dlq.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, err)
		return
	}
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := deadLetterData{Entry: *e, RequestVersion: c.opts.IntercomVersion}
	if e.Job != nil {
		if v, err := render.WireFor(c.opts.IntercomVersion, e.Job.Message, nil); err != nil {
			d.Request = "the request cannot be built: " + err.Error()
		} else {
			d.Request = indent(v.Request)
		}
	}
	switch {
	case e.Event != nil:
		b, _ := json.Marshal(e.Event)
		d.Event = indent(b)
	case e.Raw != nil:
		d.Event = fmt.Sprintf("subject %s\n%s", e.Raw.Subject, e.Raw.Data)
	}
	c.render(w, r, "deadletter", d)
}

// indent pretty-prints JSON, or returns it as it is.
func indent(b []byte) string {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}

type confirmData struct {
	Action string // replay | purge | cancel
	Path   string // where the confirmed form posts
	Back   string // the page that asked
	What   string // "3 dead letters"
	Fields map[string][]string
	Items  []string
}

// deadLettersAction replays or purges the selected dead letters: first a
// page that says how many and asks, then, with confirm=yes, the change.
func (c *Console) deadLettersAction(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if action != "replay" && action != "purge" {
		http.NotFound(w, r)
		return
	}
	var ids []uint64
	for _, s := range r.PostForm["id"] {
		seq, err := parseSeq(s)
		if err != nil {
			c.fail(w, r, http.StatusBadRequest, err)
			return
		}
		ids = append(ids, seq)
	}
	if len(ids) == 0 {
		redirect(w, r, Prefix+"dead-letters", "select the dead letters to "+action+" first")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		items := make([]string, len(ids))
		for i, id := range ids {
			items[i] = fmt.Sprint(id)
		}
		c.render(w, r, "confirm", confirmData{Action: action, Path: Prefix + "dead-letters/" + action, Back: Prefix + "dead-letters",
			What: plural.Count(len(ids), "dead letter"), Fields: map[string][]string{"id": r.PostForm["id"]}, Items: items})
		return
	}
	f := dlq.Filter{IDs: ids}
	var n int
	var err error
	if action == "replay" {
		n, err = c.dlq.Replay(r.Context(), f, nil)
	} else {
		n, err = c.dlq.Purge(r.Context(), f)
	}
	c.opts.Log.Info().Str("action", action).Int("entries", n).Msg("console: dead letters " + action + "ed")
	if err != nil {
		c.fail(w, r, http.StatusConflict, fmt.Errorf("%sed %s, then: %w", action, plural.Count(n, "dead letter"), err))
		return
	}
	done := "replayed"
	if action == "purge" {
		done = "purged"
	}
	redirect(w, r, Prefix+"dead-letters", fmt.Sprintf("%s %s", done, plural.Count(n, "dead letter")))
}

type scheduledData struct {
	Messages []pipeline.WaitingMessage
	To       []string
}

func (c *Console) scheduledPage(w http.ResponseWriter, r *http.Request) {
	msgs, err := c.waiting.List(r.Context(), r.URL.Query().Get("rule"), "")
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	d := scheduledData{Messages: msgs}
	for _, m := range msgs {
		var to []string
		for _, rc := range m.Job.Message.To {
			to = append(to, rc.String())
		}
		d.To = append(d.To, strings.Join(to, ", "))
	}
	c.render(w, r, "scheduled", d)
}

// scheduledCancel cancels one waiting message, named by rule and key,
// after a confirmation, as `bridge scheduled cancel` does.
func (c *Console) scheduledCancel(w http.ResponseWriter, r *http.Request) {
	rule, key := r.PostFormValue("rule"), r.PostFormValue("key")
	if rule == "" || key == "" {
		c.fail(w, r, http.StatusBadRequest, errors.New("name the message with rule and key"))
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		c.render(w, r, "confirm", confirmData{Action: "cancel", Path: Prefix + "scheduled/cancel", Back: Prefix + "scheduled", What: "1 waiting message",
			Fields: map[string][]string{"rule": {rule}, "key": {key}}, Items: []string{fmt.Sprintf("%s, key %q", rule, key)}})
		return
	}
	// What waits now is cancelled; what an event stored after this
	// schedules is not.
	last, err := c.waiting.LastEventSeq(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	cancelled, err := c.waiting.Cancel(r.Context(), rule, key, last+1)
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, err)
		return
	}
	c.opts.Log.Info().Str("rule", rule).Str("key", key).Bool("was_waiting", cancelled).Msg("console: waiting message cancelled")
	notice := fmt.Sprintf("cancelled the message of rule %s waiting under key %q", rule, key)
	if !cancelled {
		notice = fmt.Sprintf("no message of rule %s waits under key %q (if one fires now, it is dropped)", rule, key)
	}
	redirect(w, r, Prefix+"scheduled", notice)
}

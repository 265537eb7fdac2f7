package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/render"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// recentEvents is how many stored events the playground offers.
const recentEvents = 20

// playgroundForm is the event the playground renders, as its form holds it.
type playgroundForm struct {
	ID, Source, Subject, Type, Time string
	Headers                         string // "Name: value" lines
	Payload                         string // JSON
	Version                         string
}

type storedEvent struct {
	Seq     uint64
	Source  string
	Subject string
	ID      string
	At      time.Time
}

type playgroundData struct {
	Form      playgroundForm
	Sources   []string
	Versions  []string
	Recent    []storedEvent
	RecentErr string
	Ran       bool
	Output    string // exactly what `bridge render -explain` prints
	Failed    bool   // a rule failed for the event
	Error     string // the event could not be read
}

func (c *Console) playgroundData(ctx context.Context, f playgroundForm) playgroundData {
	if f.Version == "" {
		f.Version = c.opts.IntercomVersion
	}
	d := playgroundData{Form: f, Sources: c.opts.Sources, Versions: intercom.SupportedVersions()}
	var err error
	if d.Recent, err = c.recent(ctx); err != nil {
		d.RecentErr = err.Error()
	}
	return d
}

// playgroundPage shows the form, filled with a stored event when ?event
// names one.
func (c *Console) playgroundPage(w http.ResponseWriter, r *http.Request) {
	f := playgroundForm{ID: "playground-1", Payload: "{}"}
	if len(c.opts.Sources) > 0 {
		f.Source = c.opts.Sources[0]
	}
	if s := r.URL.Query().Get("event"); s != "" {
		seq, err := parseSeq(s)
		if err == nil {
			f, err = c.storedForm(r.Context(), seq)
		}
		if err != nil {
			c.fail(w, r, http.StatusNotFound, fmt.Errorf("stored event %s: %w", s, err))
			return
		}
	}
	c.render(w, r, "playground", c.playgroundData(r.Context(), f))
}

// playgroundRun renders the form's event with every rule; nothing is
// stored or sent.
func (c *Console) playgroundRun(w http.ResponseWriter, r *http.Request) {
	f := playgroundForm{ID: r.PostFormValue("id"), Source: r.PostFormValue("source"), Subject: r.PostFormValue("subject"),
		Type: r.PostFormValue("type"), Time: r.PostFormValue("time"), Headers: r.PostFormValue("headers"),
		Payload: r.PostFormValue("payload"), Version: r.PostFormValue("version")}
	d := c.playgroundData(r.Context(), f)
	d.Ran = true
	ev, err := c.formEvent(d.Form)
	if err == nil {
		var out bytes.Buffer
		d.Failed, err = render.Explain(&out, c.opts.Rules(), ev, d.Form.Version, nil)
		d.Output = out.String()
	}
	if err != nil {
		d.Error = err.Error()
	}
	c.render(w, r, "playground", d)
}

// formEvent reads the form as `bridge render` reads its flags.
func (c *Console) formEvent(f playgroundForm) (*rules.Event, error) {
	if err := intercom.ValidateVersion(f.Version); err != nil {
		return nil, err
	}
	if f.Source != "" && !slices.Contains(c.opts.Sources, f.Source) {
		return nil, fmt.Errorf("source %q is not one of the config's", f.Source)
	}
	data, err := rules.DecodeJSON([]byte(f.Payload))
	if err != nil {
		return nil, fmt.Errorf("payload: invalid JSON: %w", err)
	}
	at := time.Now().UTC()
	if f.Time != "" {
		if at, err = time.Parse(time.RFC3339, strings.TrimSpace(f.Time)); err != nil {
			return nil, fmt.Errorf("time: %q is not RFC 3339 (2026-03-14T10:00:00Z)", f.Time)
		}
	}
	headers := map[string]string{}
	for _, line := range strings.Split(f.Headers, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("headers: %q is not Name: value", strings.TrimSpace(line))
		}
		headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	ev := &rules.Event{ID: f.ID, Source: f.Source, Subject: strings.TrimSpace(f.Subject), Type: f.Type, Headers: headers, Data: data, Time: at}
	if err := c.opts.Prepare(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// recent lists the last stored events, newest first, read with an
// ordered consumer that leaves nothing behind.
func (c *Console) recent(ctx context.Context) ([]storedEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	name := c.opts.Topology.Events.Name
	s, err := c.opts.JS.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil, nil
	}
	start := max(st.FirstSeq, st.LastSeq-min(st.LastSeq, recentEvents-1))
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq: start, InactiveThreshold: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil, nil
	}
	batch, err := cons.Fetch(int(min(ci.NumPending, recentEvents)), jetstream.FetchMaxWait(time.Second))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	var out []storedEvent
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		e := storedEvent{Seq: meta.Sequence.Stream, Subject: msg.Subject(), At: meta.Timestamp}
		if env, err := c.opts.Decoder.Decode(msg.Subject(), msg.Headers(), msg.Data(), e.Seq, meta.Timestamp); err == nil {
			e.Source, e.ID, e.Subject = env.Source, env.ID, env.Subject
		}
		out = append(out, e)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	slices.Reverse(out)
	return out, nil
}

// storedForm fills the form with the stored event seq.
func (c *Console) storedForm(ctx context.Context, seq uint64) (playgroundForm, error) {
	name := c.opts.Topology.Events.Name
	s, err := c.opts.JS.Stream(ctx, name)
	if err != nil {
		return playgroundForm{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return playgroundForm{}, err
	}
	env, err := c.opts.Decoder.Decode(m.Subject, m.Header, m.Data, seq, m.Time)
	if err != nil {
		return playgroundForm{}, err
	}
	var payload bytes.Buffer
	if json.Indent(&payload, env.Data, "", "  ") != nil {
		payload.Reset()
		payload.Write(env.Data)
	}
	names := make([]string, 0, len(env.Headers))
	for k := range env.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	var headers strings.Builder
	for _, k := range names {
		fmt.Fprintf(&headers, "%s: %s\n", k, env.Headers[k])
	}
	return playgroundForm{ID: env.ID, Source: env.Source, Subject: env.Subject, Type: env.Type,
		Time: env.Time.UTC().Format(time.RFC3339Nano), Headers: headers.String(), Payload: payload.String()}, nil
}

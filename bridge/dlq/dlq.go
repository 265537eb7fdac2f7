// Package dlq reads, replays and purges the dead-letter stream: what
// `bridge dlq` works on, beside a running bridge or on its stopped store.
//
// It owns the reading side of dead letters; the pipeline writes them
// (pipeline.DeadLetter is the format). It imports broker (the topology)
// and pipeline (the format, and jobs to replay), never the service.
package dlq

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
)

// ReasonUnreadable marks a dead-letter stream message that is not a
// DeadLetter (written by something else, or damaged). It is listed so it
// can be inspected and purged; it cannot be replayed.
const ReasonUnreadable = "unreadable"

// ErrNotFound is returned for a dead letter that does not exist (any more).
var ErrNotFound = errors.New("no such dead letter")

// DLQ reads, replays and purges the dead-letter stream: what `bridge dlq`
// works on. It reads with GetMsg and ephemeral ordered consumers only, so
// it leaves nothing behind on the server and works beside a running bridge.
type DLQ struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	names   broker.Topology
	decoder *event.Decoder
}

// Open returns the dead-letter stream of a bridge with topology t,
// creating it (or updating it to t.DLQ) when needed. dec reads the stored
// events that dead letters too large to hold them point to.
func Open(ctx context.Context, js jetstream.JetStream, t broker.Topology, dec *event.Decoder) (*DLQ, error) {
	sc := t.DLQ
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.CreateOrUpdateStream(cctx, sc)
	if err != nil {
		return nil, fmt.Errorf("stream %s (subjects %v): JetStream refused the configuration: %w", sc.Name, sc.Subjects, err)
	}
	return &DLQ{js: js, stream: s, names: t, decoder: dec}, nil
}

// Entry is one dead letter and its sequence in the stream, which is its ID
// on the command line.
type Entry struct {
	Seq uint64 `json:"id"`
	pipeline.DeadLetter
}

// Filter selects dead letters; the zero Filter selects all of them. The
// conditions combine with AND.
type Filter struct {
	Rule   string        // the rule's exact name
	Reason string        // one of the Reason constants
	Since  time.Duration // only entries dead-lettered within this long before now; 0: any age
	IDs    []uint64      // only these entries; each must exist
}

// IsZero reports whether f selects every dead letter.
func (f Filter) IsZero() bool {
	return f.Rule == "" && f.Reason == "" && f.Since <= 0 && len(f.IDs) == 0
}

// match applies the conditions that the server cannot.
func (f Filter) match(e *Entry, cutoff time.Time) bool {
	if f.Rule != "" && e.Rule != f.Rule {
		return false
	}
	if f.Reason != "" && e.Reason != f.Reason {
		return false
	}
	if f.Since > 0 && e.At.Before(cutoff) {
		return false
	}
	return true
}

// sinceSlack widens the server-side start time of a listing by -since:
// the filter itself is on DeadLetter.At (the bridge's clock), the start
// time on the time the server stored the entry (the server's clock).
const sinceSlack = time.Hour

// List returns the dead letters f selects, oldest first.
func (q *DLQ) List(ctx context.Context, f Filter) ([]Entry, error) {
	cutoff := time.Now().Add(-f.Since)
	if len(f.IDs) > 0 {
		return q.listIDs(ctx, f, cutoff)
	}
	info, err := q.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
	}
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cc := jetstream.OrderedConsumerConfig{InactiveThreshold: time.Minute}
	if f.Rule != "" {
		cc.FilterSubjects = []string{q.names.DLQSubjectFor(f.Rule)}
	}
	if f.Since > 0 {
		start := cutoff.Add(-sinceSlack)
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := q.stream.OrderedConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
	}
	defer it.Stop()
	ci := cons.CachedInfo()
	if ci == nil || ci.NumPending == 0 {
		return nil, nil
	}
	var out []Entry
	for {
		nctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			// Entries counted when the consumer was made may have been
			// deleted since (a concurrent replay or purge): ask again.
			ci, err := cons.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
			}
			if ci.NumPending == 0 {
				return out, nil
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
		}
		e := decodeEntry(meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data(), meta.Timestamp)
		if f.match(&e, cutoff) {
			out = append(out, e)
		}
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}

func (q *DLQ) listIDs(ctx context.Context, f Filter, cutoff time.Time) ([]Entry, error) {
	ids := slices.Clone(f.IDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]Entry, 0, len(ids))
	for _, seq := range ids {
		e, err := q.Get(ctx, seq)
		if err != nil {
			return nil, err
		}
		if f.match(e, cutoff) {
			out = append(out, *e)
		}
	}
	return out, nil
}

// Get returns the dead letter with stream sequence seq; the error wraps
// ErrNotFound when there is none.
func (q *DLQ) Get(ctx context.Context, seq uint64) (*Entry, error) {
	if seq == 0 {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	m, err := q.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	e := decodeEntry(m.Sequence, m.Subject, m.Header, m.Data, m.Time)
	return &e, nil
}

// decodeEntry reads a message of the dead-letter stream. One that is not a
// DeadLetter is still returned, as ReasonUnreadable with its bytes in Raw,
// so that it can be seen and purged.
func decodeEntry(seq uint64, subject string, h nats.Header, data []byte, stored time.Time) Entry {
	e := Entry{Seq: seq}
	if err := json.Unmarshal(data, &e.DeadLetter); err != nil || e.Reason == "" {
		msg := "not a dead letter"
		if err != nil {
			msg += ": " + err.Error()
		}
		e.DeadLetter = pipeline.DeadLetter{Reason: ReasonUnreadable, Error: msg, Raw: &pipeline.RawEvent{Subject: subject, Header: h, Data: data}}
	}
	if e.At.IsZero() {
		e.At = stored.UTC()
	}
	return e
}

// Summary counts the dead letters of one (rule, reason).
type Summary struct {
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
	Count  int       `json:"count"`
	Oldest time.Time `json:"oldest"` // the At of the oldest entry
	Newest time.Time `json:"newest"`
}

// Summarize groups entries by rule and reason, sorted by rule then reason.
func Summarize(entries []Entry) []Summary {
	type key struct{ rule, reason string }
	idx := map[key]int{}
	var out []Summary
	for _, e := range entries {
		k := key{e.Rule, e.Reason}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Summary{Rule: e.Rule, Reason: e.Reason, Oldest: e.At, Newest: e.At})
		}
		s := &out[i]
		s.Count++
		if e.At.Before(s.Oldest) {
			s.Oldest = e.At
		}
		if e.At.After(s.Newest) {
			s.Newest = e.At
		}
	}
	slices.SortFunc(out, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Reason, b.Reason))
	})
	return out
}

// NotReplayableError reports entries that hold neither a job nor an event
// (a stored event that could not be read), and entries whose event was
// left out and is no longer in the events stream: there is nothing to
// replay.
type NotReplayableError struct {
	Seqs []uint64 // no job or event
	Gone []uint64 // the event left out is gone from the events stream
}

func (e *NotReplayableError) Error() string {
	var parts []string
	if len(e.Seqs) > 0 {
		parts = append(parts, fmt.Sprintf("%s no job or event and cannot be replayed (%s)", entriesHave(len(e.Seqs)), seqList(e.Seqs)))
	}
	if len(e.Gone) > 0 {
		parts = append(parts, fmt.Sprintf("%s an event that was too large to keep in the dead letter and is no longer in the events stream (nats.events.max_age): they cannot be replayed (%s)",
			entriesHave(len(e.Gone)), seqList(e.Gone)))
	}
	return strings.Join(parts, "; ") + "; inspect with dlq show and purge them"
}

func entriesHave(n int) string {
	if n == 1 {
		return "1 entry has"
	}
	return fmt.Sprintf("%d entries have", n)
}

// seqList is up to 10 sequences, for an error.
func seqList(seqs []uint64) string {
	ids := make([]string, 0, len(seqs))
	for i, s := range seqs {
		if i == 10 {
			ids = append(ids, "...")
			break
		}
		ids = append(ids, strconv.FormatUint(s, 10))
	}
	return strings.Join(ids, " ")
}

// Replay puts the entries f selects back into the pipeline, oldest first,
// and deletes each from the dead-letter stream once JetStream has stored
// it again:
//
//   - an entry with a job goes back to the outbox, marked Replay, to be sent
//     again without being rendered again;
//   - an entry with only an event (a render error) goes back to the events
//     stream, to be matched and rendered with the current rules;
//   - an entry whose event was too large to keep in it goes back to the
//     events stream from where the event is stored, while that stream
//     keeps it;
//   - an entry with neither is skipped and reported in a
//     *NotReplayableError at the end.
//
// Each republished message has Nats-Msg-Id "replay:<seq>": replaying an
// entry twice within the duplicate window (two operators, or a replay that
// stopped between the publish and the delete) stores it once, and the
// sent ledger stops a second send after that.
//
// progress, when not nil, is called after each entry with the number done
// (replayed or skipped) and the total. Replay stops at the first entry it
// cannot republish or delete, and returns how many were replayed.
func (q *DLQ) Replay(ctx context.Context, f Filter, progress func(done, total int)) (int, error) {
	entries, err := q.List(ctx, f)
	if err != nil {
		return 0, err
	}
	replayed := 0
	var skipped, gone []uint64
	for i := range entries {
		e := &entries[i]
		ok, err := q.republish(ctx, e)
		switch {
		case errors.Is(err, errEventGone):
			gone = append(gone, e.Seq)
		case err != nil:
			return replayed, err
		case !ok:
			skipped = append(skipped, e.Seq)
		default:
			if err := q.delete(ctx, e.Seq); err != nil {
				return replayed, fmt.Errorf("dead letter %d was replayed but not deleted: %w", e.Seq, err)
			}
			replayed++
		}
		if progress != nil {
			progress(i+1, len(entries))
		}
	}
	if len(skipped) > 0 || len(gone) > 0 {
		return replayed, &NotReplayableError{Seqs: skipped, Gone: gone}
	}
	return replayed, nil
}

// republish stores e's job in the outbox or its event in the events
// stream; false when it has neither.
func (q *DLQ) republish(ctx context.Context, e *Entry) (bool, error) {
	var (
		m      *nats.Msg
		stream string
	)
	switch {
	case e.Job != nil:
		job := *e.Job
		job.Replay = true
		var err error
		if m, err = pipeline.JobMsg(q.names, &job); err != nil {
			return false, fmt.Errorf("dead letter %d: %w", e.Seq, err)
		}
		stream = q.names.Outbox.Name
	case e.Event != nil && e.Event.Source != "":
		var err error
		if m, err = e.Event.Msg(q.names.SourceSubject(e.Event.Source)); err != nil {
			return false, fmt.Errorf("dead letter %d: %w", e.Seq, err)
		}
		stream = q.names.Events.Name
	case e.Omitted != nil && e.Omitted.What == "event" && e.Omitted.Stream == q.names.Events.Name:
		env, err := q.storedEvent(ctx, e.Omitted.Seq)
		if err != nil {
			return false, fmt.Errorf("dead letter %d: %w", e.Seq, err)
		}
		if m, err = env.Msg(q.names.SourceSubject(env.Source)); err != nil {
			return false, fmt.Errorf("dead letter %d: %w", e.Seq, err)
		}
		stream = q.names.Events.Name
	default:
		return false, nil
	}
	m.Header.Set(nats.MsgIdHdr, "replay:"+strconv.FormatUint(e.Seq, 10))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := q.js.PublishMsg(pctx, m, jetstream.WithExpectStream(stream))
	if errors.Is(err, nats.ErrMaxPayload) {
		// An event as large as the server takes has no room for the
		// expectation's header; the subject is the bridge's own.
		m.Header.Del(jetstream.ExpectedStreamHeader)
		_, err = q.js.PublishMsg(pctx, m)
	}
	if err != nil {
		return false, fmt.Errorf("dead letter %d: replay to %s: %w", e.Seq, stream, err)
	}
	return true, nil
}

// errEventGone is a left-out event that the events stream no longer has.
var errEventGone = errors.New("its event is no longer in the events stream")

// storedEvent reads the event stored in the events stream at seq.
func (q *DLQ) storedEvent(ctx context.Context, seq uint64) (*event.Envelope, error) {
	if q.decoder == nil {
		return nil, fmt.Errorf("%s %d: no decoder for stored events", q.names.Events.Name, seq)
	}
	events, err := q.js.Stream(ctx, q.names.Events.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", q.names.Events.Name, err)
	}
	m, err := events.GetMsg(ctx, seq)
	if err != nil && isMsgGone(err) {
		return nil, fmt.Errorf("%s %d: %w", q.names.Events.Name, seq, errEventGone)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %d: %w", q.names.Events.Name, seq, err)
	}
	return q.decoder.Decode(m.Subject, m.Header, m.Data, m.Sequence, m.Time)
}

// delete removes the entry seq; one already gone (a concurrent replay or
// purge) is not an error.
func (q *DLQ) delete(ctx context.Context, seq uint64) error {
	err := q.stream.DeleteMsg(ctx, seq)
	if err != nil && isMsgGone(err) {
		return nil
	}
	return err
}

func isMsgGone(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound {
		return true
	}
	return errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "not found")
}

// Purge deletes the entries f selects, every entry when f is zero, and
// returns how many it deleted.
func (q *DLQ) Purge(ctx context.Context, f Filter) (int, error) {
	if f.IsZero() {
		info, err := q.stream.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("stream %s: %w", q.names.DLQ.Name, err)
		}
		if info.State.Msgs == 0 {
			return 0, nil
		}
		// Up to the last entry seen: one written meanwhile is kept.
		if err := q.stream.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq+1)); err != nil {
			return 0, fmt.Errorf("stream %s: purge: %w", q.names.DLQ.Name, err)
		}
		return int(info.State.Msgs), nil
	}
	entries, err := q.List(ctx, f)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		err := q.stream.DeleteMsg(ctx, e.Seq)
		switch {
		case err == nil:
			n++
		case isMsgGone(err):
		default:
			return n, fmt.Errorf("dead letter %d: delete: %w", e.Seq, err)
		}
	}
	return n, nil
}

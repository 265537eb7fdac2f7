package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// Ledger states.
const (
	statePending = "pending" // a request is, or was, on its way to Intercom
	stateSent    = "sent"    // Intercom accepted it
	stateFailed  = "failed"  // attempts failed, each certainly before Intercom acted on it
)

// ledgerEntry is the value of a delivery key in the sent ledger.
//
// A pending entry names its owner (the replica and the job's delivery
// attempt) and holds a lease: while the lease runs, the owner's request is
// on its way and nobody else may send the key. The owner renews it for as
// long as its request lasts; a lease that ran out means the owner stopped
// (a kill, a crash, a lost connection), and only then, or when Error
// records an ambiguous answer, is the key uncertain.
type ledgerEntry struct {
	State     string `json:"state"`
	Key       string `json:"key"`
	MessageID string `json:"message_id,omitempty"`
	// ConversationID is the conversation the message opened, when Intercom
	// says (create_conversation_without_contact_reply).
	ConversationID string        `json:"conversation_id,omitempty"`
	Error          string        `json:"error,omitempty"`    // why a pending key is uncertain, when known
	Attempts       int           `json:"attempts,omitempty"` // attempts made so far, the pending one included
	Owner          string        `json:"owner,omitempty"`    // "<replica>#<attempt>" of a pending key
	Lease          time.Duration `json:"lease,omitempty"`    // from At; 0: none
	At             time.Time     `json:"at"`                 // as read back: when the server stored the entry
}

// leaseUntil is when a pending entry's lease runs out. It is reckoned from
// the server's clock (the time the entry was stored), so the owner's and
// the reader's clocks need not agree with each other, only each with the
// server's, within a fraction of the lease.
func (e *ledgerEntry) leaseUntil() time.Time { return e.At.Add(e.Lease) }

// KV is the part of a JetStream key-value bucket the ledger and the
// throttles use; jetstream.KeyValue is one.
type KV interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error)
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
}

// Ledger records which delivery keys are pending or sent, in a KV bucket
// whose TTL is the dedupe window. It is shared by all replicas.
type Ledger struct {
	kv KV
	// legacyUntil: until then a key missing under ledgerKey is looked up
	// under legacyLedgerKey too (see keys.go).
	legacyUntil time.Time
}

// get returns the key's entry and revision, or nil when it has none.
func (l *Ledger) get(ctx context.Context, key string) (*ledgerEntry, uint64, error) {
	e, err := l.kv.Get(ctx, ledgerKey(key))
	legacy := false
	if errors.Is(err, jetstream.ErrKeyNotFound) && time.Now().Before(l.legacyUntil) {
		e, err = l.kv.Get(ctx, legacyLedgerKey(key))
		legacy = true
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var v ledgerEntry
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return nil, 0, fmt.Errorf("ledger entry of %s: %w", key, err)
	}
	v.At = e.Created()
	if legacy {
		// An old entry is only read: what this attempt writes goes under
		// the new key, which has none yet.
		return &v, 0, nil
	}
	return &v, e.Revision(), nil
}

// errBusy means another worker changed the key first.
var errBusy = errors.New("delivery key taken by another worker")

// markPending records that owner's request, the job's attempt-th, is about
// to be sent, under a lease. rev is the revision get returned (0: none), or
// that of the owner's own last write (a renewal), so that two workers
// holding the same key cannot both go ahead.
func (l *Ledger) markPending(ctx context.Context, key, owner string, attempt int, lease time.Duration, rev uint64) (uint64, error) {
	return l.write(ctx, ledgerEntry{State: statePending, Key: key, Attempts: attempt, Owner: owner, Lease: lease}, rev)
}

// markSent records that Intercom accepted the message. It writes whatever
// the entry holds: the message was sent.
func (l *Ledger) markSent(ctx context.Context, key, messageID, conversationID string) error {
	_, err := l.write(ctx, ledgerEntry{State: stateSent, Key: key, MessageID: messageID, ConversationID: conversationID}, anyRevision)
	return err
}

// markUncertain keeps the key pending, without a lease, with the error of
// an attempt whose request may have reached Intercom (a timeout, a dropped
// connection).
func (l *Ledger) markUncertain(ctx context.Context, key string, attempts int, cause string, rev uint64) error {
	return l.settle(ctx, ledgerEntry{State: statePending, Key: key, Attempts: attempts, Error: cause}, rev)
}

// markFailed records attempts that certainly did not reach Intercom, so
// that the next one is counted after them and is not a possible duplicate.
func (l *Ledger) markFailed(ctx context.Context, key string, attempts int, cause string, rev uint64) error {
	return l.settle(ctx, ledgerEntry{State: stateFailed, Key: key, Attempts: attempts, Error: cause}, rev)
}

// forget removes the key's entry at rev (a job that was certainly not sent
// has been dead-lettered; a replay starts afresh). rev 0 means this worker
// neither wrote an entry nor read one: there is none of its own to forget,
// and a delete without a revision would remove whatever another worker
// wrote meanwhile.
func (l *Ledger) forget(ctx context.Context, key string, rev uint64) error {
	if rev == 0 {
		return nil
	}
	err := l.kv.Delete(ctx, ledgerKey(key), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyNotFound) || isRevisionConflict(err) {
		return nil
	}
	return err
}

// anyRevision makes write overwrite whatever the key holds.
const anyRevision = ^uint64(0)

// write stores e at the key if it is still at rev (0: absent), or in any
// case for anyRevision, and returns the new revision; errBusy when the key
// changed.
func (l *Ledger) write(ctx context.Context, e ledgerEntry, rev uint64) (uint64, error) {
	e.At = time.Now().UTC()
	v := e.appendJSON(make([]byte, 0, 160))
	var err error
	switch rev {
	case anyRevision:
		rev, err = l.kv.Put(ctx, ledgerKey(e.Key), v)
	case 0:
		rev, err = l.kv.Create(ctx, ledgerKey(e.Key), v)
	default:
		rev, err = l.kv.Update(ctx, ledgerKey(e.Key), v, rev)
	}
	if isRevisionConflict(err) {
		return 0, errBusy
	}
	return rev, err
}

// appendJSON appends the entry's JSON: what json.Marshal writes for it,
// field for field, without its reflection. Every send writes two entries.
// At is the writer's clock, in UTC, so always within the years JSON
// times allow.
func (e *ledgerEntry) appendJSON(b []byte) []byte {
	// The fields tagged omitempty: left out when zero.
	str := func(b []byte, field, v string) []byte {
		if v == "" {
			return b
		}
		return jsonout.AppendString(append(b, field...), v)
	}
	num := func(b []byte, field string, v int64) []byte {
		if v == 0 {
			return b
		}
		return strconv.AppendInt(append(b, field...), v, 10)
	}
	b = append(b, `{"state":`...)
	b = jsonout.AppendString(b, e.State)
	b = append(b, `,"key":`...)
	b = jsonout.AppendString(b, e.Key)
	b = str(b, `,"message_id":`, e.MessageID)
	b = str(b, `,"conversation_id":`, e.ConversationID)
	b = str(b, `,"error":`, e.Error)
	b = num(b, `,"attempts":`, int64(e.Attempts))
	b = str(b, `,"owner":`, e.Owner)
	b = num(b, `,"lease":`, int64(e.Lease))
	b = append(b, `,"at":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// settle writes the outcome of an attempt over the owner's pending entry
// at rev. If the key changed meanwhile, someone took it over after the
// owner's lease ran out: their entry is newer and stays.
func (l *Ledger) settle(ctx context.Context, e ledgerEntry, rev uint64) error {
	if _, err := l.write(ctx, e, rev); err != nil && !errors.Is(err, errBusy) {
		return err
	}
	return nil
}

// isRevisionConflict reports JetStream refusing a write because the key is
// not at the expected revision (or exists, for a create).
func isRevisionConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Throttles holds one key per (rule, throttle key) for the rule's window,
// in a KV bucket with a TTL per key.
type Throttles struct{ kv KV }

// acquire takes the window for the job, or reports that another job holds
// it. The job's own earlier attempt holds it too: a retry goes ahead.
func (t *Throttles) acquire(ctx context.Context, rule string, th *Throttle, jobKey string) (bool, error) {
	k := kvKey(rule + "\x00" + th.Key)
	_, err := createWithTTL(ctx, t.kv, k, []byte(jobKey), th.Per)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return false, err
	}
	e, err := t.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) { // expired in between
		return t.acquire(ctx, rule, th, jobKey)
	}
	if err != nil {
		return false, err
	}
	return string(e.Value()) == jobKey, nil
}

// release gives the window back when the job that took it was not sent.
func (t *Throttles) release(ctx context.Context, rule string, th *Throttle, jobKey string) error {
	k := kvKey(rule + "\x00" + th.Key)
	e, err := t.kv.Get(ctx, k)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil || string(e.Value()) != jobKey {
		return err
	}
	return t.kv.Delete(ctx, k, jetstream.LastRevision(e.Revision()))
}

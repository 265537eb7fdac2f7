package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ledger states.
const (
	statePending = "pending" // a request is, or was, on its way to Intercom
	stateSent    = "sent"    // Intercom accepted it
)

// ledgerEntry is the value of a delivery key in the sent ledger.
type ledgerEntry struct {
	State     string    `json:"state"`
	Key       string    `json:"key"`
	MessageID string    `json:"message_id,omitempty"`
	Error     string    `json:"error,omitempty"` // why a pending key is uncertain, when known
	At        time.Time `json:"at"`
}

// Ledger records which delivery keys are pending or sent, in a KV bucket
// whose TTL is the dedupe window. It is shared by all replicas.
type Ledger struct{ kv jetstream.KeyValue }

// get returns the key's entry and revision, or nil when it has none.
func (l *Ledger) get(ctx context.Context, key string) (*ledgerEntry, uint64, error) {
	e, err := l.kv.Get(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var v ledgerEntry
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return nil, 0, err
	}
	return &v, e.Revision(), nil
}

// errBusy means another worker changed the key first.
var errBusy = errors.New("delivery key changed by another worker")

// markPending records that a request is about to be sent. rev is the
// revision get returned (0: none), so that two workers holding the same
// key cannot both go ahead.
func (l *Ledger) markPending(ctx context.Context, key string, rev uint64) (uint64, error) {
	v, _ := json.Marshal(ledgerEntry{State: statePending, Key: key, At: time.Now().UTC()})
	var err error
	if rev == 0 {
		rev, err = l.kv.Create(ctx, kvKey(key), v)
	} else {
		rev, err = l.kv.Update(ctx, kvKey(key), v, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, errBusy
	}
	return rev, err
}

// markSent records that Intercom accepted the message.
func (l *Ledger) markSent(ctx context.Context, key, messageID string) error {
	v, _ := json.Marshal(ledgerEntry{State: stateSent, Key: key, MessageID: messageID, At: time.Now().UTC()})
	_, err := l.kv.Put(ctx, kvKey(key), v)
	return err
}

// markUncertain keeps the key pending with the error of an attempt whose
// request may have reached Intercom (a timeout, a dropped connection).
func (l *Ledger) markUncertain(ctx context.Context, key string, cause error) error {
	v, _ := json.Marshal(ledgerEntry{State: statePending, Key: key, Error: cause.Error(), At: time.Now().UTC()})
	_, err := l.kv.Put(ctx, kvKey(key), v)
	return err
}

// forget removes a pending key whose request certainly did not reach
// Intercom, so that the next attempt starts clean.
func (l *Ledger) forget(ctx context.Context, key string) error {
	err := l.kv.Delete(ctx, kvKey(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	return err
}

// Throttles holds one key per (rule, throttle key) for the rule's window,
// in a KV bucket with a TTL per key.
type Throttles struct{ kv jetstream.KeyValue }

// acquire takes the window for the job, or reports that another job holds
// it. The job's own earlier attempt holds it too: a retry goes ahead.
func (t *Throttles) acquire(ctx context.Context, rule string, th *Throttle, jobKey string) (bool, error) {
	k := kvKey(rule + "\x00" + th.Key)
	_, err := t.kv.Create(ctx, k, []byte(jobKey), jetstream.KeyTTL(th.Per))
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

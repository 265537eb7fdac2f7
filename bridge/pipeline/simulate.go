package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/rules"
)

// Simulator decides what would become of deliveries replayed from stored
// events: sent, dropped as a duplicate, throttled, or left waiting. It runs
// the sent ledger, decide and the throttles, the code stage 2 runs, on an
// in-memory bucket whose clock is the events' own time, so that a week of
// events is simulated in seconds and windows open and close as they did.
// It is not safe for concurrent use.
type Simulator struct {
	clock     *simClock
	ledger    *Ledger
	throttles *Throttles
	policy    Policy
}

// Simulated outcomes beside OutcomeSent, OutcomeDuplicate and
// OutcomeThrottled.
const OutcomeWaiting = "waiting" // the rule's schedule holds it until later

// NewSimulator returns a simulator whose ledger remembers a delivery key
// for dedupeWindow, as the bucket <prefix>_sent does.
func NewSimulator(dedupeWindow time.Duration, p Policy) *Simulator {
	c := &simClock{}
	return &Simulator{clock: c, policy: p,
		ledger:    &Ledger{kv: newSimKV(c, dedupeWindow)},
		throttles: &Throttles{kv: newSimKV(c, 0)}}
}

// Offer is the outcome of one delivery of an event at time at, in the
// order stage 2 takes its steps: a schedule that lies ahead waits; a key
// the ledger has as sent is a duplicate; a throttle window already taken
// drops it; anything else is sent, and its key recorded as sent.
func (s *Simulator) Offer(d *rules.Delivery, at time.Time) (string, error) {
	if d.Schedule != nil && d.Schedule.At.After(at) {
		return OutcomeWaiting, nil
	}
	s.clock.now = at
	ctx := context.Background()
	job := &Job{Key: DeliveryKey(d.Rule, d.DedupeKey), Rule: d.Rule, DedupeKey: d.DedupeKey}
	entry, _, err := s.ledger.get(ctx, job.Key)
	if err != nil {
		return "", err
	}
	switch dec := decide(entry, false, job, s.policy, at); dec.step {
	case stepSend:
	case stepDrop:
		return dec.outcome, nil
	default: // nothing in the simulated ledger is pending
		return "", fmt.Errorf("simulator: delivery key %s: unexpected decision %v", job.Key, dec.step)
	}
	if d.Throttle != nil {
		ok, err := s.throttles.acquire(ctx, d.Rule, &Throttle{Key: d.Throttle.Key, Per: d.Throttle.Per}, job.Key)
		if err != nil {
			return "", err
		}
		if !ok {
			return OutcomeThrottled, nil
		}
	}
	if err := s.ledger.markSent(ctx, job.Key, "", ""); err != nil {
		return "", err
	}
	return OutcomeSent, nil
}

// simClock is the simulated time: that of the event being offered.
type simClock struct{ now time.Time }

// simKV is a KV bucket in memory whose keys expire by the simulated clock:
// after the bucket's TTL, or a key's own (see createWithTTL).
type simKV struct {
	clock *simClock
	ttl   time.Duration // the bucket's; 0: none
	rev   uint64
	keys  map[string]simEntry
}

type simEntry struct {
	value   []byte
	rev     uint64
	created time.Time
	expires time.Time // zero: never
}

func newSimKV(c *simClock, ttl time.Duration) *simKV {
	return &simKV{clock: c, ttl: ttl, keys: map[string]simEntry{}}
}

// live returns the key's entry unless it has expired, which it forgets.
func (kv *simKV) live(key string) (simEntry, bool) {
	e, ok := kv.keys[key]
	if ok && !e.expires.IsZero() && !kv.clock.now.Before(e.expires) {
		delete(kv.keys, key)
		return e, false
	}
	return e, ok
}

func (kv *simKV) store(key string, value []byte, ttl time.Duration) uint64 {
	kv.rev++
	e := simEntry{value: value, rev: kv.rev, created: kv.clock.now}
	if ttl = max(ttl, kv.ttl); ttl > 0 {
		e.expires = kv.clock.now.Add(ttl)
	}
	kv.keys[key] = e
	return kv.rev
}

func (kv *simKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, ok := kv.live(key)
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return simKVEntry{key: key, e: e}, nil
}

// Create without a TTL; the throttles give theirs through createTTL.
func (kv *simKV) Create(ctx context.Context, key string, value []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	return kv.createTTL(ctx, key, value, 0)
}

func (kv *simKV) createTTL(_ context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if _, ok := kv.live(key); ok {
		return 0, jetstream.ErrKeyExists
	}
	return kv.store(key, value, ttl), nil
}

func (kv *simKV) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if e, ok := kv.live(key); !ok || e.rev != rev {
		return 0, jetstream.ErrKeyRevisionMismatch
	}
	return kv.store(key, value, 0), nil
}

func (kv *simKV) Put(_ context.Context, key string, value []byte) (uint64, error) {
	return kv.store(key, value, 0), nil
}

func (kv *simKV) Delete(_ context.Context, key string, _ ...jetstream.KVDeleteOpt) error {
	delete(kv.keys, key)
	return nil
}

// simKVEntry is a simKV entry as jetstream.KeyValueEntry.
type simKVEntry struct {
	key string
	e   simEntry
}

func (s simKVEntry) Bucket() string                  { return "simulated" }
func (s simKVEntry) Key() string                     { return s.key }
func (s simKVEntry) Value() []byte                   { return s.e.value }
func (s simKVEntry) Revision() uint64                { return s.e.rev }
func (s simKVEntry) Created() time.Time              { return s.e.created }
func (s simKVEntry) Delta() uint64                   { return 0 }
func (s simKVEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

// ttlCreator is a KV that takes a key's TTL as a duration: jetstream.KeyTTL
// can only be read by jetstream's own bucket, and the simulator's must
// know when a throttle window ends.
type ttlCreator interface {
	createTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error)
}

// createWithTTL creates key with its own TTL on kv.
func createWithTTL(ctx context.Context, kv KV, key string, value []byte, ttl time.Duration) (uint64, error) {
	if c, ok := kv.(ttlCreator); ok {
		return c.createTTL(ctx, key, value, ttl)
	}
	return kv.Create(ctx, key, value, jetstream.KeyTTL(ttl))
}

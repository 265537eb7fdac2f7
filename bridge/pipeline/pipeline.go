// Package pipeline moves events to Intercom in two durable stages on
// JetStream.
//
// Stage 1 (Matcher) reads the events stream, evaluates the rules, and stores
// one Job per (event, rule) in the outbox stream, with Nats-Msg-Id set to
// the job's delivery key; only then is the event acked. Stage 2 (Sender)
// reads the outbox, skips keys the ledger has as sent, applies throttles,
// sends at the pace Intercom allows, records the key as sent and acks.
// Whatever cannot be delivered goes to the dead-letter stream with the
// reason.
//
// It owns the two stages, the sent ledger, the throttles, the contact
// look-ups and the dead-letter stream; it must not import ingest or the
// service package.
package pipeline

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/rules"
)

// Job is one message to send: what stage 1 rendered for one (event, rule).
type Job struct {
	Key       string    `json:"key"` // the delivery key: rule + "/" + dedupe key
	Rule      string    `json:"rule"`
	EventID   string    `json:"event_id"`
	Source    string    `json:"source"`
	DedupeKey string    `json:"dedupe_key"`
	Throttle  *Throttle `json:"throttle,omitempty"`
	// Message is what the rule rendered, its recipients as the rule names
	// them; stage 2 looks them up just before sending, so a replay, or a
	// job that waited, uses what Intercom knows then.
	Message  rules.Message `json:"message"`
	Received time.Time     `json:"received"` // when the event arrived, for end-to-end latency
	Replay   bool          `json:"replay,omitempty"`
}

// Throttle allows one message per Key per Per.
type Throttle struct {
	Key string        `json:"key"`
	Per time.Duration `json:"per"`
}

// DeliveryKey is the key of a rule's message for a dedupe key: each is sent
// at most once within the dedupe window.
func DeliveryKey(rule, dedupeKey string) string { return rule + "/" + dedupeKey }

// Names of the streams, buckets and consumers for a prefix.
type Names struct {
	Events, Outbox, DLQ         string // streams
	OutboxSubject, DLQSubject   string // subject prefixes: <prefix>.outbox, <prefix>.dlq
	Sent, Throttle, Contacts    string // KV buckets
	MatchConsumer, SendConsumer string
}

// NamesFor returns the names for cfg's prefix.
func NamesFor(cfg *config.Config) Names {
	p := cfg.NATS.Prefix
	up := strings.ToUpper(p)
	return Names{
		Events: up + "_EVENTS", Outbox: up + "_OUTBOX", DLQ: up + "_DLQ",
		OutboxSubject: p + ".outbox", DLQSubject: p + ".dlq",
		Sent: p + "_sent", Throttle: p + "_throttle", Contacts: p + "_contacts",
		MatchConsumer: p + "_match", SendConsumer: p + "_send",
	}
}

// subjectToken makes a rule name safe as one subject token.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(s)
}

// OutboxStreamConfig is the outbox: a work queue of jobs. Its duplicate
// window stops a job rendered twice (an event redelivered to stage 1) from
// being queued twice; the sent ledger covers the longer dedupe window.
func OutboxStreamConfig(cfg *config.Config) jetstream.StreamConfig {
	n := NamesFor(cfg)
	return jetstream.StreamConfig{
		Name:        n.Outbox,
		Description: "intercom-bridge: messages waiting to be sent",
		Subjects:    []string{n.OutboxSubject + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  cfg.NATS.Events.Duplicates.D(),
		Replicas:    cfg.NATS.Events.Replicas,
	}
}

// DLQStreamConfig is the dead-letter stream: kept until replayed or purged.
func DLQStreamConfig(cfg *config.Config) jetstream.StreamConfig {
	n := NamesFor(cfg)
	return jetstream.StreamConfig{
		Name:        n.DLQ,
		Description: "intercom-bridge: events and messages that could not be delivered",
		Subjects:    []string{n.DLQSubject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  dlqDuplicates,
		Replicas:    cfg.NATS.Events.Replicas,
	}
}

// SentBucketConfig is the ledger of delivery keys: pending before a send,
// sent after, kept for the dedupe window.
func SentBucketConfig(cfg *config.Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      NamesFor(cfg).Sent,
		Description: "intercom-bridge: delivery keys pending or sent",
		TTL:         cfg.Delivery.DedupeWindow.D(),
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.NATS.Events.Replicas,
		History:     1,
	}
}

// ThrottleBucketConfig holds one key per throttled (rule, key), each with
// the rule's window as its own TTL.
func ThrottleBucketConfig(cfg *config.Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         NamesFor(cfg).Throttle,
		Description:    "intercom-bridge: throttle windows",
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.NATS.Events.Replicas,
		History:        1,
		LimitMarkerTTL: time.Minute,
	}
}

// ContactsBucketConfig is the cache of contact look-ups. Each entry has a
// TTL of its own (found or nobody); the bucket's TTL bounds them all.
func ContactsBucketConfig(cfg *config.Config) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:         NamesFor(cfg).Contacts,
		Description:    "intercom-bridge: contacts looked up by user_id or email",
		TTL:            max(cfg.Intercom.Contacts.TTL.D(), cfg.Intercom.Contacts.NegativeTTL.D()),
		Storage:        jetstream.FileStorage,
		Replicas:       cfg.NATS.Events.Replicas,
		History:        1,
		LimitMarkerTTL: time.Minute,
	}
}

// ensureBucket creates or updates a KV bucket, retrying what passes by
// itself (a cluster starting, see broker.Retry) while ctx lasts.
func ensureBucket(ctx context.Context, js jetstream.JetStream, kc jetstream.KeyValueConfig) (kv jetstream.KeyValue, err error) {
	err = broker.Retry(ctx, "bucket "+kc.Bucket, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, kc)
		return err
	})
	return kv, err
}

// ensureConsumer creates or updates a durable consumer on s, with retries
// as ensureBucket.
func ensureConsumer(ctx context.Context, s jetstream.Stream, cc jetstream.ConsumerConfig) (cons jetstream.Consumer, err error) {
	err = broker.Retry(ctx, "consumer "+cc.Durable, func(ctx context.Context) (err error) {
		cons, err = s.CreateOrUpdateConsumer(ctx, cc)
		return err
	})
	return cons, err
}

// streamOf looks a stream up, with retries as ensureBucket.
func streamOf(ctx context.Context, js jetstream.JetStream, name string) (s jetstream.Stream, err error) {
	err = broker.Retry(ctx, "stream "+name, func(ctx context.Context) (err error) {
		s, err = js.Stream(ctx, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	return s, nil
}

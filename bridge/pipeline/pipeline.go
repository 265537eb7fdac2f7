// Package pipeline moves events to Intercom in two durable stages on
// JetStream.
//
// Stage 1 (Matcher) reads the events stream, evaluates the rules, and
// renders one Job per (event, rule). It has stage 2 make each job's first
// attempt at once (firstattempt.go), and stores in the outbox stream, with
// Nats-Msg-Id set to the job's delivery key, the jobs that are to wait or
// be tried again; only then is the event acked. Stage 2 (Sender) reads the
// outbox, skips keys the ledger has as sent, applies throttles, sends at
// the pace Intercom allows, records the key as sent and acks. Whatever
// cannot be delivered goes to the dead-letter stream with the reason.
//
// It owns the two stages, the sent ledger, the throttles, the contact
// look-ups and the dead letters' format and writing (package dlq reads
// them); it must not import config, ingest, dlq or the service package.
// Names and stream configurations come from broker.Topology.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/broker"
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
	// Schedule is how the job waited before it went to the outbox; nil
	// for one sent at once.
	Schedule *JobSchedule `json:"schedule,omitempty"`
	// Message is what the rule rendered, its recipients as the rule names
	// them; stage 2 looks them up just before sending, so a replay, or a
	// job that waited, uses what Intercom knows then.
	Message  rules.Message `json:"message"`
	Received time.Time     `json:"received"` // when the event arrived, for end-to-end latency
	Replay   bool          `json:"replay,omitempty"`
	// RetryAt is when a job whose first attempt stage 1 made (see
	// Sender.attemptFirst) may be worked again; zero for at once.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// Throttle allows one message per Key per Per.
type Throttle struct {
	Key string        `json:"key"`
	Per time.Duration `json:"per"`
}

// DeliveryKey is the key of a rule's message for a dedupe key: each is sent
// at most once within the dedupe window.
func DeliveryKey(rule, dedupeKey string) string { return rule + "/" + dedupeKey }

// ensureBucket creates or updates a KV bucket, retrying what passes by
// itself (a cluster starting, see broker.Retry) while ctx lasts. It asks to
// create first and updates only a bucket that exists with another
// configuration, as broker.EnsureStream does for streams: replicas starting
// together on a cluster then send only identical creates, which JetStream
// answers, and no update racing another replica's create, which it leaves
// unanswered.
func ensureBucket(ctx context.Context, js jetstream.JetStream, kc jetstream.KeyValueConfig) (kv jetstream.KeyValue, err error) {
	err = broker.Retry(ctx, "bucket "+kc.Bucket, func(ctx context.Context) (err error) {
		kv, err = js.CreateKeyValue(ctx, kc)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.UpdateKeyValue(ctx, kc)
		}
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

// deadLetterRoom is what a job leaves free under the NATS server's
// max_payload for the rest of its dead letter (the reason, Intercom's
// error): a job that fits is dead-lettered, if it comes to that, with its
// request, and can be replayed. 8 KiB, or a quarter of a max_payload
// smaller than 32 KiB.
func deadLetterRoom(maxPayload int64) int64 { return min(8<<10, maxPayload/4) }

// tooLarge returns why the outbox cannot store job, or nil: a job must fit
// in maxPayload less deadLetterRoom.
func (j *Job) tooLarge(maxPayload int64) error {
	room := deadLetterRoom(maxPayload)
	limit := maxPayload - room
	if j.sizeBound() <= limit {
		return nil
	}
	body, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if n := int64(len(body)); n > limit {
		return fmt.Errorf("the rendered message is %d bytes as a job; the bridge stores at most %d (the NATS server's max_payload, %d, less %d for its dead letter)",
			n, limit, maxPayload, room)
	}
	return nil
}

// sizeBound is at least the size of j in JSON, found without writing it:
// encoding/json writes no byte of a string as more than 6 (\u003c).
func (j *Job) sizeBound() int64 {
	m := &j.Message
	n := len(j.Key) + len(j.Rule) + len(j.EventID) + len(j.Source) + len(j.DedupeKey) +
		len(m.MessageType) + len(m.Subject) + len(m.Body) + len(m.Template) + len(m.From.Type) + len(m.From.ID)
	if j.Throttle != nil {
		n += len(j.Throttle.Key)
	}
	if j.Schedule != nil {
		n += len(j.Schedule.Key)
	}
	people := 0
	for _, rs := range [][]rules.Recipient{m.To, m.Cc, m.Bcc} {
		for _, r := range rs {
			n += len(r.Type) + len(r.ID) + len(r.UserID) + len(r.Email)
		}
		people += len(rs)
	}
	// What is not a string (names, numbers, times) is at most 1 KB, and
	// 64 bytes a recipient.
	return 6*int64(n) + 1024 + 64*int64(people)
}

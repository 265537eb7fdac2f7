package broker

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TopologyOptions are what the bridge's NATS names and configurations
// depend on: the prefix, the config file's stream settings, and the
// subjects that capture sources store.
type TopologyOptions struct {
	Prefix string
	// Replicas of every stream and bucket (1 on a single server, 3 on a
	// cluster for fault tolerance).
	Replicas int
	// EventsMaxAge and EventsMaxBytes (0: unlimited) bound the events
	// stream; Duplicates is the Nats-Msg-Id window of the events and the
	// outbox streams.
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
	Duplicates     time.Duration
	// CaptureSubjects are the subjects of capture-mode sources, stored in
	// the events stream beside the webhooks' <prefix>.in.>.
	CaptureSubjects []string
	// DedupeWindow is how long the sent ledger remembers a delivery key.
	DedupeWindow time.Duration
	// ContactsTTL is the longest a cached contact look-up is kept.
	ContactsTTL time.Duration
}

// Topology is every stream, subject, bucket and consumer the bridge keeps
// in NATS, with its configuration: computed once, here, from the prefix
// and the options, so that a name is never derived anywhere else.
//
//	<PREFIX>_EVENTS   stream   <prefix>.in.<source> and capture subjects
//	<PREFIX>_OUTBOX   stream   <prefix>.outbox.<rule>, a work queue of jobs, and
//	                           <prefix>.wait.<rule>.<key>, messages that wait
//	                           (JetStream message schedules that fire into
//	                           <prefix>.outbox.<rule>)
//	<PREFIX>_DLQ      stream   <prefix>.dlq.<rule>, dead letters
//	<prefix>_sent     bucket   the delivery ledger
//	<prefix>_throttle bucket   throttle windows
//	<prefix>_contacts bucket   contact look-ups
//	<prefix>_match    consumer stage 1 on the events stream
//	<prefix>_send     consumer stage 2 on the outbox
//	<prefix>_<source> consumer a bind-mode source on its own stream
type Topology struct {
	Prefix                   string
	Events, Outbox, DLQ      jetstream.StreamConfig
	Sent, Throttle, Contacts jetstream.KeyValueConfig
	// MatchConsumer and SendConsumer are the durable names of the two
	// stages' consumers (see MatchConsumerConfig, SendConsumerConfig).
	MatchConsumer, SendConsumer string
	// OutboxSubject, WaitSubject and DLQSubject prefix the rule's token
	// in the subjects of jobs, waiting messages and dead letters.
	OutboxSubject, WaitSubject, DLQSubject string
}

// DLQDuplicates is the dead-letter stream's duplicate window. It only
// needs to cover a message redelivered after its dead letter was stored
// but before it was acked (a lost ack, a crash in between): AckWait and a
// few retries.
const DLQDuplicates = 2 * time.Minute

// NewTopology computes the topology for o.
func NewTopology(o TopologyOptions) Topology {
	p, up := o.Prefix, strings.ToUpper(o.Prefix)
	maxBytes := o.EventsMaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	t := Topology{
		Prefix:        p,
		MatchConsumer: p + "_match", SendConsumer: p + "_send",
		OutboxSubject: p + ".outbox", WaitSubject: p + ".wait", DLQSubject: p + ".dlq",
	}
	t.Events = jetstream.StreamConfig{
		Name:        up + "_EVENTS",
		Description: "intercom-bridge: every event received, kept for replay",
		Subjects:    append([]string{p + ".in.>"}, o.CaptureSubjects...),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      o.EventsMaxAge,
		Duplicates:  o.Duplicates,
		Replicas:    o.Replicas,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
	}
	// The outbox's duplicate window stops a job rendered twice (an event
	// redelivered to stage 1) from being queued twice; the sent ledger
	// covers the longer dedupe window. Messages that wait are schedules
	// in the same stream, since a schedule can only fire into its own
	// stream: each holds its job until JetStream stores it as a job.
	t.Outbox = jetstream.StreamConfig{
		Name:              up + "_OUTBOX",
		Description:       "intercom-bridge: messages waiting to be sent",
		Subjects:          []string{t.OutboxSubject + ".>", t.WaitSubject + ".>"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           jetstream.FileStorage,
		Duplicates:        o.Duplicates,
		Replicas:          o.Replicas,
		AllowMsgSchedules: true,
	}
	// Dead letters are kept until replayed or purged.
	t.DLQ = jetstream.StreamConfig{
		Name:        up + "_DLQ",
		Description: "intercom-bridge: events and messages that could not be delivered",
		Subjects:    []string{t.DLQSubject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Duplicates:  DLQDuplicates,
		Replicas:    o.Replicas,
	}
	// The ledger: pending before a send, sent after, kept for the dedupe
	// window.
	t.Sent = jetstream.KeyValueConfig{
		Bucket:      p + "_sent",
		Description: "intercom-bridge: delivery keys pending or sent",
		TTL:         o.DedupeWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		History:     1,
	}
	// One key per throttled (rule, key), each with the rule's window as
	// its own TTL.
	t.Throttle = jetstream.KeyValueConfig{
		Bucket:         p + "_throttle",
		Description:    "intercom-bridge: throttle windows",
		Storage:        jetstream.FileStorage,
		Replicas:       o.Replicas,
		History:        1,
		LimitMarkerTTL: time.Minute,
	}
	// Each look-up has a TTL of its own (found or nobody); the bucket's
	// TTL bounds them all.
	t.Contacts = jetstream.KeyValueConfig{
		Bucket:         p + "_contacts",
		Description:    "intercom-bridge: contacts looked up by user_id or email",
		TTL:            o.ContactsTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       o.Replicas,
		History:        1,
		LimitMarkerTTL: time.Minute,
	}
	return t
}

// Streams are the bridge's own streams, in the order they are created.
func (t Topology) Streams() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{t.Events, t.Outbox, t.DLQ}
}

// SourceSubject is the subject a webhook, bind or core source's events
// are stored under (capture sources keep their own).
func (t Topology) SourceSubject(source string) string { return t.Prefix + ".in." + source }

// OutboxSubjectFor and DLQSubjectFor are the subjects of a rule's jobs
// and dead letters.
func (t Topology) OutboxSubjectFor(rule string) string {
	return t.OutboxSubject + "." + subjectToken(rule)
}
func (t Topology) DLQSubjectFor(rule string) string { return t.DLQSubject + "." + subjectToken(rule) }

// WaitSubjectFor is the subject of the one message of rule that waits
// under key: a new schedule on it replaces the old, a purge of it cancels.
// The key is hashed, as it may hold anything; the job inside names it.
func (t Topology) WaitSubjectFor(rule, key string) string {
	sum := sha256.Sum256([]byte(key))
	return t.WaitSubject + "." + subjectToken(rule) + "." + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// WaitFilter is the subjects of the messages of rule that wait; every
// rule's when rule is "".
func (t Topology) WaitFilter(rule string) string {
	if rule == "" {
		return t.WaitSubject + ".>"
	}
	return t.WaitSubject + "." + subjectToken(rule) + ".*"
}

// subjectToken makes a rule name safe as one subject token.
func subjectToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(s)
}

// PullExpiry is how long each pull request of a durable consumer the
// bridge reads (both stages, every bind source) waits at the server. With
// jetstream's default of 30 s, a replica sat idle that long after
// starting together with another, and the jobs of a replica that died
// waited for it; a bind source would read nothing as long.
const PullExpiry = 5 * time.Second

// PullHeartbeat is how often the server says that it still holds a pull
// request that has nothing to deliver. A pull request it no longer holds
// is noticed only when two of them are missed: around a consumer's
// creation, a change of its leader on a cluster, and, now and then under
// load, with no cause in sight: the server holds no pull request while
// the client counts messages still to come (nats.go issue 1622). With
// jetstream's default, half of PullExpiry, such a consumer delivered
// nothing for 5 s; with this one, for 2.
const PullHeartbeat = time.Second

// PullOptions are how every durable consumer the bridge reads pulls: at
// most maxMessages ahead, with PullExpiry and PullHeartbeat.
func PullOptions(maxMessages int) []jetstream.PullConsumeOpt {
	return []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(maxMessages),
		jetstream.PullExpiry(PullExpiry), jetstream.PullHeartbeat(PullHeartbeat)}
}

// MatchConsumerConfig is stage 1's durable consumer on the events stream.
// Its AckWait is stage 2's: stage 1 heartbeats every event it holds, one
// it makes a first attempt for included, so that a dead replica's events
// and first attempts go on elsewhere as soon as its jobs do.
func (t Topology) MatchConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.MatchConsumer,
		Description:   "intercom-bridge stage 1: match events against rules",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: 4096,
	}
}

// SendConsumerConfig is stage 2's durable consumer on the outbox. Its
// AckWait is short because the sender heartbeats every job it holds, so
// that a dead replica's jobs come back soon; maxAckPending bounds the jobs
// held at once.
func (t Topology) SendConsumerConfig(ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       t.SendConsumer,
		Description:   "intercom-bridge stage 2: send messages to Intercom",
		FilterSubject: t.OutboxSubject + ".>", // not the messages that wait
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxAckPending: maxAckPending,
	}
}

// BindConsumerConfig is the durable consumer of a bind-mode source on the
// stream it reads, <prefix>_<source>: replicas share it and a restart
// goes on where it stopped.
func (t Topology) BindConsumerConfig(source string, subjects []string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        t.Prefix + "_" + source,
		Description:    "intercom-bridge: source " + source,
		FilterSubjects: subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        30 * time.Second,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		MaxAckPending:  1024,
	}
}

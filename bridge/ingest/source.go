package ingest

import (
	"time"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// Kind is what a source is and how its events reach the events stream.
type Kind string

// The kinds of source.
const (
	// KindWebhook receives events at POST /hooks/<name> (Webhooks).
	KindWebhook Kind = "webhook"
	// KindCapture names NATS subjects the events stream stores itself:
	// nothing runs in the bridge for it.
	KindCapture Kind = "capture"
	// KindBind reads a stream that exists already with a durable consumer
	// (at least once).
	KindBind Kind = "bind"
	// KindCore reads core NATS subjects with a queue subscription (at most
	// once: what is published while no bridge listens is gone).
	KindCore Kind = "core"
)

// Source is one configured source of events.
type Source struct {
	Name    string
	Kind    Kind
	Webhook WebhookSource // KindWebhook
	NATS    NATSSource    // KindCapture, KindBind, KindCore
}

// WebhookSource is how a webhook source authenticates its sender and
// where an event's id and subject come from.
type WebhookSource struct {
	Auth    webhook.AuthConfig
	ID      string   // expression for the event id; "": the defaults
	Subject string   // expression for the event's subject; "": <prefix>.in.<source>
	Headers []string // request headers rules may see; none: all but secrets
	// ContentTypes the source accepts besides JSON: ContentTypeForm for
	// GitHub's form encoding. Empty: JSON only.
	ContentTypes []string
}

// NATSSource is the subjects a NATS source reads and where its event id
// comes from.
type NATSSource struct {
	Subjects []string
	Stream   string // KindBind: the stream that exists already
	Queue    string // KindCore: the queue group
	ID       string // expression for the event id; "": the defaults
}

// WebhookOptions bound what one request and all requests together may
// hold, so that a client cannot make the bridge allocate what it
// announces.
type WebhookOptions struct {
	MaxBodyBytes     int64
	MaxJSONDepth     int
	MaxInflightBytes int64         // body bytes held by all requests at once; past it, 503
	BodyIdleTimeout  time.Duration // how long a body may go without a byte arriving
	// Unavailable, when set, says why the store is known to refuse every
	// write now (nil: it may take them), so that a webhook is answered
	// 503 at once rather than after the publish timeout.
	Unavailable func() error
}

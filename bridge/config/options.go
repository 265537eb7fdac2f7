package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/ingest"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// This file is the one place where the file's keys are mapped onto the
// options of the packages that do the work: they never see a Config.

// BrokerOptions are how the bridge reaches NATS.
func (c *Config) BrokerOptions() broker.Options {
	n := c.NATS
	return broker.Options{
		URL: n.URL, Listen: n.Listen, DataDir: c.DataDir, Creds: n.Creds,
		User: n.User, Password: n.Password, Token: n.Token,
		TLS:            broker.TLS{CA: n.TLS.CA, Cert: n.TLS.Cert, Key: n.TLS.Key},
		ConnectTimeout: n.Connect.D(), MaxStore: n.MaxStore,
	}
}

// Topology is every NATS name and stream configuration of the bridge.
func (c *Config) Topology() broker.Topology {
	var capture []string
	for _, s := range c.Sources {
		if s.Kind() == ingest.KindCapture {
			capture = append(capture, s.NATS.Subjects...)
		}
	}
	return broker.NewTopology(broker.TopologyOptions{
		Prefix: c.NATS.Prefix, Replicas: c.NATS.Events.Replicas,
		EventsMaxAge: c.NATS.Events.MaxAge.D(), EventsMaxBytes: c.NATS.Events.MaxBytes,
		Duplicates: c.NATS.Events.Duplicates.D(), CaptureSubjects: capture,
		DedupeWindow: c.Delivery.DedupeWindow.D(),
		ContactsTTL:  max(c.Intercom.Contacts.TTL.D(), c.Intercom.Contacts.NegativeTTL.D()),
	})
}

// IngestSources are the sources, as ingest runs them.
func (c *Config) IngestSources() []ingest.Source {
	out := make([]ingest.Source, 0, len(c.Sources))
	for _, s := range c.Sources {
		is := ingest.Source{Name: s.Name, Kind: s.Kind()}
		if w := s.Webhook; w != nil {
			is.Webhook = ingest.WebhookSource{Auth: w.Auth.Options(), ID: w.ID, Subject: w.Subject, Headers: w.Headers,
				ContentTypes: w.ContentTypes}
		}
		if n := s.NATS; n != nil {
			is.NATS = ingest.NATSSource{Subjects: n.Subjects, Stream: n.Stream, Queue: n.Queue, ID: n.ID}
		}
		out = append(out, is)
	}
	return out
}

// Options are the webhook auth settings as the webhook package takes
// them.
func (a WebhookAuth) Options() webhook.AuthConfig {
	return webhook.AuthConfig{Scheme: a.Scheme, Secrets: a.AllSecrets(), Header: a.Header, Prefix: a.Prefix,
		Encoding: a.Encoding, Tolerance: a.Tolerance.D()}
}

// WebhookOptions are the limits of the webhook listener.
func (c *Config) WebhookOptions() ingest.WebhookOptions {
	h := c.HTTP
	return ingest.WebhookOptions{MaxBodyBytes: h.MaxBodyBytes, MaxJSONDepth: h.MaxDepth,
		MaxInflightBytes: h.MaxInflightBytes, BodyIdleTimeout: h.BodyIdleTimeout.D()}
}

// Decoder reads stored events back: it knows the capture sources by
// their subjects.
func (c *Config) Decoder() (*event.Decoder, error) {
	top := c.Topology()
	d := &event.Decoder{Stream: top.Events.Name, In: top.SourceSubject("")}
	for _, s := range c.Sources {
		if s.Kind() != ingest.KindCapture {
			continue
		}
		id, err := event.CompileExpr(s.NATS.ID)
		if err != nil {
			return nil, fmt.Errorf("source %s: id: %w", s.Name, err)
		}
		d.Captures = append(d.Captures, event.Capture{Name: s.Name, Subjects: s.NATS.Subjects, ID: id})
	}
	return d, nil
}

// Policy is how stage 2 retries, dead-letters and treats uncertain sends.
func (c *Config) Policy() pipeline.Policy {
	d := c.Delivery
	initial, most := d.Backoff.Initial.D(), d.Backoff.Max.D()
	return pipeline.Policy{MaxAttempts: d.MaxAttempts, OnUncertain: d.OnUncertain,
		Backoff: func(attempt int) time.Duration { return pipeline.Backoff(initial, most, attempt) }}
}

// Timeouts are the pipeline's named timeouts, from intercom.timeout.
func (c *Config) Timeouts() pipeline.Timeouts { return pipeline.NewTimeouts(c.Intercom.Timeout.D()) }

// ContactsOptions configure the contact look-ups (without the finder,
// which the caller supplies).
func (c *Config) ContactsOptions() pipeline.ContactsOptions {
	return pipeline.ContactsOptions{FindByExternalID: intercom.Capabilities(c.Intercom.Version).FindByExternalID,
		TTL: c.Intercom.Contacts.TTL.D(), NegativeTTL: c.Intercom.Contacts.NegativeTTL.D()}
}

// RuleOptions are the checks the config implies for rules: its sources,
// its default admin, what its Intercom version can send, and how long a
// message may wait (no longer than the events stream keeps its event).
func (c *Config) RuleOptions() rules.Options {
	return rules.Options{DefaultAdminID: c.Intercom.DefaultAdminID, Sources: c.SourceNames(),
		NoRecipientLists: !intercom.Capabilities(c.Intercom.Version).RecipientLists, IntercomVersion: c.Intercom.Version,
		MaxDelay: c.NATS.Events.MaxAge.D()}
}

// AsStored makes an event of a webhook source what the service would
// store: its headers only those the source keeps (its headers list; never
// credentials or signatures), and, when it has none, the subject the
// service would store it under: the source's subject expression, else
// <prefix>.in.<source>. So a rule sees in render, test and the console's
// playground what it sees in run. With a nil Config, or for a NATS source
// (whose subject is whatever it was published on), the event stays as it
// is.
func (c *Config) AsStored(ev *rules.Event) error {
	if c == nil || ev.Source == "" {
		return nil
	}
	for _, s := range c.Sources {
		if s.Name != ev.Source || s.Webhook == nil {
			continue
		}
		all := make(map[string][]string, len(ev.Headers))
		for k, v := range ev.Headers {
			all[k] = []string{v}
		}
		var keep func(string) bool
		if len(s.Webhook.Headers) > 0 {
			keep = func(name string) bool {
				return slices.ContainsFunc(s.Webhook.Headers, func(h string) bool { return strings.EqualFold(h, name) })
			}
		}
		ev.Headers = event.Headers(all, keep)
		if ev.Subject != "" {
			continue
		}
		expr, err := event.CompileExpr(s.Webhook.Subject)
		if err != nil {
			return fmt.Errorf("source %s: subject: %w", s.Name, err)
		}
		def := c.Topology().SourceSubject(s.Name)
		subject, err := expr.Eval(ev.Headers, ev.Data, s.Name, def)
		if err != nil {
			return fmt.Errorf("source %s: subject: %w", s.Name, err)
		}
		ev.Subject = cmp.Or(subject, def)
	}
	return nil
}

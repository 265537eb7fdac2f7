package ingest

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// Content types a webhook source may accept. Every source accepts JSON
// (and the +json types: CloudEvents, structured and batched); the form is
// GitHub's other setting, "payload=<JSON>", accepted only where a
// source's content types or preset list it.
const (
	ContentTypeJSON = "application/json"
	ContentTypeForm = "application/x-www-form-urlencoded"
)

// CheckContentTypes refuses content types a webhook source cannot accept.
func CheckContentTypes(types []string) error {
	for _, ct := range types {
		if ct != ContentTypeJSON && ct != ContentTypeForm {
			return fmt.Errorf("unknown content type %q (want %s or %s)", ct, ContentTypeJSON, ContentTypeForm)
		}
	}
	return nil
}

// Preset is what a well-known sender needs of a webhook source: its
// scheme and signature header, where the event's subject comes from, and
// the content types it sends. The secret is always the source's own.
//
// No preset sets an id: each scheme's default is the id its signature
// covers (webhook-id or svix-id, Stripe's payload id, else a hash of the
// body), which a replay cannot change. GitHub's X-GitHub-Delivery and
// Shopify's X-Shopify-Webhook-Id are not signed, so they are not used.
type Preset struct {
	Auth         webhook.AuthConfig // Scheme, Header, Prefix, Encoding
	Subject      string
	ContentTypes []string
}

// sourceTypeSubject names the event by the payload's type, after the
// source's name: standard-webhooks senders (Clerk, Resend, ...) put a
// dotted type in the signed body.
const sourceTypeSubject = `event.type != nil ? source + "." + event.type : ""`

// presets are the senders people wire in most. Each subject gives "", the
// default subject, when what it reads is absent (a request by bridge
// send, say). The subjects of github and shopify read a header their
// signature does not cover; the id, a hash of the signed body, does not
// depend on it.
var presets = map[string]Preset{
	"github": {
		Auth:         webhook.AuthConfig{Scheme: string(webhook.SchemeHMACSHA256), Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: webhook.EncodingHex},
		Subject:      `headers["x-github-event"] != nil ? "github." + headers["x-github-event"] : ""`,
		ContentTypes: []string{ContentTypeJSON, ContentTypeForm},
	},
	"shopify": {
		Auth:    webhook.AuthConfig{Scheme: string(webhook.SchemeHMACSHA256), Header: "X-Shopify-Hmac-Sha256", Encoding: webhook.EncodingBase64},
		Subject: `headers["x-shopify-topic"] != nil ? "shopify." + replace(headers["x-shopify-topic"], "/", ".") : ""`,
	},
	"stripe": {
		Auth:    webhook.AuthConfig{Scheme: string(webhook.SchemeStripe)},
		Subject: `event.type != nil ? "stripe." + event.type : ""`,
	},
	// Svix is a Standard Webhooks sender; the scheme reads its svix-*
	// headers as well as the spec's webhook-* ones.
	"svix":              {Auth: webhook.AuthConfig{Scheme: string(webhook.SchemeStandardWebhooks)}, Subject: sourceTypeSubject},
	"standard-webhooks": {Auth: webhook.AuthConfig{Scheme: string(webhook.SchemeStandardWebhooks)}, Subject: sourceTypeSubject},
}

// LookupPreset returns the preset of that name.
func LookupPreset(name string) (Preset, error) {
	p, ok := presets[name]
	if !ok {
		return Preset{}, fmt.Errorf("unknown preset %q (want one of %s)", name, strings.Join(PresetNames(), ", "))
	}
	p.ContentTypes = slices.Clone(p.ContentTypes)
	return p, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Package ingest receives events, from webhooks and from NATS sources, and
// stores them in the events stream. An event is accepted only once
// JetStream has acknowledged it.
//
// It owns the HTTP intake and the NATS sources, each a Source of a Kind;
// it must not import config, the pipeline or the service: what it stores
// is read back by the pipeline.
//
// To add a webhook scheme, see package webhook: ingest needs no change.
// To add a kind of source that reads from elsewhere (Kafka, say): a Kind
// constant and the source's settings in source.go, and a file with its
// start function, which stores each event with the same store path as the
// NATS sources (an Envelope on the topology's SourceSubject, acked only
// once JetStream has it) and returns something to stop; then map the
// config file's block onto it in config/options.go.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/internal/lograte"
	"github.com/intercom-bridge/bridge/rules"
)

// Publisher stores a message in JetStream; jetstream.JetStream is one.
type Publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// publishTimeout bounds the wait for JetStream's acknowledgement; past it
// the sender is told to retry.
const publishTimeout = 5 * time.Second

// hopHeaders are request headers that say nothing about the event.
var hopHeaders = map[string]bool{
	"connection": true, "content-length": true, "accept-encoding": true, "keep-alive": true,
	"transfer-encoding": true, "te": true, "upgrade": true, "expect": true,
}

// logInterval is how often a repeated warning or access line is logged;
// the ones in between are counted in the next.
const logInterval = 10 * time.Second

// webhookSource is one configured webhook source, ready to serve.
type webhookSource struct {
	name     string
	verifier webhook.Verifier
	id       *event.Expr
	subject  *event.Expr
	headers  map[string]bool // lower-case names to keep; nil: all but secrets
	// signedIDHeader is the header a default event id may come from:
	// webhook-id where the scheme signs it (standard-webhooks) or signs
	// nothing (bearer, none: there a header is as good as the body); ""
	// for hmac-sha256, which signs the body only.
	signedIDHeader string
	idFromHeaders  bool // a binary CloudEvent's ce-id header may be the id
}

// Webhooks serves POST /hooks/{source}.
type Webhooks struct {
	js          Publisher
	sources     map[string]*webhookSource
	topology    broker.Topology
	maxBody     int64
	maxDepth    int
	bodies      *bodyReader
	log         zerolog.Logger
	logs        *lograte.Limiter
	now         func() time.Time
	closing     atomic.Bool
	m           *Metrics
	store       storeHealth
	unavailable func() error // see WebhookOptions.Unavailable
}

// NewWebhooks prepares the webhook sources among sources, storing their
// events under t's subjects; m (nil: none) counts the requests and the
// events stored.
func NewWebhooks(t broker.Topology, o WebhookOptions, sources []Source, js Publisher, log zerolog.Logger, m *Metrics) (*Webhooks, error) {
	w := &Webhooks{
		js: js, sources: map[string]*webhookSource{}, topology: t,
		maxBody: o.MaxBodyBytes, maxDepth: o.MaxJSONDepth, log: log, now: time.Now, m: m.orNew(),
		bodies: newBodyReader(o.MaxBodyBytes, o.MaxInflightBytes, o.BodyIdleTimeout), unavailable: o.Unavailable,
		logs: lograte.New(logInterval),
	}
	for _, s := range sources {
		if s.Kind != KindWebhook {
			continue
		}
		a := s.Webhook.Auth
		v, err := webhook.NewVerifier(a)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		ws := &webhookSource{name: s.Name, verifier: v}
		switch a.Scheme {
		case "standard-webhooks":
			ws.signedIDHeader = "Webhook-Id"
		case "bearer", "none":
			// Nothing is signed, the body no more than the headers.
			ws.signedIDHeader, ws.idFromHeaders = "Webhook-Id", true
		}
		if ws.id, err = event.CompileExpr(s.Webhook.ID); err != nil {
			return nil, fmt.Errorf("source %s: id: %w", s.Name, err)
		}
		if ws.subject, err = event.CompileExpr(s.Webhook.Subject); err != nil {
			return nil, fmt.Errorf("source %s: subject: %w", s.Name, err)
		}
		if len(s.Webhook.Headers) > 0 {
			ws.headers = map[string]bool{}
			for _, h := range s.Webhook.Headers {
				ws.headers[strings.ToLower(h)] = true
			}
		}
		w.sources[s.Name] = ws
	}
	return w, nil
}

// Close makes every later request answer 503, so that senders retry
// elsewhere or later while the bridge shuts down.
func (w *Webhooks) Close() { w.closing.Store(true) }

// Handler returns the HTTP handler with the /hooks/ route.
func (w *Webhooks) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/hooks/{source}", w)
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// Else net/http would wait for the unread body, without a
			// deadline, holding a connection slot.
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, http.StatusNotFound, "no such endpoint: webhooks are received at POST /hooks/<source>")
	})
	return mux
}

// accepted is the answer to a stored event.
type accepted struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

func (w *Webhooks) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := w.now()
	reqID := SanitizeRequestID(r.Header.Get("X-Request-Id"))
	if reqID == "" {
		reqID = newRequestID()
	}
	rw.Header().Set("X-Request-Id", reqID)
	if len(r.TransferEncoding) > 0 {
		// net/http drops a Content-Length sent beside Transfer-Encoding; a
		// proxy in front may have framed the request by it instead, and
		// what it took for a second request is in this body. Closing the
		// connection after the answer leaves nothing to smuggle.
		rw.Header().Set("Connection", "close")
	}
	name := r.PathValue("source")
	status, eventID, dup, reason := w.serve(rw, r, name)
	label := name
	_, known := w.sources[name]
	if !known {
		label = ""
	}
	w.m.webhook(label, status, status == http.StatusAccepted && !dup)
	suppressed := 0
	if status >= 400 {
		// Refused requests cost the sender nothing, and a full store fails
		// them all alike: one line per source and status per interval,
		// with the count of the others. Every stored event has its line.
		var ok bool
		if ok, suppressed = w.logs.Allow(fmt.Sprintf("access:%s:%d", label, status)); !ok {
			return
		}
	}
	if !known {
		name = SanitizeRequestID(name)
	}
	ev := w.log.Info()
	if status >= 500 {
		ev = w.log.Warn()
	}
	if suppressed > 0 {
		ev = ev.Int("suppressed", suppressed)
	}
	ev = ev.Str("request_id", reqID).Str("source", name).Str("remote", r.RemoteAddr).Int("status", status)
	if reason != "" {
		ev = ev.Str("error", reason)
	} else {
		ev = ev.Str("event_id", eventID).Bool("duplicate", dup)
	}
	ev.Dur("duration_ms", w.now().Sub(start)).Msg("webhook") // zerolog writes durations in ms
}

// serve handles one request and returns the status it answered, and the
// reason of an error.
func (w *Webhooks) serve(rw http.ResponseWriter, r *http.Request, name string) (status int, id string, dup bool, reason string) {
	bodyRead := false
	fail := func(status int, format string, args ...any) (int, string, bool, string) {
		msg := fmt.Sprintf(format, args...)
		if !bodyRead && r.ContentLength != 0 {
			// Else net/http would wait for the unread body before
			// answering, to keep the connection: the very wait refusing
			// early avoids.
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, status, msg)
		return status, "", false, msg
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "method %s not allowed: send events with POST", r.Method)
	}
	src := w.sources[name]
	if src == nil {
		return fail(http.StatusNotFound, "unknown source %q", name)
	}
	if w.closing.Load() {
		rw.Header().Set("Retry-After", "5")
		return fail(http.StatusServiceUnavailable, "shutting down; retry later")
	}
	if w.unavailable != nil {
		if err := w.unavailable(); err != nil {
			rw.Header().Set("Retry-After", "5")
			return fail(http.StatusServiceUnavailable, "the event store cannot take events now; retry later")
		}
	}
	// What the headers alone can refuse is refused before a byte of the
	// body is read or buffered.
	if err := webhook.CheckHeaders(src.verifier, r.Header, w.now()); err != nil {
		return fail(http.StatusUnauthorized, "%s", authReason(err))
	}
	b, err := w.bodies.read(rw, r)
	defer b.release()
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return fail(http.StatusRequestEntityTooLarge, "body larger than %d bytes", w.maxBody)
		case errors.Is(err, errBusy):
			rw.Header().Set("Retry-After", "1")
			return fail(http.StatusServiceUnavailable, "too many requests in flight; retry later")
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fail(http.StatusRequestTimeout, "the body stalled for %s, or took longer than %s", w.bodies.idle, maxBodyTime)
		}
		return fail(http.StatusBadRequest, "reading body: %v", err)
	}
	body := b.Bytes()
	bodyRead = true
	// The answer may wait for the store; bound the write from now, not
	// from when a slow body started.
	_ = http.NewResponseController(rw).SetWriteDeadline(time.Now().Add(publishTimeout + 10*time.Second))
	now := w.now()
	if err := src.verifier.Verify(r.Header, body, now); err != nil {
		return fail(http.StatusUnauthorized, "%s", authReason(err))
	}
	env, status, msg := w.envelope(src, r, body, now)
	if env == nil {
		return fail(status, "%s", msg)
	}
	m, err := env.Msg(w.topology.SourceSubject(src.name))
	if err != nil {
		return fail(http.StatusInternalServerError, "encoding the event: %v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
	defer cancel()
	ack, err := w.js.PublishMsg(ctx, m)
	w.store.record(err)
	if errors.Is(err, nats.ErrMaxPayload) {
		// Retrying the same request can never succeed.
		return fail(http.StatusRequestEntityTooLarge, "the event with its headers is larger than the NATS server accepts")
	}
	if err != nil {
		// A full store fails every request alike: one line per reason and
		// interval, with the count of the others.
		if ok, suppressed := w.logs.Allow("store:" + storeReason(err)); ok {
			w.log.Warn().Err(err).Str("source", src.name).Str("event_id", env.ID).Int("suppressed", suppressed).Msg("cannot store webhook event")
		}
		rw.Header().Set("Retry-After", "5")
		return fail(http.StatusServiceUnavailable, "the event could not be stored; retry later")
	}
	writeJSON(rw, http.StatusAccepted, accepted{ID: env.ID, Duplicate: ack.Duplicate})
	return http.StatusAccepted, env.ID, ack.Duplicate, ""
}

// envelope checks the body and builds the stored event; on a bad request it
// returns nil with the status and the reason.
func (w *Webhooks) envelope(src *webhookSource, r *http.Request, body []byte, now time.Time) (*event.Envelope, int, string) {
	// Every body is JSON: a payload, or a structured CloudEvent. Size and
	// depth are checked before anything decodes it.
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q is not JSON: send application/json or a CloudEvent", ct)
		}
	}
	if len(body) > 0 || !event.IsBinaryCloudEvent(r.Header) {
		if err := event.CheckJSON(body, w.maxDepth); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
		// Refused here, once, rather than stored and failed by every rule.
		if err := CheckText(body); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	ce, isCE, err := event.ParseCloudEvent(r.Header, body)
	if isCE && err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	if isCE {
		if !bytes.Equal(bytes.TrimSpace(ce.Data), []byte("null")) && !IsObject(ce.Data) {
			return nil, http.StatusBadRequest, "the CloudEvent's data must be a JSON object"
		}
	} else if !IsObject(body) {
		return nil, http.StatusBadRequest, "the event must be a JSON object"
	}
	env := &event.Envelope{Source: src.name, Time: now.UTC(), Headers: event.Headers(r.Header, src.keepHeader), Data: body}
	if isCE {
		env.Data, env.Type = ce.Data, ce.Type
	}
	var data any // what the source's expressions see; decoded only for them
	if src.id != nil || src.subject != nil {
		if data, err = rules.DecodeJSON(env.Data); err != nil {
			return nil, http.StatusBadRequest, "invalid JSON: " + err.Error()
		}
	}
	defaultSubject := w.topology.SourceSubject(src.name)
	if env.Subject, err = src.subject.Eval(env.Headers, data, src.name, defaultSubject); err != nil {
		return nil, http.StatusBadRequest, "subject: " + err.Error()
	}
	if env.Subject == "" {
		env.Subject = defaultSubject
	} else if err := CheckSubject(env.Subject); err != nil {
		return nil, http.StatusBadRequest, "subject: " + err.Error()
	}
	byExpr, err := src.id.Eval(env.Headers, data, src.name, env.Subject)
	if err != nil {
		return nil, http.StatusBadRequest, "id: " + err.Error()
	}
	// Default ids come from what the scheme signs, so that a replay with
	// new headers is still the same event.
	ceID, headerID := "", ""
	if isCE && (src.idFromHeaders || !event.IsBinaryCloudEvent(r.Header)) {
		ceID = ce.ID
	}
	if src.signedIDHeader != "" {
		headerID = r.Header.Get(src.signedIDHeader)
	}
	for _, candidate := range []string{byExpr, headerID, ceID, event.BodyHash(src.name, body)} {
		if candidate != "" {
			env.ID = candidate
			break
		}
	}
	return env, 0, ""
}

// keepHeader selects the request headers stored with the event: the
// configured ones, else all but the transport's.
func (src *webhookSource) keepHeader(name string) bool {
	if src.headers != nil {
		return src.headers[name]
	}
	return !hopHeaders[name]
}

// writeJSON answers v as JSON, with < > & as they are: the answers are read
// by people ("POST /hooks/<source>"), and their type is JSON, not HTML.
func writeJSON(rw http.ResponseWriter, status int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(status)
	enc := json.NewEncoder(rw)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(rw http.ResponseWriter, status int, msg string) {
	writeJSON(rw, status, map[string]string{"error": msg})
}

// authReason is the sender's part of an authentication error.
func authReason(err error) string {
	var ae *webhook.AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return "authentication failed"
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

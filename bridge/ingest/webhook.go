// Package ingest receives events, from webhooks and from NATS sources, and
// stores them in the events stream. An event is accepted only once
// JetStream has acknowledged it.
//
// It owns the HTTP intake and the NATS sources, each a Source of a Kind;
// it must not import config, the pipeline or the service: what it stores
// is read back by the pipeline.
//
// To add a webhook scheme, see package webhook: ingest needs no change.
// To add a preset for a sender, add it to the presets in preset.go; the
// config file's preset key reads them.
// To add a kind of source that reads from elsewhere (Kafka, say): a Kind
// constant and the source's settings in source.go, and a file with its
// start function (a startReader, listed in readers in nats.go), which
// stores each event as the NATS sources do (an Envelope on the topology's
// SourceSubject, acked only once JetStream has it) and returns a Reader
// to stop; then map the config file's block onto it in config/options.go.
package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/internal/jsonout"
	"github.com/intercom-bridge/bridge/internal/lograte"
	"github.com/intercom-bridge/bridge/rules"
)

// Publisher stores a message in JetStream; jetstream.JetStream is one.
// A webhook's events are published without waiting, and the answer waits
// for their acknowledgements: a batch's events are on their way together,
// and no request costs a reply subscription or a context of its own.
type Publisher interface {
	PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// publishTimeout bounds the wait for JetStream's acknowledgement; past it
// the sender is told to retry.
const publishTimeout = 5 * time.Second

// requestWindow bounds the events of one request on their way to the
// store at once: a batch of up to maxBatchEvents is sent in a stream of
// publishes, and all the requests together stay well under the client's
// bound on publishes awaiting an answer (broker.MaxAsyncPublishes).
const requestWindow = 64

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
	auth     webhook.AuthConfig
	verifier atomic.Pointer[webhook.Verifier] // swapped by SetSecrets
	id       *event.Expr
	subject  *event.Expr
	headers  map[string]bool // lower-case names to keep; nil: all but secrets
	form     bool            // accepts GitHub's form encoding, payload=<JSON>
	// unsigned is true for the schemes that sign nothing (bearer, none):
	// there a header is as good as the body, so webhook-id and a binary
	// CloudEvent's ce-id may be the event's id. Elsewhere only what the
	// scheme signs may be (webhook.SignedID).
	unsigned bool
}

// verify is the source's verifier as it is now.
func (src *webhookSource) verify() webhook.Verifier { return *src.verifier.Load() }

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
	unavailable func() error  // see WebhookOptions.Unavailable
	ackWithin   time.Duration // publishTimeout; tests shorten it
}

// NewWebhooks prepares the webhook sources among sources, storing their
// events under t's subjects; m (nil: none) counts the requests and the
// events stored.
func NewWebhooks(t broker.Topology, o WebhookOptions, sources []Source, js Publisher, log zerolog.Logger, m *Metrics) (*Webhooks, error) {
	w := &Webhooks{
		js: js, sources: map[string]*webhookSource{}, topology: t,
		maxBody: o.MaxBodyBytes, maxDepth: o.MaxJSONDepth, log: log, now: time.Now, m: m.orNew(),
		bodies: newBodyReader(o.MaxBodyBytes, o.MaxInflightBytes, o.BodyIdleTimeout), unavailable: o.Unavailable,
		logs: lograte.New(logInterval), ackWithin: publishTimeout,
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
		if err := CheckContentTypes(s.Webhook.ContentTypes); err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		ws := &webhookSource{name: s.Name, auth: a, form: slices.Contains(s.Webhook.ContentTypes, ContentTypeForm)}
		ws.verifier.Store(&v)
		switch webhook.Scheme(a.Scheme) {
		case webhook.SchemeBearer, webhook.SchemeNone:
			ws.unsigned = true
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

// SetSecrets replaces the secrets of the named webhook sources (a
// re-read secret file, say): every one of them, or none when one is
// refused. A request being verified finishes with the secrets it started
// with.
func (w *Webhooks) SetSecrets(secrets map[string][]string) error {
	next := map[*webhookSource]webhook.Verifier{}
	for name, list := range secrets {
		src := w.sources[name]
		if src == nil {
			return fmt.Errorf("no webhook source %q", name)
		}
		a := src.auth
		a.Secrets = list
		v, err := webhook.NewVerifier(a)
		if err != nil {
			return fmt.Errorf("source %s: %w", name, err)
		}
		next[src] = v
	}
	for src, v := range next {
		src.verifier.Store(&v)
	}
	return nil
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

// acceptedBatch is the answer to a stored CloudEvents batch: each event,
// in the batch's order.
type acceptedBatch struct {
	Events []accepted `json:"events"`
}

// maxBatchEvents bounds the events of one CloudEvents batch: each is a
// publish awaited before the answer, and all must fit in publishTimeout.
const maxBatchEvents = 1000

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
	status, stored, reason := w.serve(rw, r, name)
	label := name
	_, known := w.sources[name]
	if !known {
		label = ""
	}
	fresh := 0
	for _, a := range stored {
		if !a.Duplicate {
			fresh++
		}
	}
	w.m.webhook(label, status, fresh)
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
		ev = storedFields(ev, stored)
	}
	ev.Dur("duration_ms", w.now().Sub(start)).Msg("webhook") // zerolog writes durations in ms
}

// storedFields adds the events stored to the access line: the id of one,
// the ids of a batch.
func storedFields(ev *zerolog.Event, stored []accepted) *zerolog.Event {
	if len(stored) == 1 {
		return ev.Str("event_id", stored[0].ID).Bool("duplicate", stored[0].Duplicate)
	}
	ids, dups := make([]string, len(stored)), 0
	for i, a := range stored {
		ids[i] = a.ID
		if a.Duplicate {
			dups++
		}
	}
	return ev.Strs("event_ids", ids).Int("duplicates", dups)
}

// serve handles one request and returns the status it answered, the
// events stored (several for a CloudEvents batch), and the reason of an
// error.
func (w *Webhooks) serve(rw http.ResponseWriter, r *http.Request, name string) (status int, stored []accepted, reason string) {
	bodyRead := false
	fail := func(status int, format string, args ...any) (int, []accepted, string) {
		msg := fmt.Sprintf(format, args...)
		if !bodyRead && r.ContentLength != 0 {
			// Else net/http would wait for the unread body before
			// answering, to keep the connection: the very wait refusing
			// early avoids.
			rw.Header().Set("Connection", "close")
		}
		writeError(rw, status, msg)
		return status, nil, msg
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
	verifier := src.verify()
	if err := webhook.CheckHeaders(verifier, r.Header, w.now()); err != nil {
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
	if err := verifier.Verify(r.Header, body, now); err != nil {
		return fail(http.StatusUnauthorized, "%s", authReason(err))
	}
	envs, batch, status, msg := w.envelopes(src, verifier, r, body, now)
	if status != 0 {
		return fail(status, "%s", msg)
	}
	// A batch is answered 202 only once JetStream holds every event. Each
	// event has its own Nats-Msg-Id: when one fails, the answer is 503 and
	// the sender's retry of the whole batch stores only the ones missing.
	// Up to requestWindow of a request's events are on their way at once;
	// one that cannot even be sent ends the publishing, and makes the
	// answer a 503 too once those before it are known to be stored or not.
	expired := make(chan struct{})
	timer := time.AfterFunc(w.ackWithin, func() { close(expired) })
	defer timer.Stop()
	var failed error
	var failedID string
	answers := make([]accepted, 0, len(envs))
	futures := make([]jetstream.PubAckFuture, 0, len(envs))
	await := func(i int) {
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-futures[i].Ok():
		case err = <-futures[i].Err():
		case <-expired:
			err = fmt.Errorf("no acknowledgement from JetStream within %s", w.ackWithin)
		case <-r.Context().Done():
			err = r.Context().Err() // the sender is gone; its retry is stored once
		}
		w.store.record(err)
		if err == nil {
			answers = append(answers, accepted{ID: envs[i].ID, Duplicate: ack.Duplicate})
		} else if failed == nil {
			failed, failedID = err, envs[i].ID
		}
	}
	awaited := 0
	for _, env := range envs {
		if len(futures)-awaited == requestWindow {
			await(awaited)
			awaited++
		}
		m, err := env.Msg(w.topology.SourceSubject(src.name))
		if err != nil {
			return fail(http.StatusInternalServerError, "encoding the event: %v", err)
		}
		f, err := w.js.PublishMsgAsync(m)
		if errors.Is(err, nats.ErrMaxPayload) {
			// Retrying the same request can never succeed.
			return fail(http.StatusRequestEntityTooLarge, "the event %s with its headers is larger than the NATS server accepts", env.ID)
		}
		if err != nil {
			w.store.record(err)
			if failed == nil {
				failed, failedID = err, env.ID
			}
			break
		}
		futures = append(futures, f)
	}
	for ; awaited < len(futures); awaited++ {
		await(awaited)
	}
	if failed != nil {
		return w.notStored(rw, fail, src.name, failedID, failed, batch, len(answers), len(envs))
	}
	if batch {
		writeJSON(rw, http.StatusAccepted, acceptedBatch{Events: answers})
	} else {
		writeAccepted(rw, answers[0])
	}
	return http.StatusAccepted, answers, ""
}

// notStored answers a request whose event id could not be stored 503,
// with how many of a batch's events were.
func (w *Webhooks) notStored(rw http.ResponseWriter, fail func(int, string, ...any) (int, []accepted, string),
	source, id string, err error, batch bool, stored, events int) (int, []accepted, string) {
	// A full store fails every request alike: one line per reason and
	// interval, with the count of the others.
	if ok, suppressed := w.logs.Allow("store:" + storeReason(err)); ok {
		w.log.Warn().Err(err).Str("source", source).Str("event_id", id).Int("suppressed", suppressed).Msg("cannot store webhook event")
	}
	rw.Header().Set("Retry-After", "5")
	if batch {
		return fail(http.StatusServiceUnavailable, "%d of the batch's %d events were stored, the others could not be; retry the whole batch: the stored ones are not stored twice", stored, events)
	}
	return fail(http.StatusServiceUnavailable, "the event could not be stored; retry later")
}

// incoming is one event as the request carries it, before the source's
// expressions and defaults give it a subject and an id.
type incoming struct {
	data     json.RawMessage // what rules see as event
	typ      string
	ids      []string // the default ids, best first: what the scheme signs, a CloudEvent's id
	hashOver []byte   // what the last default, a hash, covers
}

// envelopes checks the body and builds the events it holds: one, or each
// event of a CloudEvents batch (batch true). On a bad request it returns
// the status and the reason; nothing of such a request is stored.
func (w *Webhooks) envelopes(src *webhookSource, v webhook.Verifier, r *http.Request, body []byte, now time.Time) (envs []*event.Envelope, batch bool, status int, reason string) {
	bad := func(status int, format string, args ...any) ([]*event.Envelope, bool, int, string) {
		return nil, false, status, fmt.Sprintf(format, args...)
	}
	// Every event is JSON: a payload, or CloudEvents. Size and depth are
	// checked before anything decodes it.
	payload := body
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")):
		case err == nil && mt == ContentTypeForm && src.form:
			if payload, err = decodeForm(body); err != nil {
				return bad(http.StatusBadRequest, "%v", err)
			}
		case err == nil && mt == ContentTypeForm:
			return bad(http.StatusUnsupportedMediaType, "content type %q is not accepted by this source: choose application/json in the sender's settings (GitHub: Content type), or accept the form with content_types or preset: github", ct)
		default:
			return bad(http.StatusUnsupportedMediaType, "content type %q is not JSON: send application/json or a CloudEvent", ct)
		}
	}
	if len(payload) > 0 || !event.IsBinaryCloudEvent(r.Header) {
		if err := event.CheckJSON(payload, w.maxDepth); err != nil {
			return bad(http.StatusBadRequest, "%s", err)
		}
		// Refused here, once, rather than stored and failed by every rule.
		if err := CheckText(payload); err != nil {
			return bad(http.StatusBadRequest, "%s", err)
		}
	}
	headers := event.Headers(r.Header, src.keepHeader)
	if event.IsCloudEventBatch(r.Header) {
		members, err := event.ParseCloudEventBatch(payload)
		if err != nil {
			return bad(http.StatusBadRequest, "%s", err)
		}
		if len(members) > maxBatchEvents {
			return bad(http.StatusRequestEntityTooLarge, "a batch holds at most %d events, not %d: send it in parts", maxBatchEvents, len(members))
		}
		// Each event has its own id, its CloudEvent id, which the body's
		// signature covers: the request's webhook-id would be every one's.
		envs = make([]*event.Envelope, len(members))
		for i, ce := range members {
			if !isDataObject(ce.Data) {
				return bad(http.StatusBadRequest, "event [%d]: the CloudEvent's data must be a JSON object", i)
			}
			in := incoming{data: ce.Data, typ: ce.Type, ids: []string{ce.ID}, hashOver: ce.Data}
			if envs[i], err = w.envelope(src, headers, in, now); err != nil {
				return bad(http.StatusBadRequest, "event [%d]: %v", i, err)
			}
		}
		return envs, true, 0, ""
	}
	in := incoming{data: payload, hashOver: payload}
	// Default ids come from what the scheme signs, so that a replay with
	// new headers is still the same event.
	signed := webhook.SignedID(v, r.Header, body)
	if signed == "" && src.unsigned {
		signed = r.Header.Get("Webhook-Id")
	}
	ce, isCE, err := event.ParseCloudEvent(r.Header, payload)
	switch {
	case isCE && err != nil:
		return bad(http.StatusBadRequest, "%s", err)
	case isCE && !isDataObject(ce.Data):
		return bad(http.StatusBadRequest, "the CloudEvent's data must be a JSON object")
	case !isCE && !IsObject(payload):
		return bad(http.StatusBadRequest, "the event must be a JSON object")
	case isCE:
		in.data, in.typ = ce.Data, ce.Type
	}
	in.ids = []string{signed}
	if isCE && (src.unsigned || !event.IsBinaryCloudEvent(r.Header)) {
		in.ids = append(in.ids, ce.ID)
	}
	env, err := w.envelope(src, headers, in, now)
	if err != nil {
		return bad(http.StatusBadRequest, "%v", err)
	}
	return []*event.Envelope{env}, false, 0, ""
}

// isDataObject reports whether a CloudEvent's data is what rules can read:
// a JSON object, or none.
func isDataObject(data json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(data), []byte("null")) || IsObject(data)
}

// envelope gives one event its subject and id: the source's expressions,
// else the defaults.
func (w *Webhooks) envelope(src *webhookSource, headers map[string]string, in incoming, now time.Time) (*event.Envelope, error) {
	env := &event.Envelope{Source: src.name, Time: now.UTC(), Headers: headers, Data: in.data, Type: in.typ}
	var data any // what the source's expressions see; decoded only for them
	if src.id != nil || src.subject != nil {
		var err error
		if data, err = rules.DecodeJSON(env.Data); err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
	}
	defaultSubject := w.topology.SourceSubject(src.name)
	subject, err := src.subject.Eval(env.Headers, data, src.name, defaultSubject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	if env.Subject = subject; subject == "" {
		env.Subject = defaultSubject
	} else if err := CheckSubject(subject); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	byExpr, err := src.id.Eval(env.Headers, data, src.name, env.Subject)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	for _, candidate := range append([]string{byExpr}, in.ids...) {
		if candidate != "" {
			env.ID = candidate
			return env, nil
		}
	}
	env.ID = event.BodyHash(src.name, in.hashOver) // hashed only when no other id is there
	return env, nil
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

// writeAccepted answers a stored event as writeJSON would, written by
// hand: every stored webhook has this answer.
func writeAccepted(rw http.ResponseWriter, a accepted) {
	b := make([]byte, 0, 32+len(a.ID))
	b = jsonout.AppendString(append(b, `{"id":`...), a.ID)
	if a.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, "}\n"...)
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusAccepted)
	rw.Write(b)
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

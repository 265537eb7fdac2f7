// Package intercomtest provides a fake Intercom REST API (2.x) for tests: an
// in-process HTTP server, built on net/http/httptest, that checks every
// request against the contract Intercom publishes for the version in its
// Intercom-Version header (the OpenAPI descriptions in openapi/, with the
// corrections the live API needs) and answers as Intercom would, with a
// message, a contact, a contact list or an error.list.
//
// It knows the admins and contacts registered with it, records every
// request, and can be scripted to fail: the next requests answer 5xx or 429
// or an HTML 504 page, take a while, or have their connection dropped. Every
// authenticated answer carries X-RateLimit-* headers, and requests beyond
// the limit of a counting window answer 429.
//
// Like Intercom, and unlike older versions of this fake, it accepts fields
// the description does not list: the descriptions allow them.
//
// It owns the fake and its copy of the published contract; it imports
// intercom (the types) and nothing of the service's.
package intercomtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// DefaultWindow and DefaultWindowLimit are the fake's rate limit until
// SetWindowLimit changes it: Intercom's for a private app, 10,000 requests a
// minute counted in windows of 10 seconds.
const (
	DefaultWindow      = 10 * time.Second
	DefaultWindowLimit = 1666
)

// maxBody bounds the size of a request body the fake reads.
const maxBody = 4 << 20

// Request is one request the fake received, and what it answered.
type Request struct {
	Time    time.Time // when it arrived
	Method  string
	Path    string
	Version string // the Intercom-Version it was served at (the default when it had none)
	Header  http.Header
	Body    []byte

	// Message is the decoded body of a POST /messages, or nil when the body
	// was not a JSON message (malformed, or with fields of the wrong JSON
	// type, even ones its version ignores). It is set whether or not the
	// message was then accepted.
	Message *intercom.Message

	StatusCode int    // the answer's status; 0 when no answer was sent
	Response   []byte // the answer's body
}

// Option configures a Server.
type Option func(*Server)

// WithToken sets the access token the fake accepts. By default it makes up
// one; see Server.Token.
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithPermissive makes the fake a stand-in for a real workspace, so that a
// trial run works without registering anyone: a contact search by
// external_id or email that finds nobody creates the contact (a user for an
// external id, a lead for an email) and answers it, and a message to a
// contact id the fake does not know is accepted. Admins and the shape of
// every request are still checked: a wrong admin id is a configuration
// mistake worth catching.
func WithPermissive(on bool) Option { return func(s *Server) { s.permissive = on } }

// WithListener serves on l instead of a new listener on a random local port.
func WithListener(l net.Listener) Option { return func(s *Server) { s.listener = l } }

// WithRequestHook calls f with each request once it is recorded, just before
// its answer is sent, from the goroutine serving it.
func WithRequestHook(f func(Request)) Option { return func(s *Server) { s.hook = f } }

// WithRecordLimit keeps only the last n requests and messages (n > 0), so
// that a long-running fake does not grow without bound.
func WithRecordLimit(n int) Option { return func(s *Server) { s.recordLimit = n } }

// Server is a fake Intercom. Its methods are safe for concurrent use.
type Server struct {
	srv         *httptest.Server
	token       string
	permissive  bool
	listener    net.Listener
	hook        func(Request)
	recordLimit int
	done        chan struct{} // closed by Close, to end delays
	closeOnce   sync.Once

	mu        sync.Mutex
	contracts map[string]*contract // by version; shared and never modified
	admins    []intercom.Admin
	contacts  []contact
	faults    []fault
	delay     time.Duration
	limit     int // requests per window; 0 for none
	window    time.Duration
	windowEnd time.Time
	inWindow  int // requests counted in the window ending at windowEnd
	nextMsg   int
	nextReq   int
	requests  []Request
	messages  []intercom.Message
}

// contact is a contact the fake knows.
type contact struct {
	intercom.Contact
	createdAt time.Time
}

type faultKind int

const (
	faultStatus faultKind = iota + 1 // an error.list (or 429) with the status
	faultHTML504
	faultHTML200
	faultDrop
)

type fault struct {
	kind   faultKind
	status int
	n      int
}

// NewServer starts a fake Intercom. Close it when done.
func NewServer(opts ...Option) *Server {
	cs, err := contracts()
	if err != nil {
		panic(err) // the embedded descriptions are part of the package
	}
	s := &Server{
		contracts: cs,
		done:      make(chan struct{}),
		limit:     DefaultWindowLimit,
		window:    DefaultWindow,
		nextMsg:   2001, // the id in the seed's example answer
	}
	for _, o := range opts {
		o(s)
	}
	if s.token == "" {
		b := make([]byte, 12)
		rand.Read(b)
		s.token = "fake-" + hex.EncodeToString(b)
	}
	s.srv = httptest.NewUnstartedServer(s)
	if s.listener != nil {
		s.srv.Listener.Close()
		s.srv.Listener = s.listener
	}
	s.srv.Start()
	return s
}

// URL is the base URL to give the client, like intercom.BaseURLUS.
func (s *Server) URL() string { return s.srv.URL }

// Token is the access token the fake accepts.
func (s *Server) Token() string { return s.token }

// Close shuts the server down, ending any delayed requests, and waits for
// outstanding requests to finish.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.srv.Close()
}

// AddAdmin registers an admin who may send messages.
func (s *Server) AddAdmin(id, name, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admins = append(s.admins, intercom.Admin{Type: "admin", ID: id, Name: name, Email: email})
}

// AddContact registers a contact and returns it as registered: an empty ID
// becomes 24 random hex digits, as Intercom's are, and an empty Role
// becomes "user". A contact with the ID of a known one replaces it. Messages
// address it by {"type": Role, "id": ID}; searches find it by id, email and
// external_id.
func (s *Server) AddContact(c intercom.Contact) intercom.Contact {
	if c.ID == "" {
		c.ID = newContactID()
	}
	if c.Role == "" {
		c.Role = intercom.RecipientUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.putContact(c)
	return c
}

// AddUser registers a user with Intercom id id, external id externalID and
// email; it is AddContact for the common case.
func (s *Server) AddUser(id, externalID, email string) intercom.Contact {
	return s.AddContact(intercom.Contact{ID: id, Role: intercom.RecipientUser, ExternalID: externalID, Email: email})
}

// Contacts returns the contacts the fake knows, in the order they were added
// (including those a permissive search created).
func (s *Server) Contacts() []intercom.Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]intercom.Contact, 0, len(s.contacts))
	for _, c := range s.contacts {
		out = append(out, c.Contact)
	}
	return out
}

// putContact adds or replaces c. s.mu is held.
func (s *Server) putContact(c intercom.Contact) {
	for i := range s.contacts {
		if s.contacts[i].ID == c.ID {
			s.contacts[i].Contact = c
			return
		}
	}
	s.contacts = append(s.contacts, contact{Contact: c, createdAt: time.Now()})
}

func newContactID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// FailNext makes the next n requests, whatever they are, answer status with
// an error.list. A 429 carries X-RateLimit-* headers whose reset is the end
// of the current window (see SetWindowLimit). status must be 4xx or 5xx.
func (s *Server) FailNext(n, status int) {
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("intercomtest: FailNext with status %d, want 4xx or 5xx", status))
	}
	s.addFault(fault{kind: faultStatus, status: status, n: n})
}

// FailNextHTML504 makes the next n requests answer 504 with an HTML page, as
// a load balancer in front of Intercom does.
func (s *Server) FailNextHTML504(n int) { s.addFault(fault{kind: faultHTML504, n: n}) }

// AnswerNextHTML200 makes the next n requests get a 200 with an HTML page,
// as a proxy in front of Intercom may answer; nothing is created.
func (s *Server) AnswerNextHTML200(n int) { s.addFault(fault{kind: faultHTML200, n: n}) }

// DropNext makes the fake read the next n requests in full, then close their
// connection without answering: the client cannot know whether Intercom
// acted on them.
func (s *Server) DropNext(n int) { s.addFault(fault{kind: faultDrop, n: n}) }

// Faults queue up in the order they are scripted.
func (s *Server) addFault(f fault) {
	if f.n <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// SetWindowLimit answers 429 to authenticated requests beyond limit in a
// window; X-RateLimit-Limit, -Remaining and -Reset on every authenticated
// answer state it. Windows are aligned to the clock, as Intercom's are. A
// limit of 0 or less means DefaultWindowLimit, a window of 0 DefaultWindow.
//
// X-RateLimit-Reset is in unix seconds, as Intercom sends it; for windows
// that are not whole seconds it has a fraction (milliseconds, rounded up).
func (s *Server) SetWindowLimit(limit int, window time.Duration) {
	if window <= 0 {
		window = DefaultWindow
	}
	if limit <= 0 {
		limit = DefaultWindowLimit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.window = limit, window
	s.windowEnd, s.inWindow = time.Time{}, 0
}

// SetDelay makes every following request wait d before it is handled.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests returns every request received so far, in the order they were
// answered.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many of the recorded requests had method (any when
// empty) and a path starting with pathPrefix.
func (s *Server) Count(method, pathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Messages returns the messages accepted so far (answered 200), in order.
func (s *Server) Messages() []intercom.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]intercom.Message(nil), s.messages...)
}

// ServeHTTP answers one request the way Intercom would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	rec := Request{
		Time:    time.Now(),
		Method:  r.Method,
		Path:    r.URL.Path,
		Version: cmp.Or(r.Header.Get("Intercom-Version"), defaultVersion),
		Header:  r.Header.Clone(),
		Body:    body,
	}
	// Decode a message up front, so that it is recorded even when a fault
	// or a failed check answers before the message is looked at.
	if r.Method == http.MethodPost && r.URL.Path == "/messages" {
		var m intercom.Message
		if json.Unmarshal(body, &m) == nil {
			rec.Message = &m
		}
	}
	// The answer is held back until the request is recorded, so that a
	// client that has its answer finds the request in Requests.
	a := &answer{w: &recorder{header: w.Header()}, requestID: s.newRequestID()}
	a.w.Header().Set("X-Request-Id", a.requestID)
	if readErr != nil {
		a.error(http.StatusBadRequest, "parameter_invalid", "the request body could not be read: "+readErr.Error(), "")
	} else {
		s.serve(a, r, rec.Version, body, rec.Message)
	}
	rec.StatusCode = a.w.status
	rec.Response = a.w.body.Bytes()
	s.record(rec)
	if s.hook != nil {
		s.hook(rec)
	}
	switch {
	case a.drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		// The connection cannot be taken over (HTTP/2): breaking the stream
		// is the closest thing to dropping it.
		panic(http.ErrAbortHandler)
	case a.w.status != 0:
		w.WriteHeader(a.w.status)
		w.Write(rec.Response)
	}
}

// Path templates of the operations the fake serves from the descriptions.
const (
	opMessages       = "/messages"
	opSearch         = "/contacts/search"
	opContact        = "/contacts/{contact_id}"
	opByExternalID   = "/contacts/find_by_external_id/{external_id}"
	byExternalPrefix = "/contacts/find_by_external_id/"
)

func (s *Server) serve(a *answer, r *http.Request, version string, body []byte, m *intercom.Message) {
	if !s.sleep(r.Context()) {
		return // the client gave up or the fake is closing: nobody to answer
	}
	authorized := s.authorized(r.Header.Get("Authorization"))
	if s.injectFault(a, authorized) {
		return
	}
	if !authorized {
		a.error(http.StatusUnauthorized, "unauthorized", "Access Token Invalid", "")
		return
	}
	if !s.admit(a.w.Header()) {
		a.error(http.StatusTooManyRequests, "rate_limit_exceeded", s.rateLimitMessage(), "")
		return
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		a.error(http.StatusNotAcceptable, "not_acceptable", "The Accept header must allow application/json", "")
		return
	}
	c, ok := s.contracts[version]
	if !ok {
		// Intercom's wording; its descriptions give none. A version Intercom
		// knows but the fake has no description of is refused the same way.
		a.error(http.StatusBadRequest, "intercom_version_invalid", fmt.Sprintf("The requested version could not be found: %q (the fake serves %s)", version, strings.Join(intercom.SupportedVersions(), ", ")), "Intercom-Version")
		return
	}
	method, path := r.Method, r.URL.EscapedPath()
	notFound := func() { a.error(http.StatusNotFound, "not_found", "Resource Not Found", "") }
	switch {
	case method == http.MethodPost && path == opMessages && c.has(method, opMessages):
		if v, ok := jsonBody(a, r, body); ok {
			s.createMessage(a, c, v, m)
		}
	case method == http.MethodPost && path == opSearch && c.has(method, opSearch):
		if v, ok := jsonBody(a, r, body); ok {
			s.searchContacts(a, c, v)
		}
	case method == http.MethodGet && strings.HasPrefix(path, byExternalPrefix):
		id, ok := pathParam(path, byExternalPrefix)
		if !ok || !c.has(method, opByExternalID) {
			notFound()
			return
		}
		s.findByExternalID(a, id)
	case method == http.MethodGet && strings.HasPrefix(path, "/contacts/") && c.has(method, opContact):
		id, ok := pathParam(path, "/contacts/")
		if !ok {
			notFound()
			return
		}
		s.getContact(a, id)
	case method == http.MethodGet && path == "/me":
		s.me(a)
	case method == http.MethodGet && path == "/admins":
		s.listAdmins(a)
	default:
		// Intercom answers an unknown path, or a method a path does not
		// have, with 404.
		notFound()
	}
}

// pathParam is the one path segment after prefix, unescaped.
func pathParam(path, prefix string) (string, bool) {
	rest := strings.TrimPrefix(path, prefix)
	if rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	v, err := url.PathUnescape(rest)
	return v, err == nil && v != ""
}

// jsonBody checks the Content-Type and decodes the body of a POST, numbers
// as json.Number; it answers and reports false when either is wrong. An
// empty body is an empty object, which the schema then judges.
func jsonBody(a *answer, r *http.Request, body []byte) (any, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.error(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", "")
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if err != nil {
		a.error(http.StatusBadRequest, "parameter_invalid", "Invalid JSON: "+err.Error(), "")
		return nil, false
	}
	return v, true
}

// sleep waits for the configured delay. It reports false if the request's
// context ended or the server closed first.
func (s *Server) sleep(ctx context.Context) bool {
	s.mu.Lock()
	d := s.delay
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.done:
	}
	return false
}

// injectFault answers with the next scripted fault, if any, and reports
// whether it did. Error answers to authenticated requests carry the
// rate-limit headers, as Intercom's do.
func (s *Server) injectFault(a *answer, authorized bool) bool {
	s.mu.Lock()
	if len(s.faults) == 0 {
		s.mu.Unlock()
		return false
	}
	f := s.faults[0]
	if s.faults[0].n--; s.faults[0].n == 0 {
		s.faults = s.faults[1:]
	}
	switch {
	case f.status == http.StatusTooManyRequests:
		s.rollWindow(time.Now())
		s.setRateLimitHeaders(a.w.Header(), 0)
	case f.kind == faultStatus && authorized:
		s.rollWindow(time.Now())
		s.setRateLimitHeaders(a.w.Header(), max(0, s.limit-s.inWindow))
	}
	s.mu.Unlock()

	switch f.kind {
	case faultDrop:
		a.drop = true
	case faultHTML504:
		a.w.Header().Set("Content-Type", "text/html")
		a.w.WriteHeader(http.StatusGatewayTimeout)
		io.WriteString(a.w, html504)
	case faultHTML200:
		a.w.Header().Set("Content-Type", "text/html")
		a.w.WriteHeader(http.StatusOK)
		io.WriteString(a.w, "<html><body>Please wait while we check your browser.</body></html>")
	default:
		code, msg := statusError(f.status)
		if f.status == http.StatusTooManyRequests {
			msg = s.rateLimitMessage()
		}
		a.error(f.status, code, msg, "")
	}
	return true
}

const html504 = `<html>
<head><title>504 Gateway Time-out</title></head>
<body>
<center><h1>504 Gateway Time-out</h1></center>
</body>
</html>
`

// statusError is the code and message Intercom uses for a status.
func statusError(status int) (code, message string) {
	switch status {
	case http.StatusBadRequest:
		return "parameter_invalid", "Bad Request"
	case http.StatusUnauthorized:
		return "unauthorized", "Access Token Invalid"
	case http.StatusForbidden:
		return "api_plan_restricted", "Active subscription needed."
	case http.StatusNotFound:
		return "not_found", "Resource Not Found"
	case http.StatusConflict:
		return "conflict", "Multiple existing users match this email address - must be more specific using user_id"
	case http.StatusUnprocessableEntity:
		return "parameter_not_found", "Unprocessable Entity"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded", "Rate Limit Exceeded"
	case http.StatusInternalServerError:
		return "server_error", "Server Error"
	case http.StatusServiceUnavailable:
		return "service_unavailable", "Service Unavailable"
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Error " + strconv.Itoa(status)
	}
	return strings.ReplaceAll(strings.ToLower(text), " ", "_"), text
}

func (s *Server) authorized(h string) bool {
	scheme, tok, ok := strings.Cut(h, " ")
	return ok && strings.EqualFold(scheme, "Bearer") && tok == s.token
}

// admit counts an authenticated request against the window limit, puts the
// rate-limit headers on the answer, and reports whether it is within the
// limit.
func (s *Server) admit(h http.Header) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollWindow(time.Now())
	if s.inWindow >= s.limit {
		s.setRateLimitHeaders(h, 0)
		return false
	}
	s.inWindow++
	s.setRateLimitHeaders(h, s.limit-s.inWindow)
	return true
}

// rollWindow starts a new window if now is past the current one. s.mu is held.
func (s *Server) rollWindow(now time.Time) {
	if !now.Before(s.windowEnd) {
		s.windowEnd = now.Truncate(s.window).Add(s.window)
		s.inWindow = 0
	}
}

// setRateLimitHeaders sets the X-RateLimit-* headers. s.mu is held.
func (s *Server) setRateLimitHeaders(h http.Header, remaining int) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", formatReset(s.windowEnd, s.window))
}

func (s *Server) rateLimitMessage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("Exceeded rate limit of %d in %v", s.limit, s.window)
}

// formatReset formats t as unix seconds, with milliseconds (rounded up, so
// that a client waiting until then is never early) when the window is not
// whole seconds.
func formatReset(t time.Time, window time.Duration) string {
	if window%time.Second == 0 {
		return strconv.FormatInt(t.Unix(), 10)
	}
	ms := (t.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// acceptsJSON reports whether the Accept header values allow
// application/json. Intercom answers 406 to a request without one.
func acceptsJSON(values []string) bool {
	for _, v := range values {
		for _, r := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
			if err != nil {
				continue
			}
			if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
				continue
			}
			if mt == "application/json" || mt == "application/*" || mt == "*/*" {
				return true
			}
		}
	}
	return false
}

func (s *Server) me(a *answer) {
	s.mu.Lock()
	var admin *intercom.Admin
	if len(s.admins) > 0 {
		admin = &s.admins[0]
	}
	s.mu.Unlock()
	if admin == nil {
		a.error(http.StatusNotFound, "not_found", "No admin owns this token: add one with AddAdmin", "")
		return
	}
	a.json(http.StatusOK, admin)
}

func (s *Server) listAdmins(a *answer) {
	s.mu.Lock()
	admins := append([]intercom.Admin{}, s.admins...)
	s.mu.Unlock()
	a.json(http.StatusOK, struct {
		Type   string           `json:"type"`
		Admins []intercom.Admin `json:"admins"`
	}{"admin.list", admins})
}

// sentMessage is the fake's answer to an accepted message, as the
// descriptions' "admin message created" example.
type sentMessage struct {
	Type           string          `json:"type"`
	ID             string          `json:"id"`
	CreatedAt      int64           `json:"created_at"`
	MessageType    string          `json:"message_type"`
	Subject        string          `json:"subject,omitempty"`
	Body           string          `json:"body"`
	Template       string          `json:"template,omitempty"`
	Owner          *intercom.Admin `json:"owner"`
	ConversationID string          `json:"conversation_id"`
}

// createMessage checks a POST /messages body v against the contract of its
// version, then its admin and recipients against the fake's workspace.
func (s *Server) createMessage(a *answer, c *contract, v any, m *intercom.Message) {
	if e := c.checkMessage(v); e != nil {
		a.reject(e)
		return
	}
	if m == nil {
		// A field this version does not describe (cc at 2.11) has a shape
		// intercom.Message cannot hold: Intercom ignores such fields, and
		// so does the fake.
		var err error
		if m, err = c.describedMessage(v); err != nil {
			a.error(http.StatusInternalServerError, "server_error", "the fake could not decode a valid message: "+err.Error(), "")
			return
		}
	}

	s.mu.Lock()
	owner, e := s.checkPeople(v.(map[string]any), m)
	if e != nil {
		s.mu.Unlock()
		a.reject(e)
		return
	}
	id := strconv.Itoa(s.nextMsg)
	conv := strconv.Itoa(s.nextMsg + 1_000_000)
	s.nextMsg++
	s.messages = append(s.messages, *m)
	if s.recordLimit > 0 && len(s.messages) > s.recordLimit {
		s.messages = append(s.messages[:0], s.messages[len(s.messages)-s.recordLimit:]...)
	}
	s.mu.Unlock()

	created := time.Now().Unix()
	if m.CreatedAt > 0 {
		created = m.CreatedAt
	}
	sent := sentMessage{
		Type:           "admin_message",
		ID:             id,
		CreatedAt:      created,
		MessageType:    m.MessageType,
		Body:           m.Body,
		Owner:          &owner,
		ConversationID: conv,
	}
	// Subject and template are only used for email.
	if m.MessageType == intercom.MessageTypeEmail {
		sent.Subject = m.Subject
		sent.Template = m.Template
	}
	a.json(http.StatusOK, sent)
}

// detail is one entry of an error.list.
type detail = intercom.ErrorDetail

// apiError is an answer the fake refuses a request with.
type apiError struct {
	status  int
	details []detail
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, []detail{{Code: "parameter_invalid", Message: fmt.Sprintf(format, args...), Field: field}}}
}

func notFound(field, message string) *apiError {
	return &apiError{http.StatusNotFound, []detail{{Code: "not_found", Message: message, Field: field}}}
}

// checkPeople finds the sending admin and checks that every recipient is a
// contact the fake knows, with the role its type says. s.mu is held.
func (s *Server) checkPeople(v map[string]any, m *intercom.Message) (intercom.Admin, *apiError) {
	var owner intercom.Admin
	found := false
	for _, a := range s.admins {
		if a.ID == m.From.ID {
			owner, found = a, true
			break
		}
	}
	if !found {
		return owner, notFound("from.id", "Admin Not Found")
	}
	for _, field := range []string{"to", "cc", "bcc"} {
		for i, r := range recipientsOf(v[field]) {
			path := field
			if _, many := v[field].([]any); many {
				path = fmt.Sprintf("%s[%d]", field, i)
			}
			if e := s.checkRecipient(r, path); e != nil {
				return owner, e
			}
		}
	}
	return owner, nil
}

// recipientsOf reads a to, cc or bcc the schema accepted: one recipient or
// an array of them.
func recipientsOf(v any) []intercom.Recipient {
	one := func(x any) intercom.Recipient {
		o, _ := x.(map[string]any)
		t, _ := o["type"].(string)
		id, _ := o["id"].(string)
		return intercom.Recipient{Type: t, ID: id}
	}
	switch x := v.(type) {
	case map[string]any:
		return []intercom.Recipient{one(x)}
	case []any:
		out := make([]intercom.Recipient, 0, len(x))
		for _, e := range x {
			out = append(out, one(e))
		}
		return out
	}
	return nil
}

// checkRecipient answers 404, as Intercom does for an unknown user, when no
// contact has r's id and role. s.mu is held.
func (s *Server) checkRecipient(r intercom.Recipient, path string) *apiError {
	kind := "User"
	if r.Type == intercom.RecipientLead {
		kind = "Lead"
	}
	c, ok := s.contactByID(r.ID)
	switch {
	case !ok && s.permissive:
		return nil
	case !ok:
		return notFound(path+".id", kind+" Not Found")
	case c.Role != r.Type:
		return notFound(path+".type", fmt.Sprintf("%s Not Found: contact %s is a %s", kind, r.ID, c.Role))
	}
	return nil
}

// contactByID finds a contact. s.mu is held.
func (s *Server) contactByID(id string) (contact, bool) {
	for _, c := range s.contacts {
		if c.ID == id {
			return c, true
		}
	}
	return contact{}, false
}

func (s *Server) newRequestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextReq++
	return fmt.Sprintf("fake-%06d", s.nextReq)
}

func (s *Server) record(r Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if s.recordLimit > 0 && len(s.requests) > s.recordLimit {
		s.requests = append(s.requests[:0], s.requests[len(s.requests)-s.recordLimit:]...)
	}
}

// answer writes JSON answers for one request.
type answer struct {
	w         *recorder
	requestID string
	drop      bool // close the connection without answering
}

func (a *answer) json(status int, v any) {
	a.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	a.w.WriteHeader(status)
	enc := json.NewEncoder(a.w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// reject answers with e.
func (a *answer) reject(e *apiError) {
	a.json(e.status, struct {
		Type      string   `json:"type"`
		RequestID string   `json:"request_id"`
		Errors    []detail `json:"errors"`
	}{"error.list", a.requestID, e.details})
}

// error answers with Intercom's error.list of one error.
func (a *answer) error(status int, code, message, field string) {
	a.reject(&apiError{status, []detail{{Code: code, Message: message, Field: field}}})
}

// recorder holds an answer until the request is recorded.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

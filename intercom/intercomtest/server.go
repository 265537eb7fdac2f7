// Package intercomtest provides a fake Intercom REST API for tests: an
// in-process HTTP server, built on net/http/httptest, that checks every
// request against the contract of the Intercom seed (the "Admin Initiated
// Conversation" reference) and answers as Intercom would, with an
// admin_message or an error.list.
//
// It knows the admins, users and contacts registered with it, records every
// request, and can be scripted to fail: the next requests answer 5xx or 429
// or an HTML 504 page, take a while, or have their connection dropped; and a
// limit per counting window answers 429 with X-RateLimit-* headers.
//
// The fake is stricter than Intercom in one way: it rejects unknown fields
// in a message. Intercom ignores them, which would hide a misspelt field.
package intercomtest

import (
	"bytes"
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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// DefaultWindow is the length of the fake's counting window until
// SetWindowLimit changes it. Intercom counts in windows of 10 seconds.
const DefaultWindow = 10 * time.Second

// maxBody bounds the size of a request body the fake reads.
const maxBody = 4 << 20

// Request is one request the fake received, and what it answered.
type Request struct {
	Time   time.Time // when it arrived
	Method string
	Path   string
	Header http.Header
	Body   []byte

	// Message is the decoded body of a POST /messages, or nil when the body
	// was not a JSON message (malformed, or with fields of the wrong type).
	// It is set whether or not the message was then accepted.
	Message *intercom.Message

	StatusCode int    // the answer's status; 0 when no answer was sent
	Response   []byte // the answer's body
}

// Option configures a Server.
type Option func(*Server)

// WithToken sets the access token the fake accepts. By default it makes up
// one; see Server.Token.
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithPermissive makes the fake accept messages to users and contacts it
// does not know, as a stand-in for a real workspace. Admins are still
// checked: a wrong admin id is a configuration mistake worth catching.
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
	admins    []intercom.Admin
	users     []recipient
	contacts  []recipient
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

type recipient struct{ id, userID, email string }

type faultKind int

const (
	faultStatus faultKind = iota + 1 // an error.list (or 429) with the status
	faultHTML504
	faultDrop
)

type fault struct {
	kind   faultKind
	status int
	n      int
}

// NewServer starts a fake Intercom. Close it when done.
func NewServer(opts ...Option) *Server {
	s := &Server{
		done:    make(chan struct{}),
		window:  DefaultWindow,
		nextMsg: 2001, // the id in the seed's example answer
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

// AddUser registers a user, addressable by to.type "user" and any of its
// non-empty identifiers.
func (s *Server) AddUser(id, userID, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = append(s.users, recipient{id, userID, email})
}

// AddContact registers a contact (a lead), addressable by to.type "contact"
// or "lead" and its id or user_id.
func (s *Server) AddContact(id, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contacts = append(s.contacts, recipient{id: id, userID: userID})
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
// window, and puts X-RateLimit-Limit, -Remaining and -Reset on every
// authenticated answer. Windows are aligned to the clock, as Intercom's are.
// A limit of 0 or less removes the limit and the headers but still sets the
// window used by scripted 429s. A window of 0 means DefaultWindow.
//
// X-RateLimit-Reset is in unix seconds, as Intercom sends it; for windows
// that are not whole seconds it has a fraction (milliseconds, rounded up).
func (s *Server) SetWindowLimit(limit int, window time.Duration) {
	if window <= 0 {
		window = DefaultWindow
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
		Time:   time.Now(),
		Method: r.Method,
		Path:   r.URL.Path,
		Header: r.Header.Clone(),
		Body:   body,
	}
	// Decode a message up front, so that it is recorded even when a fault
	// or a failed check answers before the message is looked at.
	var decodeErr *apiError
	if r.Method == http.MethodPost && r.URL.Path == "/messages" {
		rec.Message, decodeErr = decodeMessage(body)
	}
	// The answer is held back until the request is recorded, so that a
	// client that has its answer finds the request in Requests.
	a := &answer{w: &recorder{header: w.Header()}, requestID: s.newRequestID()}
	a.w.Header().Set("X-Request-Id", a.requestID)
	if readErr != nil {
		a.error(http.StatusBadRequest, "parameter_invalid", "the request body could not be read: "+readErr.Error(), "")
	} else {
		s.serve(a, r, rec.Message, decodeErr)
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

func (s *Server) serve(a *answer, r *http.Request, m *intercom.Message, decodeErr *apiError) {
	if !s.sleep(r.Context()) {
		return // the client gave up or the fake is closing: nobody to answer
	}
	if s.injectFault(a) {
		return
	}
	if !s.authorized(r.Header.Get("Authorization")) {
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
	if v := r.Header.Get("Intercom-Version"); v != "" && !validVersion.MatchString(v) {
		a.error(http.StatusBadRequest, "intercom_version_invalid", "The requested version could not be found", "")
		return
	}
	route := func(method string, h func()) {
		if r.Method != method {
			a.error(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path, "")
			return
		}
		h()
	}
	switch r.URL.Path {
	case "/messages":
		route(http.MethodPost, func() { s.createMessage(a, r, m, decodeErr) })
	case "/me":
		route(http.MethodGet, func() { s.me(a) })
	case "/admins":
		route(http.MethodGet, func() { s.listAdmins(a) })
	default:
		a.error(http.StatusNotFound, "not_found", "Resource Not Found", "")
	}
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
// whether it did.
func (s *Server) injectFault(a *answer) bool {
	s.mu.Lock()
	if len(s.faults) == 0 {
		s.mu.Unlock()
		return false
	}
	f := s.faults[0]
	if s.faults[0].n--; s.faults[0].n == 0 {
		s.faults = s.faults[1:]
	}
	if f.status == http.StatusTooManyRequests {
		s.rollWindow(time.Now())
		s.setRateLimitHeaders(a.w.Header(), 0)
	}
	s.mu.Unlock()

	switch f.kind {
	case faultDrop:
		a.drop = true
	case faultHTML504:
		a.w.Header().Set("Content-Type", "text/html")
		a.w.WriteHeader(http.StatusGatewayTimeout)
		io.WriteString(a.w, html504)
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
	if s.limit <= 0 {
		return true
	}
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
	if s.limit > 0 {
		h.Set("X-RateLimit-Limit", strconv.Itoa(s.limit))
	}
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", formatReset(s.windowEnd, s.window))
}

func (s *Server) rateLimitMessage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit <= 0 {
		return "Rate Limit Exceeded"
	}
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

// validVersion matches the values of Intercom-Version: "2.11", "Unstable".
var validVersion = regexp.MustCompile(`^(\d+\.\d+|Unstable)$`)

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

// sentMessage is the fake's answer to an accepted message, as in the seed.
type sentMessage struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	CreatedAt   int64           `json:"created_at"`
	MessageType string          `json:"message_type"`
	Subject     string          `json:"subject,omitempty"`
	Body        string          `json:"body"`
	Template    string          `json:"template,omitempty"`
	Owner       *intercom.Admin `json:"owner"`
}

func (s *Server) createMessage(a *answer, r *http.Request, m *intercom.Message, decodeErr *apiError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.error(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json", "")
		return
	}
	if decodeErr != nil {
		a.reject(decodeErr)
		return
	}
	if e := validateMessage(m); e != nil {
		a.reject(e)
		return
	}

	s.mu.Lock()
	owner, e := s.lookup(m)
	if e != nil {
		s.mu.Unlock()
		a.reject(e)
		return
	}
	id := strconv.Itoa(s.nextMsg)
	s.nextMsg++
	s.messages = append(s.messages, *m)
	if s.recordLimit > 0 && len(s.messages) > s.recordLimit {
		s.messages = append(s.messages[:0], s.messages[len(s.messages)-s.recordLimit:]...)
	}
	s.mu.Unlock()

	sent := sentMessage{
		Type:        "admin_message",
		ID:          id,
		CreatedAt:   time.Now().Unix(),
		MessageType: m.MessageType,
		Body:        m.Body,
		Owner:       &owner,
	}
	// The seed: subject and template are only used for email.
	if m.MessageType == intercom.MessageTypeEmail {
		sent.Subject = m.Subject
		sent.Template = m.Template
		if sent.Template == "" {
			sent.Template = intercom.TemplatePlain
		}
	}
	a.json(http.StatusOK, sent)
}

// apiError is an answer the fake refuses a message with.
type apiError struct {
	status int
	intercom.ErrorDetail
}

func invalid(field, format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, intercom.ErrorDetail{Code: "parameter_invalid", Message: fmt.Sprintf(format, args...), Field: field}}
}

// decodeMessage decodes body strictly: JSON types must match the seed's
// (an admin id is a string, not a number) and unknown fields are refused.
func decodeMessage(body []byte) (*intercom.Message, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var m intercom.Message
	err := dec.Decode(&m)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err == nil {
		return &m, nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil, invalid(te.Field, "%s must be a %s, not a JSON %s", te.Field, jsonType(te.Type.String()), te.Value)
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field = strings.Trim(field, `"`)
		return nil, invalid(field, "Unknown parameter %s", field)
	}
	return nil, invalid("", "Invalid JSON: %v", err)
}

func jsonType(goType string) string {
	switch goType {
	case "string":
		return "string"
	case "bool", "*bool":
		return "boolean"
	}
	return "object"
}

// validateMessage checks m against the seed, in the order Intercom reports
// problems: the message, then its sender, then its recipient.
func validateMessage(m *intercom.Message) *apiError {
	switch m.MessageType {
	case intercom.MessageTypeEmail, intercom.MessageTypeInApp:
	case "":
		return invalid("message_type", "message_type is required: email or inapp")
	default:
		return invalid("message_type", "message_type must be email or inapp, not %q", m.MessageType)
	}
	if strings.TrimSpace(m.Body) == "" {
		return invalid("body", "Body is required")
	}
	email := m.MessageType == intercom.MessageTypeEmail
	if email && strings.TrimSpace(m.Subject) == "" {
		return &apiError{http.StatusUnprocessableEntity, intercom.ErrorDetail{Code: "parameter_not_found", Message: "No subject supplied for email message", Field: "subject"}}
	}
	if m.Template != "" {
		if !email {
			return invalid("template", "template is only valid for email messages")
		}
		if m.Template != intercom.TemplatePlain && m.Template != intercom.TemplatePersonal {
			return invalid("template", "template must be plain or personal, not %q", m.Template)
		}
	}
	switch {
	case m.From == (intercom.From{}):
		return invalid("from", `from is required: {"type":"admin","id":"..."}`)
	case m.From.Type != "admin":
		return invalid("from.type", "from.type must be admin, not %q", m.From.Type)
	case m.From.ID == "":
		return invalid("from.id", "from.id is required")
	}
	to := m.To
	switch to.Type {
	case intercom.RecipientUser, intercom.RecipientContact, intercom.RecipientLead:
	case "":
		return invalid("to.type", "to.type is required: user, contact or lead")
	default:
		return invalid("to.type", "to.type must be user, contact or lead, not %q", to.Type)
	}
	n := 0
	for _, v := range []string{to.ID, to.UserID, to.Email} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return invalid("to", "to must identify the recipient by exactly one of id, user_id or email")
	}
	if to.Email != "" && to.Type != intercom.RecipientUser {
		return invalid("to.email", "%s recipients are identified by id or user_id, not email", to.Type)
	}
	return nil
}

// lookup finds the sending admin and checks that the recipient exists.
// s.mu is held.
func (s *Server) lookup(m *intercom.Message) (intercom.Admin, *apiError) {
	var owner intercom.Admin
	found := false
	for _, a := range s.admins {
		if a.ID == m.From.ID {
			owner, found = a, true
			break
		}
	}
	if !found {
		return owner, &apiError{http.StatusNotFound, intercom.ErrorDetail{Code: "not_found", Message: "Admin Not Found", Field: "from.id"}}
	}
	if s.permissive {
		return owner, nil
	}
	to := m.To
	known, kind := s.contacts, "Contact"
	if to.Type == intercom.RecipientUser {
		known, kind = s.users, "User"
	}
	matches := 0
	for _, r := range known {
		if (to.ID != "" && r.id == to.ID) || (to.UserID != "" && r.userID == to.UserID) || (to.Email != "" && r.email == to.Email) {
			matches++
		}
	}
	switch {
	case matches == 0:
		return owner, &apiError{http.StatusNotFound, intercom.ErrorDetail{Code: "not_found", Message: kind + " Not Found", Field: "to"}}
	case matches > 1:
		code, msg := statusError(http.StatusConflict)
		return owner, &apiError{http.StatusConflict, intercom.ErrorDetail{Code: code, Message: msg, Field: "to.email"}}
	}
	return owner, nil
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
func (a *answer) reject(e *apiError) { a.error(e.status, e.Code, e.Message, e.Field) }

// error answers with Intercom's error.list.
func (a *answer) error(status int, code, message, field string) {
	a.json(status, struct {
		Type      string                 `json:"type"`
		RequestID string                 `json:"request_id"`
		Errors    []intercom.ErrorDetail `json:"errors"`
	}{"error.list", a.requestID, []intercom.ErrorDetail{{Code: code, Message: message, Field: field}}})
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

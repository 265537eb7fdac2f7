// Package intercom is a client for the parts of Intercom's REST API (2.x)
// that the bridge uses: creating admin-initiated messages (POST /messages),
// finding the contacts to address them to (POST /contacts/search, GET
// /contacts/{id}, GET /contacts/find_by_external_id/{id}) and reading admins
// (GET /me, GET /admins).
//
// The client sends exactly one HTTP request per call and never retries:
// retries belong to the caller, which knows whether a duplicate message is
// acceptable. What it does instead is pace requests so that all goroutines
// sharing a Client stay under Intercom's rate limit, and turn every failure
// into something the caller can act on with Classify.
//
// No error or other string produced by this package contains the access
// token.
//
// It imports nothing of the bridge's: it is a client of Intercom's API and
// could be used on its own.
package intercom

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/intercom-bridge/bridge/internal/jsonout"
)

// Base URLs of Intercom's regions.
const (
	BaseURLUS = "https://api.intercom.io"
	BaseURLEU = "https://api.eu.intercom.io"
	BaseURLAU = "https://api.au.intercom.io"
)

// Defaults for the zero values of Config.
const (
	DefaultRateLimitPerMinute = 10000
	DefaultWindow             = 10 * time.Second
	DefaultTimeout            = 10 * time.Second
	DefaultUserAgent          = "intercom-bridge"
)

// maxResponse bounds how much of an answer is read. Intercom's answers to
// the calls made here are a few kilobytes.
const maxResponse = 1 << 20

// Config configures a Client. Only Token is required.
type Config struct {
	BaseURL   string // BaseURLUS (the default), BaseURLEU, BaseURLAU, or a fake's URL
	Token     string // access token, sent as "Authorization: Bearer <token>"
	Version   string // Intercom-Version header, one of SupportedVersions; DefaultVersion when empty
	UserAgent string // for example "intercom-bridge/v1.2.3"; DefaultUserAgent when empty

	// RateLimitPerMinute is the app's rate limit. Intercom enforces it per
	// window of 10 seconds, so each window admits RateLimitPerMinute/6
	// requests. 0 means DefaultRateLimitPerMinute. It is where pacing
	// starts: once an answer states Intercom's limit (X-RateLimit-Limit),
	// that limit is paced to instead.
	RateLimitPerMinute int

	// Window is the length of Intercom's counting window; 0 means
	// DefaultWindow. Only tests change it, to match a fake with short windows.
	Window time.Duration

	// Timeout bounds each HTTP exchange, from sending the request to reading
	// the answer; time spent waiting for the pacer is not included. 0 means
	// DefaultTimeout.
	Timeout time.Duration

	// HTTPClient sends the requests. When nil, the Client uses its own, which
	// keeps enough idle connections to Intercom for many concurrent callers
	// and does not follow redirects (a redirect means a wrong BaseURL, and
	// following one would turn the POST into a GET).
	HTTPClient *http.Client

	// Observe, when set, is called after every HTTP exchange, from the
	// goroutine that made it. It must be fast and safe for concurrent use.
	Observe func(Observation)
}

// Observation describes one HTTP exchange with Intercom, for metrics.
type Observation struct {
	Operation          string        // "create_message", "search_contacts", "get_contact", "find_contact_by_external_id", "me" or "list_admins"
	StatusCode         int           // 0 when no answer came (connection error, timeout)
	Duration           time.Duration // the exchange, without the wait for the pacer
	Waited             time.Duration // time spent waiting for the pacer before it
	RateLimitRemaining int           // X-RateLimit-Remaining, or -1 when absent
}

// Client talks to Intercom. It is safe for concurrent use, and all its
// callers share one rate-limit budget.
type Client struct {
	base       string // without a trailing slash
	token      string // kept only to scrub it from error text
	authz      string
	version    string
	caps       Caps
	userAgent  string
	timeout    time.Duration
	httpClient *http.Client
	pacer      *pacer
	observe    func(Observation)
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("intercom: an access token is required")
	}
	if strings.ContainsFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// The token itself must not be in the error.
		return nil, errors.New("intercom: the access token contains white space or control characters")
	}
	base := cfg.BaseURL
	if base == "" {
		base = BaseURLUS
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("intercom: base URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("intercom: base URL %q: want http(s)://host[/path]", u.Redacted())
	}
	version := cmp.Or(cfg.Version, DefaultVersion)
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	if cfg.RateLimitPerMinute < 0 || cfg.Window < 0 || cfg.Timeout < 0 {
		return nil, errors.New("intercom: rate limit, window and timeout must not be negative")
	}

	c := &Client{
		base:       strings.TrimRight(u.String(), "/"),
		token:      cfg.Token,
		authz:      "Bearer " + cfg.Token,
		version:    version,
		caps:       Capabilities(version),
		userAgent:  cmp.Or(cfg.UserAgent, DefaultUserAgent),
		timeout:    cfg.Timeout,
		httpClient: cfg.HTTPClient,
		observe:    cfg.Observe,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.httpClient == nil {
		c.httpClient = newHTTPClient()
	}
	limit := cfg.RateLimitPerMinute
	if limit == 0 {
		limit = DefaultRateLimitPerMinute
	}
	window := cfg.Window
	if window == 0 {
		window = DefaultWindow
	}
	c.pacer = newPacer(limit/6, window)
	return c, nil
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             http.ProxyFromEnvironment,
			DialContext:       (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2: true,
			MaxIdleConns:      100,
			// Every worker talks to the same host; with the default of 2
			// idle connections most of them would reconnect (and redo TLS)
			// for each request.
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// CloseIdleConnections closes the connections kept for reuse. Call it when
// done with the Client, so that no connection goroutines outlive it.
func (c *Client) CloseIdleConnections() {
	c.httpClient.CloseIdleConnections()
}

// CreateMessage sends m as an admin-initiated message (POST /messages).
//
// It waits for the pacer, then sends exactly once: a failed call is not
// retried here, and Classify says what the caller should do. Two fields get
// a default when empty: From.Type becomes "admin" (the only valid value) and
// Template becomes "plain" for email, which API 2.x requires.
//
// The body follows the client's version: a single recipient is sent as an
// object, as every 2.x version accepts; several recipients, or any cc or bcc,
// as arrays, which only 2.14 and later accept. A message the version cannot
// express is refused without calling Intercom, with an error wrapping
// ErrInvalidMessage that Classify reports as Permanent (nothing was sent).
//
// A 2xx answer without a readable message id (not JSON, an HTML page, an
// empty body, or a body that stalled past the timeout) is ambiguous: the
// message may have been created, but nothing proves it. CreateMessage then
// fails with an error that Classify reports as Retryable and Uncertain, so
// that it is neither recorded as sent nor silently sent twice.
func (c *Client) CreateMessage(ctx context.Context, m Message) (*SentMessage, error) {
	body, err := EncodeMessage(c.version, m)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, "create_message", http.MethodPost, "/messages", body)
	if err != nil {
		return nil, err
	}
	var sent wireSentMessage
	decodeErr := json.Unmarshal(resp.body, &sent)
	if resp.readErr != nil || decodeErr != nil || sent.ID == "" {
		return nil, newAmbiguousAnswer("POST /messages", resp, cmp.Or(resp.readErr, decodeErr))
	}
	return sent.sentMessage(), nil
}

// EncodeMessage is the body of POST /messages for m at Intercom-Version
// version, exactly as CreateMessage sends it (see there for the defaults
// and the per-version form); `bridge render` shows it.
func EncodeMessage(version string, m Message) ([]byte, error) {
	if m.From.Type == "" {
		m.From.Type = "admin"
	}
	if m.MessageType == MessageTypeEmail && m.Template == "" {
		m.Template = TemplatePlain
	}
	w, err := wireMessage(version, m)
	if err != nil {
		return nil, err
	}
	// Bodies are HTML; escaping <, > and & as \u003c would only make the
	// request bigger and harder to read in logs and recordings.
	b, err := jsonout.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("intercom: encoding message: %w", err)
	}
	return b, nil
}

// wireMessage is the body of POST /messages for m at version.
func wireMessage(version string, m Message) (any, error) {
	if len(m.To) == 0 {
		return nil, fmt.Errorf("intercom: POST /messages: %w: no recipient", ErrInvalidMessage)
	}
	if !Capabilities(version).RecipientLists && (len(m.To) > 1 || len(m.Cc) > 0 || len(m.Bcc) > 0) {
		return nil, fmt.Errorf("intercom: POST /messages: %w: several recipients, cc and bcc need Intercom-Version 2.14 or later, not %s", ErrInvalidMessage, version)
	}
	type plain Message // without the methods
	w := struct {
		plain
		To  any `json:"to"`
		Cc  any `json:"cc,omitempty"`
		Bcc any `json:"bcc,omitempty"`
	}{plain: plain(m)}
	if len(m.To) == 1 {
		w.To = m.To[0]
	} else {
		w.To = m.To
	}
	if len(m.Cc) > 0 {
		w.Cc = m.Cc
	}
	if len(m.Bcc) > 0 {
		w.Bcc = m.Bcc
	}
	return w, nil
}

// SearchContacts returns the contacts whose field equals value (POST
// /contacts/search), field being "external_id", "email" or "id". Several
// contacts may share an email (a user and leads); an external id names at
// most one user. Only the first page of answers (50) is read: more matches
// than that for one person is a problem to report, not to page through.
func (c *Client) SearchContacts(ctx context.Context, field, value string) ([]Contact, error) {
	var q struct {
		Query struct {
			Field    string `json:"field"`
			Operator string `json:"operator"`
			Value    string `json:"value"`
		} `json:"query"`
	}
	q.Query.Field, q.Query.Operator, q.Query.Value = field, "=", value
	body, err := json.Marshal(q)
	if err != nil {
		return nil, fmt.Errorf("intercom: encoding contact search: %w", err)
	}
	resp, err := c.do(ctx, "search_contacts", http.MethodPost, "/contacts/search", body)
	if err != nil {
		return nil, err
	}
	var w wireContactList
	if err := decodeAnswer(resp, &w); err != nil {
		return nil, fmt.Errorf("intercom: POST /contacts/search: %w", err)
	}
	contacts := make([]Contact, 0, len(w.Data))
	for i := range w.Data {
		contacts = append(contacts, w.Data[i].contact())
	}
	return contacts, nil
}

// GetContact returns the contact with Intercom id id (GET /contacts/{id}).
// An unknown id is an error for which IsNotFound reports true.
func (c *Client) GetContact(ctx context.Context, id string) (*Contact, error) {
	return c.getContact(ctx, "get_contact", "/contacts/"+url.PathEscape(id))
}

// FindContactByExternalID returns the user whose external id is externalID
// (GET /contacts/find_by_external_id/{id}). Intercom offers it from 2.14 on
// and finds users only, not leads; at older versions it fails without
// calling Intercom (use SearchContacts).
func (c *Client) FindContactByExternalID(ctx context.Context, externalID string) (*Contact, error) {
	if !c.caps.FindByExternalID {
		return nil, fmt.Errorf("intercom: GET /contacts/find_by_external_id: %w: needs Intercom-Version 2.14 or later, not %s", ErrUnsupported, c.version)
	}
	return c.getContact(ctx, "find_contact_by_external_id", "/contacts/find_by_external_id/"+url.PathEscape(externalID))
}

func (c *Client) getContact(ctx context.Context, op, path string) (*Contact, error) {
	resp, err := c.do(ctx, op, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	var w wireContact
	if err := decodeAnswer(resp, &w); err != nil {
		return nil, fmt.Errorf("intercom: GET %s: %w", path, err)
	}
	if w.ID == "" {
		return nil, fmt.Errorf("intercom: GET %s: answer has no contact id", path)
	}
	ct := w.contact()
	return &ct, nil
}

// decodeAnswer decodes the body of a 2xx answer into v.
func decodeAnswer(resp *response, v any) error {
	if resp.readErr != nil {
		return fmt.Errorf("reading answer: %w", resp.readErr)
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		return fmt.Errorf("decoding answer (%s): %w", contentType(resp.header), err)
	}
	return nil
}

// Me returns the admin that owns the access token (GET /me). It is the
// cheapest way to check that a token is accepted.
func (c *Client) Me(ctx context.Context) (*Admin, error) {
	resp, err := c.do(ctx, "me", http.MethodGet, "/me", nil)
	if err != nil {
		return nil, err
	}
	var w wireAdmin
	if err := decodeAnswer(resp, &w); err != nil {
		return nil, fmt.Errorf("intercom: GET /me: %w", err)
	}
	if w.ID == "" {
		return nil, errors.New("intercom: GET /me: answer has no admin id")
	}
	return w.admin(), nil
}

// ListAdmins returns the workspace's admins (GET /admins).
func (c *Client) ListAdmins(ctx context.Context) ([]Admin, error) {
	resp, err := c.do(ctx, "list_admins", http.MethodGet, "/admins", nil)
	if err != nil {
		return nil, err
	}
	var w wireAdminList
	if err := decodeAnswer(resp, &w); err != nil {
		return nil, fmt.Errorf("intercom: GET /admins: %w", err)
	}
	admins := make([]Admin, 0, len(w.Admins))
	for i := range w.Admins {
		admins = append(admins, *w.Admins[i].admin())
	}
	return admins, nil
}

type beforeSendKey struct{}

type noWaitKey struct{}

// ErrWouldWait is the error of a call made WithoutWaiting that the pacer
// did not admit at once; nothing was sent.
var ErrWouldWait = errors.New("the pacer would make the request wait")

// WithoutWaiting returns a context that makes the call it is passed to
// fail at once with an error wrapping ErrWouldWait, nothing sent, where the
// pacer would make it wait for the rate limit. A caller with somewhere
// better to wait (a queue) uses it.
func WithoutWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, noWaitKey{}, true)
}

// MayWait reports whether ctx lets a call wait for the pacer (see
// WithoutWaiting). Client checks it itself; another implementation of a
// message sender (a test's) checks it where it would wait.
func MayWait(ctx context.Context) bool { return ctx.Value(noWaitKey{}) == nil }

// WithBeforeSend returns a context that makes the call it is passed to run
// hook once the pacer has admitted the request and just before it is
// written. If hook fails, the call fails with nothing sent (Classify says
// Retryable, not Uncertain) and the error wraps hook's. A caller that
// records "a request is on its way" does it here, so that the record does
// not also cover the wait for the pacer, which has no bound.
func WithBeforeSend(ctx context.Context, hook func() error) context.Context {
	return context.WithValue(ctx, beforeSendKey{}, hook)
}

// BeforeSend runs the hook that WithBeforeSend put in ctx, if any. Client
// calls it itself; another implementation of a message sender (a test's)
// calls it where a request would be written.
func BeforeSend(ctx context.Context) error {
	if hook, ok := ctx.Value(beforeSendKey{}).(func() error); ok {
		return hook()
	}
	return nil
}

// do waits for the pacer, makes one HTTP exchange and returns a 2xx answer.
// Any other answer is an *Error; no answer is a *transportError.
func (c *Client) do(ctx context.Context, op, method, path string, body []byte) (*response, error) {
	opText := method + " " + path
	start := time.Now()
	tk, err := c.pacer.wait(ctx)
	if err != nil {
		return nil, &transportError{op: opText, err: err}
	}
	waited := time.Since(start)
	if err := BeforeSend(ctx); err != nil {
		c.pacer.answered(tk, time.Now(), 0, rateLimit{remaining: -1})
		return nil, &transportError{op: opText, err: err}
	}

	resp, sent, err := c.send(ctx, method, path, body)
	if err != nil {
		c.pacer.answered(tk, time.Now(), 0, rateLimit{remaining: -1})
		c.report(Observation{Operation: op, Duration: time.Since(start) - waited, Waited: waited, RateLimitRemaining: -1})
		te := &transportError{op: opText, sent: sent, err: err}
		var ue *url.Error
		if errors.As(err, &ue) {
			te.err = ue.Err // its text repeats the method and URL
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			te.timeout = c.timeout
		}
		return nil, te
	}
	rl := parseRateLimit(resp.header)
	retryAt := c.pacer.answered(tk, time.Now(), resp.status, rl)
	c.report(Observation{Operation: op, StatusCode: resp.status, Duration: time.Since(start) - waited, Waited: waited, RateLimitRemaining: rl.remaining})

	if resp.status >= 200 && resp.status < 300 {
		return resp, nil
	}
	e := decodeError(resp.status, resp.header, resp.body, c.token)
	e.RetryAt = retryAt
	return nil, e
}

type response struct {
	status  int
	header  http.Header
	body    []byte
	readErr error // reading the body failed (or timed out) after the status came
}

// send makes one HTTP exchange within the client's timeout. sent reports
// whether the whole request was written: only then can Intercom have acted
// on it, which makes a failure uncertain.
func (c *Client) send(ctx context.Context, method, path string, body []byte) (_ *response, sent bool, _ error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				wrote.Store(true)
			}
		},
	})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Authorization", c.authz)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Intercom-Version", c.version)
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.httpClient.Do(req)
	if err != nil {
		return nil, wrote.Load(), err
	}
	defer resp.Body.Close()
	// A failure while reading the body does not hide the status: for an
	// error status the status decides; for a 2xx the caller decides what a
	// body it could not read means (see CreateMessage).
	data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return &response{status: resp.StatusCode, header: resp.Header, body: data, readErr: readErr}, true, nil
}

func (c *Client) report(o Observation) {
	if c.observe != nil {
		c.observe(o)
	}
}

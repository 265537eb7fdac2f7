package intercom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error is an answer from Intercom with a status other than 2xx.
//
// Its text never contains the access token: every string taken from the
// response is scrubbed of it, because proxies in front of Intercom have been
// known to echo request headers in their error pages.
type Error struct {
	StatusCode int
	RequestID  string        // from the error.list, or the X-Request-Id header
	Errors     []ErrorDetail // every entry of the error.list, in order

	// Excerpt is a short, single-line excerpt of a body that is not an
	// error.list (for example the HTML page of a 504 from a load balancer).
	Excerpt string

	// RetryAt is set on a 429: when the client's pacer lets requests through
	// again. It comes from X-RateLimit-Reset, or is one window away when that
	// header is missing.
	RetryAt time.Time
}

// ErrorDetail is one entry of Intercom's error.list.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	return "intercom: " + e.describe()
}

// describe is the error text without the package prefix, shared with
// Decision.Reason.
func (e *Error) describe() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" ")
		b.WriteString(t)
	}
	for i, d := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(d.String())
	}
	if len(e.Errors) == 0 && e.Excerpt != "" {
		b.WriteString(": ")
		b.WriteString(strconv.Quote(e.Excerpt))
	}
	if e.RequestID != "" {
		b.WriteString(" (request_id ")
		b.WriteString(e.RequestID)
		b.WriteString(")")
	}
	return b.String()
}

func (d ErrorDetail) String() string {
	var b strings.Builder
	b.WriteString(d.Code)
	if d.Field != "" {
		b.WriteString(" [")
		b.WriteString(d.Field)
		b.WriteString("]")
	}
	if d.Message != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(d.Message)
	}
	return b.String()
}

// IsUnauthorized reports whether err is Intercom rejecting the access token
// (401). The bridge uses it to report itself not ready.
func IsUnauthorized(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized
}

// IsNotFound reports whether err is Intercom answering 404: an unknown
// contact, admin or user (or one created moments ago, see RetryLater).
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// ErrInvalidMessage is wrapped by the error CreateMessage returns for a
// message it refuses to send, such as several recipients at a version that
// accepts one. Nothing was sent; Classify reports it as Permanent.
var ErrInvalidMessage = errors.New("message not sendable")

// ErrUnsupported is wrapped by the error of a call the client's
// Intercom-Version does not offer. Nothing was sent.
var ErrUnsupported = errors.New("not supported at this Intercom-Version")

// ambiguousAnswer is a 2xx answer whose body does not say what was done: the
// request may have been acted on, but there is no id to prove it.
type ambiguousAnswer struct {
	op          string // "POST /messages"
	status      int
	contentType string
	excerpt     string
	err         error // why the body was unreadable, if it was
}

func newAmbiguousAnswer(op string, resp *response, err error) *ambiguousAnswer {
	return &ambiguousAnswer{
		op:          op,
		status:      resp.status,
		contentType: contentType(resp.header),
		excerpt:     clean(stripTags(string(resp.body)), "", 80),
		err:         err,
	}
}

func (e *ambiguousAnswer) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "intercom: %s: %d %s answer (%s) without a message id: it may or may not have been created", e.op, e.status, http.StatusText(e.status), e.contentType)
	if e.err != nil {
		fmt.Fprintf(&b, ": %v", e.err)
	}
	if e.excerpt != "" {
		fmt.Fprintf(&b, "; body %q", e.excerpt)
	}
	return b.String()
}

func (e *ambiguousAnswer) Unwrap() error { return e.err }

// IsAmbiguousAnswer reports whether err is a 2xx answer to POST /messages
// without a message id (see CreateMessage).
func IsAmbiguousAnswer(err error) bool {
	var a *ambiguousAnswer
	return errors.As(err, &a)
}

// contentType names the type of an answer's body for error text.
func contentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return "content type " + clean(ct, "", 80)
	}
	return "no content type"
}

// maxExcerpt bounds Error.Excerpt, in bytes.
const maxExcerpt = 200

// decodeError builds the *Error for a non-2xx answer. It never fails: a body
// that is not an error.list becomes an excerpt. Every string taken from the
// body is scrubbed of token.
func decodeError(status int, header http.Header, body []byte, token string) *Error {
	e := &Error{StatusCode: status}
	var list struct {
		Type      string        `json:"type"`
		RequestID string        `json:"request_id"`
		Errors    []ErrorDetail `json:"errors"`
		// Older answers carry a single error at the top level.
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &list) == nil {
		e.RequestID = list.RequestID
		for _, d := range list.Errors {
			if d == (ErrorDetail{}) {
				continue
			}
			e.Errors = append(e.Errors, ErrorDetail{
				Code:    clean(d.Code, token, maxExcerpt),
				Message: clean(d.Message, token, maxExcerpt),
				Field:   clean(d.Field, token, maxExcerpt),
			})
		}
		if len(e.Errors) == 0 && (list.Code != "" || list.Message != "") {
			e.Errors = append(e.Errors, ErrorDetail{
				Code:    clean(list.Code, token, maxExcerpt),
				Message: clean(list.Message, token, maxExcerpt),
			})
		}
	}
	if e.RequestID == "" {
		e.RequestID = header.Get("X-Request-Id")
	}
	e.RequestID = clean(e.RequestID, token, 100)
	if len(e.Errors) == 0 {
		e.Excerpt = clean(stripTags(string(body)), token, maxExcerpt)
	}
	return e
}

// stripTags removes HTML tags so that an error page reads as its text:
// "<title>504 Gateway Time-out</title>" becomes "504 Gateway Time-out".
// It is deliberately naive; the excerpt is for people reading logs.
func stripTags(s string) string {
	if !strings.Contains(s, "<") {
		return s
	}
	var b strings.Builder
	inTag := false
	for _, r := range s {
		switch {
		case r == '<':
			inTag = true
			b.WriteByte(' ')
		case r == '>' && inTag:
			inTag = false
		case !inTag:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clean makes s safe and short for one log line: invalid UTF-8 and control
// characters are dropped, runs of white space collapse to one space, the
// token is redacted, and the result is cut to at most max bytes. Redaction
// comes after the clean-up, which could otherwise join the halves of a
// token split by a control character, and before the cut, which could
// otherwise leave part of one.
func clean(s, token string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	s = b.String()
	if token != "" {
		s = strings.ReplaceAll(s, token, "[redacted]")
	}
	if len(s) > max {
		cut := max - len("…")
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// transportError is a request that got no HTTP answer: the pacer wait was
// cancelled, the connection failed, or no response came in time.
type transportError struct {
	op      string        // "POST /messages"
	sent    bool          // the whole request was written to the connection
	timeout time.Duration // set when the client's own per-request timeout fired
	err     error
}

func (e *transportError) Error() string {
	if e.timeout > 0 {
		return fmt.Sprintf("intercom: %s: no answer within %v", e.op, e.timeout)
	}
	if errors.Is(e.err, io.EOF) || errors.Is(e.err, io.ErrUnexpectedEOF) {
		return fmt.Sprintf("intercom: %s: connection closed without an answer", e.op)
	}
	return fmt.Sprintf("intercom: %s: %v", e.op, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// Class is what a caller should do about a failed request.
type Class int

const (
	// NoError is the class of a nil error.
	NoError Class = iota
	// RateLimited: wait until Decision.RetryAt, then retry. It is not a
	// failed attempt: the request was refused before Intercom acted on it.
	RateLimited
	// Retryable: retry with backoff and jitter. Check Decision.Uncertain.
	Retryable
	// RetryLater: retry a few times, then give up. Intercom answers 404 for
	// a user created moments ago.
	RetryLater
	// Permanent: the request is wrong or forbidden; retrying cannot help.
	Permanent
)

func (c Class) String() string {
	switch c {
	case NoError:
		return "no_error"
	case RateLimited:
		return "rate_limited"
	case Retryable:
		return "retryable"
	case RetryLater:
		return "retry_later"
	case Permanent:
		return "permanent"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Decision is the classification of an error returned by a Client.
type Decision struct {
	Class Class

	// Uncertain is set when the request may have reached Intercom and been
	// acted on (a 5xx, a timeout or a broken connection after the request
	// was written). Intercom has no idempotency key, so retrying may send a
	// second message; the caller decides whether that is acceptable.
	Uncertain bool

	// RetryAt is when to retry a RateLimited request.
	RetryAt time.Time

	// Reason says why, for logs and dead letters: the status, Intercom's
	// codes and messages, or the connection failure.
	Reason string
}

// Classify tells the caller how to treat err, an error returned by a Client.
// Errors that did not come from a Client are Permanent, except context
// cancellation and network errors, which are Retryable and Uncertain because
// nothing says whether a request was sent.
func Classify(err error) Decision {
	if err == nil {
		return Decision{Class: NoError}
	}
	var ie *Error
	if errors.As(err, &ie) {
		return classifyStatus(ie)
	}
	var te *transportError
	if errors.As(err, &te) {
		return classifyTransport(te)
	}
	var ae *ambiguousAnswer
	if errors.As(err, &ae) {
		// Checked before the cause: a read that timed out is not a
		// connection that failed before sending.
		return Decision{Class: Retryable, Uncertain: true, Reason: strings.TrimPrefix(ae.Error(), "intercom: ")}
	}
	if errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrUnsupported) {
		return Decision{Class: Permanent, Reason: strings.TrimPrefix(err.Error(), "intercom: ")}
	}
	var ne net.Error
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) {
		return Decision{Class: Retryable, Uncertain: true, Reason: err.Error()}
	}
	return Decision{Class: Permanent, Reason: err.Error()}
}

func classifyStatus(e *Error) Decision {
	d := Decision{Reason: e.describe()}
	switch s := e.StatusCode; {
	case s == http.StatusTooManyRequests:
		d.Class = RateLimited
		d.RetryAt = e.RetryAt
		if !e.RetryAt.IsZero() {
			d.Reason += "; retry at " + e.RetryAt.UTC().Format("15:04:05.000Z")
		}
	case s == http.StatusNotFound:
		d.Class = RetryLater
	case s == http.StatusRequestTimeout:
		// The server gave up waiting for the request: it was not processed.
		d.Class = Retryable
	case s == http.StatusGatewayTimeout:
		// A proxy in front of Intercom stopped waiting: Intercom may still
		// have created the message.
		d.Class = Retryable
		d.Uncertain = true
	case s >= 500:
		// Intercom itself answered with an error: the message was not
		// created. Treating these as uncertain would turn every outage
		// into possible duplicates (or dead letters, with on_uncertain:
		// dead_letter).
		d.Class = Retryable
	default:
		// 400, 401, 403, 406, 409, 422 and the rest: asking again will not
		// change the answer. A 3xx lands here too: the client does not follow
		// redirects, and one means the base URL is wrong.
		d.Class = Permanent
	}
	return d
}

func classifyTransport(e *transportError) Decision {
	reason := strings.TrimPrefix(e.Error(), "intercom: ")
	if e.sent {
		reason += " (after the request was sent: Intercom may have acted on it)"
	} else {
		reason += " (before the request was sent)"
	}
	return Decision{Class: Retryable, Uncertain: e.sent, Reason: reason}
}

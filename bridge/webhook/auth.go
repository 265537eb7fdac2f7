package webhook

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Scheme names a way of authenticating webhook senders.
type Scheme string

// The supported schemes.
const (
	// SchemeStandardWebhooks is https://www.standardwebhooks.com/ (Svix and others):
	// webhook-id, webhook-timestamp and webhook-signature headers.
	SchemeStandardWebhooks Scheme = "standard-webhooks"
	// SchemeHMACSHA256 is an HMAC-SHA256 of the raw body in a single header,
	// as GitHub (X-Hub-Signature-256: sha256=<hex>) and many others do.
	SchemeHMACSHA256 Scheme = "hmac-sha256"
	// SchemeStripe is Stripe's Stripe-Signature header: t=<unix>,v1=<hex
	// HMAC-SHA256 of "t.body">.
	SchemeStripe Scheme = "stripe"
	// SchemeBearer is a shared token in "Authorization: Bearer <token>".
	SchemeBearer Scheme = "bearer"
	// SchemeNone accepts every request. It must be chosen explicitly.
	SchemeNone Scheme = "none"
)

// Defaults applied by NewVerifier when the corresponding field is empty.
const (
	DefaultHMACHeader = "X-Signature-256"
	DefaultTolerance  = 5 * time.Minute
)

// Encodings of an hmac-sha256 signature.
const (
	EncodingHex    = "hex"
	EncodingBase64 = "base64"
)

// whsecPrefix marks a standard-webhooks secret; the rest is base64.
const whsecPrefix = "whsec_"

// AuthConfig configures how one webhook source authenticates its sender.
type AuthConfig struct {
	Scheme string
	// Secrets holds one or more secrets; every one of them is accepted, so
	// a secret can be rotated without downtime by adding the new one,
	// switching the sender, then removing the old one.
	// standard-webhooks: "whsec_<base64>" or the bare base64;
	// stripe: the endpoint secret as shown ("whsec_...", used as it is);
	// hmac-sha256: the raw secret; bearer: the tokens.
	Secrets []string
	// Header holds the signature (hmac-sha256 only); default DefaultHMACHeader.
	Header string
	// Prefix precedes the signature in Header (hmac-sha256 only), e.g. "sha256=".
	Prefix string
	// Encoding of the signature (hmac-sha256 only): "hex" (default) or "base64".
	Encoding string
	// Tolerance is the largest accepted difference between the signed
	// timestamp and now (standard-webhooks and stripe); default
	// DefaultTolerance.
	Tolerance time.Duration
}

// Problem is one thing wrong with an AuthConfig: Key is the setting
// ("scheme", "secret", "encoding"; "" for the whole block), Msg says what
// is wrong. It never contains a secret.
type Problem struct {
	Key, Msg string
}

func (p Problem) Error() string {
	if p.Key == "" {
		return "webhook auth: " + p.Msg
	}
	return "webhook auth: " + p.Key + ": " + p.Msg
}

// Schemes lists the scheme names, as the config file spells them.
var Schemes = []Scheme{SchemeStandardWebhooks, SchemeStripe, SchemeHMACSHA256, SchemeBearer, SchemeNone}

func schemeList() string {
	names := make([]string, len(Schemes))
	for i, s := range Schemes {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Problems lists everything wrong with c; the config file reports each
// at its key, NewVerifier refuses c if there is any.
func (c AuthConfig) Problems() []Problem {
	var out []Problem
	add := func(key, format string, args ...any) {
		out = append(out, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	scheme := Scheme(c.Scheme)
	switch scheme {
	case SchemeStandardWebhooks, SchemeStripe, SchemeHMACSHA256, SchemeBearer:
		if len(c.Secrets) == 0 {
			add("secret", "is required for scheme %s", scheme)
		}
		for i, s := range c.Secrets {
			if err := validateSecret(scheme, s); err != nil {
				add(fmt.Sprintf("secrets[%d]", i), "%v", err)
			}
		}
	case SchemeNone:
		// A secret next to "none" means the operator expected the secret to
		// be checked; failing loudly beats silently accepting everyone.
		if len(c.Secrets) > 0 {
			add("", "scheme none takes no secret")
		}
	case "":
		// An empty scheme is refused so that an unauthenticated endpoint
		// only ever exists because someone wrote "none".
		add("scheme", "is required: one of %s (none must be written out)", schemeList())
	default:
		add("scheme", "unknown scheme %q (want one of %s)", c.Scheme, schemeList())
	}
	if scheme == SchemeHMACSHA256 {
		if c.Header != "" && !validHeaderName(c.Header) {
			add("header", "%q is not a valid HTTP header name", c.Header)
		}
		switch c.Encoding {
		case "", EncodingHex, EncodingBase64:
		default:
			add("encoding", "unknown encoding %q (want hex or base64)", c.Encoding)
		}
	} else {
		for _, k := range []struct{ key, value string }{{"header", c.Header}, {"prefix", c.Prefix}, {"encoding", c.Encoding}} {
			if k.value != "" {
				add(k.key, "is only used by scheme hmac-sha256")
			}
		}
	}
	if scheme.SignsTimestamp() {
		if c.Tolerance < 0 {
			add("tolerance", "must not be negative")
		}
	} else if c.Tolerance != 0 {
		add("tolerance", "is only used by schemes standard-webhooks and stripe")
	}
	return out
}

// Validate reports every problem in c at once, joined with errors.Join.
func (c AuthConfig) Validate() error {
	var errs []error
	for _, p := range c.Problems() {
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// SignsTimestamp reports whether the scheme signs a timestamp, which must
// lie within a tolerance of now: a captured request can be replayed only
// that long.
func (s Scheme) SignsTimestamp() bool { return s == SchemeStandardWebhooks || s == SchemeStripe }

// WithDefaults fills what c leaves out: the hmac-sha256 header and
// encoding, the tolerance of the schemes that sign a timestamp.
func (c AuthConfig) WithDefaults() AuthConfig {
	scheme := Scheme(c.Scheme)
	if scheme == SchemeHMACSHA256 {
		c.Header = cmp.Or(c.Header, DefaultHMACHeader)
		c.Encoding = cmp.Or(c.Encoding, EncodingHex)
	}
	if scheme.SignsTimestamp() {
		c.Tolerance = cmp.Or(c.Tolerance, DefaultTolerance)
	}
	return c
}

func validateSecret(scheme Scheme, s string) error {
	if s == "" {
		return errors.New("secret is empty")
	}
	if scheme == SchemeStandardWebhooks {
		_, err := decodeStandardSecret(s)
		return err
	}
	return nil
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// A Verifier decides whether a webhook request comes from the configured
// sender. Verify returns nil when it does and an *AuthError when it does not. Implementations are safe for concurrent use.
type Verifier interface {
	Verify(h http.Header, body []byte, now time.Time) error
}

// A HeaderChecker is a Verifier that can refuse a request from its headers
// alone, before its body is read: a missing or malformed signature, a
// stale timestamp, a wrong bearer token. Verify still checks everything.
type HeaderChecker interface {
	CheckHeaders(h http.Header, now time.Time) error
}

// CheckHeaders refuses what v can refuse without the body; nil when v
// needs the body to decide.
func CheckHeaders(v Verifier, h http.Header, now time.Time) error {
	if hc, ok := v.(HeaderChecker); ok {
		return hc.CheckHeaders(h, now)
	}
	return nil
}

// An IDSigner is a Verifier whose signature covers an event id: the
// sender's message id (standard-webhooks), the payload's id (stripe).
type IDSigner interface {
	SignedID(h http.Header, body []byte) string
}

// SignedID is the event id that v's signature covers, for a request v
// verified: an id a replay cannot change. "" when the scheme signs none.
func SignedID(v Verifier, h http.Header, body []byte) string {
	if s, ok := v.(IDSigner); ok {
		return s.SignedID(h, body)
	}
	return ""
}

// NewVerifier validates c and returns the Verifier for its scheme.
func NewVerifier(c AuthConfig) (Verifier, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	switch Scheme(c.Scheme) {
	case SchemeStandardWebhooks:
		return newStandardVerifier(c)
	case SchemeStripe:
		return newStripeVerifier(c), nil
	case SchemeHMACSHA256:
		return newHMACVerifier(c), nil
	case SchemeBearer:
		return newBearerVerifier(c), nil
	default: // SchemeNone; Validate rejected everything else.
		return noneVerifier{}, nil
	}
}

// AuthError is returned when a request fails authentication. Reason is
// short, fixed text meant for the sender (the HTTP layer answers 401 with
// it); it never contains a secret, an expected signature or any part of the
// request.
type AuthError struct {
	Reason string
}

func (e *AuthError) Error() string { return "webhook: " + e.Reason }

// Mismatch reasons, named because the tests and fuzz targets check for them.
const (
	reasonSignatureMismatch = "signature does not match"
	reasonTokenMismatch     = "bearer token does not match"
)

func authError(reason string) error { return &AuthError{Reason: reason} }

// noneVerifier accepts every request (scheme "none").
type noneVerifier struct{}

func (noneVerifier) Verify(http.Header, []byte, time.Time) error { return nil }

// bearerVerifier checks "Authorization: Bearer <token>" against the secrets.
type bearerVerifier struct {
	// Digests rather than the tokens themselves: comparing fixed-size
	// digests keeps the comparison constant-time even in the token length.
	digests [][]byte
}

func newBearerVerifier(c AuthConfig) *bearerVerifier {
	v := &bearerVerifier{digests: make([][]byte, len(c.Secrets))}
	for i, s := range c.Secrets {
		d := sha256.Sum256([]byte(s))
		v.digests[i] = d[:]
	}
	return v
}

// CheckHeaders is the whole check: a bearer token does not cover the body.
func (v *bearerVerifier) CheckHeaders(h http.Header, now time.Time) error {
	return v.Verify(h, nil, now)
}

func (v *bearerVerifier) Verify(h http.Header, _ []byte, _ time.Time) error {
	auth := h.Get("Authorization")
	if auth == "" {
		return authError("missing Authorization header")
	}
	scheme, token, _ := strings.Cut(auth, " ")
	token = strings.TrimLeft(token, " ") // RFC 6750: "Bearer" 1*SP token
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return authError("malformed Authorization header: want Bearer token")
	}
	got := sha256.Sum256([]byte(token))
	if !matchAny([][]byte{got[:]}, v.digests) {
		return authError(reasonTokenMismatch)
	}
	return nil
}

// matchAny reports whether any of got equals any of want. It compares every
// pair in constant time and never stops early, so the time taken does not
// tell which secret (or which of several signatures) matched.
func matchAny(got, want [][]byte) bool {
	match := 0
	for _, w := range want {
		for _, g := range got {
			match |= subtle.ConstantTimeCompare(g, w)
		}
	}
	return match == 1
}

// decodeStandardSecret returns the key bytes of a standard-webhooks secret,
// "whsec_<base64>" or the bare base64 (padded or not).
func decodeStandardSecret(s string) ([]byte, error) {
	b64 := strings.TrimPrefix(s, whsecPrefix)
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		// The base64 error only names a byte offset, never the input.
		return nil, fmt.Errorf("secret is not valid base64 after the optional %q prefix: %w", whsecPrefix, err)
	}
	if len(key) == 0 {
		return nil, errors.New("secret decodes to an empty key")
	}
	return key, nil
}

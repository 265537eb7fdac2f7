package webhook

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// headerStripeSignature carries Stripe's signature:
// "t=<unix seconds>,v1=<hex>[,v1=<hex>...]", and in test mode a v0 entry
// that is signed with another secret.
const headerStripeSignature = "Stripe-Signature"

// Reasons of a refused Stripe-Signature; fixed, so that nothing of the
// request is echoed.
const (
	reasonStripeMissing   = "missing Stripe-Signature header"
	reasonStripeMalformed = "malformed Stripe-Signature header: want t=<unix seconds>,v1=<hex HMAC-SHA256>"
	reasonStripeNoV1      = "no v1 signature in Stripe-Signature header"
)

// stripeVerifier checks Stripe's webhook signature: HMAC-SHA256 over
// "{t}.{body}" with the endpoint secret. Stripe uses the secret as it is
// shown ("whsec_..."), as raw bytes, not decoded as standard-webhooks does.
type stripeVerifier struct {
	keys      []*macKey
	tolerance time.Duration
}

func newStripeVerifier(c AuthConfig) *stripeVerifier {
	v := &stripeVerifier{tolerance: cmp.Or(c.Tolerance, DefaultTolerance)}
	for _, s := range c.Secrets {
		v.keys = append(v.keys, newMACKey([]byte(s)))
	}
	return v
}

// CheckHeaders refuses a missing or malformed header and a stale
// timestamp, before the body is read.
func (v *stripeVerifier) CheckHeaders(h http.Header, now time.Time) error {
	_, _, err := v.header(h, now)
	return err
}

func (v *stripeVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	ts, sigs, err := v.header(h, now)
	if err != nil {
		return err
	}
	// The timestamp is signed as sent, like standard-webhooks'.
	if !matchAny(sigs, sums(v.keys, stripeSigned(ts, body)...)) {
		return authError(reasonSignatureMismatch)
	}
	return nil
}

// SignedID is the payload's id ("evt_..."): the signature covers the
// body, and Stripe sends a retry of an event with the same id.
func (v *stripeVerifier) SignedID(_ http.Header, body []byte) string {
	var p struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	id, _ := p.ID.(string)
	return id
}

func (v *stripeVerifier) header(h http.Header, now time.Time) (ts string, sigs [][]byte, err error) {
	value := h.Get(headerStripeSignature)
	if strings.TrimSpace(value) == "" {
		return "", nil, authError(reasonStripeMissing)
	}
	ts, sigs, err = parseStripeSignature(value)
	if err != nil {
		return "", nil, err
	}
	unix, _ := parseUnixSeconds(ts) // parseStripeSignature checked it
	// Before the signature, so that a captured request cannot be replayed
	// once the tolerance has passed.
	if err := checkTimestamp(unix, now, v.tolerance); err != nil {
		return "", nil, err
	}
	return ts, sigs, nil
}

// parseStripeSignature returns the timestamp, as sent, and the decoded v1
// signatures of a Stripe-Signature header: comma-separated key=value
// pairs. Exactly one t, of decimal digits; at least one v1, each a hex
// HMAC-SHA256 (several while Stripe rolls the endpoint secret). Other keys
// (v0, Stripe's test-mode scheme) are skipped, as Stripe's libraries do.
func parseStripeSignature(header string) (ts string, sigs [][]byte, err error) {
	seenT := false
	for _, pair := range strings.Split(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || key == "" {
			return "", nil, authError(reasonStripeMalformed)
		}
		switch key {
		case "t":
			if _, ok := parseUnixSeconds(value); !ok || seenT {
				// Two timestamps would leave open which one was signed.
				return "", nil, authError(reasonStripeMalformed)
			}
			ts, seenT = value, true
		case "v1":
			sig, err := hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				return "", nil, authError(reasonStripeMalformed)
			}
			sigs = append(sigs, sig)
		}
	}
	if !seenT {
		return "", nil, authError(reasonStripeMalformed)
	}
	if len(sigs) == 0 {
		return "", nil, authError(reasonStripeNoV1)
	}
	return ts, sigs, nil
}

// stripeSigned is what Stripe signs: "{t}.{body}".
func stripeSigned(ts string, body []byte) [][]byte {
	return [][]byte{[]byte(ts), {'.'}, body}
}

// SignStripe signs body the way Stripe does and returns the value for the
// Stripe-Signature header, "t=<unix>,v1=<hex>". secret is the endpoint
// secret as Stripe shows it ("whsec_...").
func SignStripe(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "t=" + t + ",v1=" + hex.EncodeToString(newMACKey([]byte(secret)).sum(stripeSigned(t, body)...))
}

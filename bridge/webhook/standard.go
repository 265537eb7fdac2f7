package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// standardHeaders names the three headers of a Standard Webhooks request,
// with the reasons that name them when they are missing.
type standardHeaders struct {
	id, timestamp, signature                      string
	missingID, missingTimestamp, missingSignature string
}

func newStandardHeaders(prefix string) standardHeaders {
	lower := strings.ToLower(prefix)
	return standardHeaders{
		id: prefix + "-Id", timestamp: prefix + "-Timestamp", signature: prefix + "-Signature",
		missingID:        "missing " + lower + "-id header",
		missingTimestamp: "missing " + lower + "-timestamp header",
		missingSignature: "missing " + lower + "-signature header",
	}
}

// The spec's names, and the svix- names that Svix sends by default (so
// Clerk, Resend and every other Svix customer): the same algorithm, and
// Svix's own receiver reads both.
var (
	webhookHeaders = newStandardHeaders("Webhook")
	svixHeaders    = newStandardHeaders("Svix")
)

// reasonMissingBoth is the answer to a request with neither set.
const reasonMissingBoth = "missing webhook-id (or svix-id) header"

// headerSet picks the set of headers a request uses: webhook-* when it
// carries any of them, else svix-* when it carries any of those. A request
// is read with one set only, never a mix, so that the id, timestamp and
// signature checked are the ones the sender signed together.
func headerSet(h http.Header) (standardHeaders, bool) {
	for _, set := range []standardHeaders{webhookHeaders, svixHeaders} {
		for _, name := range []string{set.id, set.timestamp, set.signature} {
			if len(h.Values(name)) > 0 {
				return set, true
			}
		}
	}
	return webhookHeaders, false
}

// standardVerifier implements https://www.standardwebhooks.com/: the
// signature is HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}".
type standardVerifier struct {
	keys      []*macKey
	tolerance time.Duration
}

func newStandardVerifier(c AuthConfig) (*standardVerifier, error) {
	v := &standardVerifier{tolerance: c.Tolerance}
	if v.tolerance == 0 {
		v.tolerance = DefaultTolerance
	}
	for i, s := range c.Secrets {
		key, err := decodeStandardSecret(s)
		if err != nil {
			return nil, fmt.Errorf("webhook auth: secrets[%d]: %w", i, err)
		}
		v.keys = append(v.keys, newMACKey(key))
	}
	return v, nil
}

// CheckHeaders refuses missing headers, a stale timestamp and malformed
// signatures, before the body is read.
func (v *standardVerifier) CheckHeaders(h http.Header, now time.Time) error {
	_, _, _, err := v.headers(h, now)
	return err
}

func (v *standardVerifier) Verify(h http.Header, body []byte, now time.Time) error {
	id, ts, sigs, err := v.headers(h, now)
	if err != nil {
		return err
	}
	// The header string is signed as sent, not a re-formatted number.
	if !matchAny(sigs, sums(v.keys, standardSigned(id, ts, body)...)) {
		return authError(reasonSignatureMismatch)
	}
	return nil
}

// SignedID is the message id the signature covers: webhook-id, or svix-id
// when the request uses the svix- headers.
func (v *standardVerifier) SignedID(h http.Header, _ []byte) string {
	set, _ := headerSet(h)
	return h.Get(set.id)
}

// headers checks and returns the id, the timestamp as sent and the
// signatures.
func (v *standardVerifier) headers(h http.Header, now time.Time) (id, ts string, sigs [][]byte, err error) {
	set, found := headerSet(h)
	if !found {
		return "", "", nil, authError(reasonMissingBoth)
	}
	id = h.Get(set.id)
	ts = h.Get(set.timestamp)
	sigHeader := strings.Join(h.Values(set.signature), " ")
	switch {
	case id == "":
		return "", "", nil, authError(set.missingID)
	case ts == "":
		return "", "", nil, authError(set.missingTimestamp)
	case strings.TrimSpace(sigHeader) == "":
		return "", "", nil, authError(set.missingSignature)
	}

	unix, ok := parseUnixSeconds(ts)
	if !ok {
		return "", "", nil, authError("malformed webhook-timestamp header")
	}
	// The timestamp is checked before the signature, so that a captured
	// request cannot be replayed after the tolerance has passed.
	if err := checkTimestamp(unix, now, v.tolerance); err != nil {
		return "", "", nil, err
	}
	if sigs, err = parseStandardSignatures(sigHeader); err != nil {
		return "", "", nil, err
	}
	return id, ts, sigs, nil
}

// parseStandardSignatures returns the decoded v1 signatures of a
// webhook-signature header: a space-separated list of "<version>,<base64>".
// Entries of other versions (for example the asymmetric "v1a") are skipped,
// as the spec asks; a list that is not of that shape is malformed.
func parseStandardSignatures(header string) ([][]byte, error) {
	var sigs [][]byte
	for _, entry := range strings.Fields(header) {
		version, value, ok := strings.Cut(entry, ",")
		if !ok || version == "" || value == "" {
			return nil, authError("malformed webhook-signature header")
		}
		if version != "v1" {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(sig) != sha256.Size {
			return nil, authError("malformed webhook-signature header")
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return nil, authError("no v1 signature in webhook-signature header")
	}
	return sigs, nil
}

// parseUnixSeconds parses a webhook-timestamp: decimal digits only. A sign,
// spaces or a fraction are refused rather than tolerated, since the string
// is part of the signed content and must be unambiguous.
func parseUnixSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// checkTimestamp reports whether ts (unix seconds) lies within tolerance of now.
func checkTimestamp(ts int64, now time.Time, tolerance time.Duration) error {
	// Decide far-off timestamps on whole seconds first: time.Unix of an
	// extreme value would overflow time.Time's internal representation and
	// make now.Sub meaningless. The unsigned subtraction is exact.
	nowSec := now.Unix()
	limit := uint64(tolerance/time.Second) + 1
	switch {
	case ts < nowSec && uint64(nowSec)-uint64(ts) > limit:
		return authError("timestamp too old")
	case ts > nowSec && uint64(ts)-uint64(nowSec) > limit:
		return authError("timestamp too new")
	}
	age := now.Sub(time.Unix(ts, 0))
	switch {
	case age > tolerance:
		return authError("timestamp too old")
	case age < -tolerance:
		return authError("timestamp too new")
	}
	return nil
}

// standardSigned is what a Standard Webhooks sender signs:
// "{webhook-id}.{webhook-timestamp}.{body}".
func standardSigned(id, ts string, body []byte) [][]byte {
	return [][]byte{[]byte(id), {'.'}, []byte(ts), {'.'}, body}
}

// SignStandard signs a request the way a Standard Webhooks sender does and
// returns the value for the webhook-signature header, "v1,<base64>". The
// webhook-timestamp header must carry ts as unix seconds
// (strconv.FormatInt(ts.Unix(), 10)). secret is "whsec_<base64>" or bare
// base64.
func SignStandard(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeStandardSecret(secret)
	if err != nil {
		return "", fmt.Errorf("webhook: sign: %w", err)
	}
	sig := newMACKey(key).sum(standardSigned(id, strconv.FormatInt(ts.Unix(), 10), body)...)
	return "v1," + base64.StdEncoding.EncodeToString(sig), nil
}

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"
)

// macKey is one secret with a pool of HMAC-SHA256s keyed with it: Reset
// brings a used one back to its keyed state, so that checking a request
// does not hash the secret into a new one each time.
type macKey struct {
	macs sync.Pool // of hash.Hash
}

func newMACKey(secret []byte) *macKey {
	k := &macKey{}
	k.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return k
}

// sum returns the HMAC of parts, written one after the other.
func (k *macKey) sum(parts ...[]byte) []byte {
	mac := k.macs.Get().(hash.Hash)
	for _, p := range parts {
		mac.Write(p)
	}
	sum := mac.Sum(nil)
	mac.Reset()
	k.macs.Put(mac)
	return sum
}

// sums returns the HMAC of parts under each key.
func sums(keys []*macKey, parts ...[]byte) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = k.sum(parts...)
	}
	return out
}

// hmacVerifier checks an HMAC-SHA256 of the raw body carried in one header,
// optionally after a prefix (GitHub: "X-Hub-Signature-256: sha256=<hex>").
type hmacVerifier struct {
	keys     []*macKey
	header   string // canonical form, used in error reasons too
	prefix   string
	encoding string

	// Reasons are built once: they name the configured header, which is
	// what the sender needs to know, and nothing from the request.
	reasonMissing, reasonNoPrefix, reasonMalformed string
}

func newHMACVerifier(c AuthConfig) *hmacVerifier {
	v := &hmacVerifier{
		header:   http.CanonicalHeaderKey(c.Header),
		prefix:   c.Prefix,
		encoding: c.Encoding,
	}
	if v.header == "" {
		v.header = DefaultHMACHeader
	}
	if v.encoding == "" {
		v.encoding = EncodingHex
	}
	for _, s := range c.Secrets {
		v.keys = append(v.keys, newMACKey([]byte(s)))
	}
	v.reasonMissing = "missing " + v.header + " header"
	v.reasonNoPrefix = "malformed " + v.header + " header: want prefix " + v.prefix
	v.reasonMalformed = "malformed " + v.header + " header: want " + v.encoding + " HMAC-SHA256"
	return v
}

// CheckHeaders refuses a missing or malformed signature header.
func (v *hmacVerifier) CheckHeaders(h http.Header, _ time.Time) error {
	_, err := v.signature(h)
	return err
}

func (v *hmacVerifier) Verify(h http.Header, body []byte, _ time.Time) error {
	sig, err := v.signature(h)
	if err != nil {
		return err
	}
	if !matchAny([][]byte{sig}, sums(v.keys, body)) {
		return authError(reasonSignatureMismatch)
	}
	return nil
}

// signature decodes the signature header.
func (v *hmacVerifier) signature(h http.Header) ([]byte, error) {
	value := strings.TrimSpace(h.Get(v.header))
	if value == "" {
		return nil, authError(v.reasonMissing)
	}
	// Prefixes such as "sha256=" name an algorithm; compare them the way
	// such names usually are, case-insensitively.
	if len(value) < len(v.prefix) || !strings.EqualFold(value[:len(v.prefix)], v.prefix) {
		return nil, authError(v.reasonNoPrefix)
	}
	sig, err := decodeHMAC(value[len(v.prefix):], v.encoding)
	if err != nil || len(sig) != sha256.Size {
		return nil, authError(v.reasonMalformed)
	}
	return sig, nil
}

func decodeHMAC(s, encoding string) ([]byte, error) {
	if encoding == EncodingBase64 {
		sig, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			// Some senders strip the padding.
			sig, err = base64.RawStdEncoding.DecodeString(s)
		}
		return sig, err
	}
	return hex.DecodeString(s)
}

// SignHMAC returns the HMAC-SHA256 of body under secret, encoded as
// "base64" or, for any other encoding (including ""), lower-case hex. The
// caller adds the prefix the receiver expects, for example "sha256=".
func SignHMAC(secret string, body []byte, encoding string) string {
	sig := newMACKey([]byte(secret)).sum(body)
	if encoding == EncodingBase64 {
		return base64.StdEncoding.EncodeToString(sig)
	}
	return hex.EncodeToString(sig)
}

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// hmacVerifier checks an HMAC-SHA256 of the raw body carried in one header,
// optionally after a prefix (GitHub: "X-Hub-Signature-256: sha256=<hex>").
type hmacVerifier struct {
	keys     [][]byte
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
		v.keys = append(v.keys, []byte(s))
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
	want := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		want[i] = hmacSHA256(key, body)
	}
	if !matchAny([][]byte{sig}, want) {
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

func hmacSHA256(key, body []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return mac.Sum(nil)
}

// SignHMAC returns the HMAC-SHA256 of body under secret, encoded as
// "base64" or, for any other encoding (including ""), lower-case hex. The
// caller adds the prefix the receiver expects, for example "sha256=".
func SignHMAC(secret string, body []byte, encoding string) string {
	sig := hmacSHA256([]byte(secret), body)
	if encoding == EncodingBase64 {
		return base64.StdEncoding.EncodeToString(sig)
	}
	return hex.EncodeToString(sig)
}

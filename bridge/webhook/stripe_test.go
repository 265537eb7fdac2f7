package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	stripeSecret    = "whsec_test_5d1a3c0f9b8e4a7d6c2b1e0f9a8d7c6b"
	stripeSecretOld = "whsec_test_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
)

// stripeHeader builds a Stripe-Signature the way Stripe's documentation
// computes a test header: hex HMAC-SHA256, keyed with the endpoint secret
// as it is shown, over "<t>.<body>".
func stripeHeader(secret string, t int64, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", t, body)
	return fmt.Sprintf("t=%d,v1=%s", t, hex.EncodeToString(mac.Sum(nil)))
}

func TestStripeVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	at := now.Unix()
	body := `{"id":"evt_1NG8Du2eZvKYlo2CUI79vXWy","object":"event","type":"invoice.paid"}`
	good := stripeHeader(stripeSecret, at, body)
	v1 := strings.TrimPrefix(good, fmt.Sprintf("t=%d,", at))
	zero := "v1=" + strings.Repeat("0", 64)

	tests := []struct {
		name   string
		header string
		body   string
		want   string
	}{
		{"valid", good, body, ""},
		{"SignStripe agrees", SignStripe(stripeSecret, now, []byte(body)), body, ""},
		{"one of several v1", fmt.Sprintf("t=%d,%s,%s", at, zero, v1), body, ""},
		{"v0 ignored", good + ",v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39", body, ""},
		{"spaces after commas", fmt.Sprintf("t=%d, %s", at, v1), body, ""},
		{"v1 before t", fmt.Sprintf("%s,t=%d", v1, at), body, ""},
		{"tampered body", good, strings.Replace(body, "paid", "void", 1), "signature does not match"},
		{"tampered timestamp", fmt.Sprintf("t=%d,%s", at-1, v1), body, "signature does not match"},
		{"wrong secret", stripeHeader("whsec_wrong", at, body), body, "signature does not match"},
		{"stale", stripeHeader(stripeSecret, at-301, body), body, "timestamp too old"},
		{"from the future", stripeHeader(stripeSecret, at+301, body), body, "timestamp too new"},
		{"just within the tolerance", stripeHeader(stripeSecret, at-300, body), body, ""},
		{"missing", "", body, reasonStripeMissing},
		{"no t", v1, body, reasonStripeMalformed},
		{"two t", fmt.Sprintf("t=%d,t=%d,%s", at, at, v1), body, reasonStripeMalformed},
		{"t not a number", "t=now," + v1, body, reasonStripeMalformed},
		{"only v0", fmt.Sprintf("t=%d,v0=%s", at, strings.Repeat("ab", 32)), body, reasonStripeNoV1},
		{"v1 not hex", fmt.Sprintf("t=%d,v1=xyz", at), body, reasonStripeMalformed},
		{"v1 too short", fmt.Sprintf("t=%d,v1=abcd", at), body, reasonStripeMalformed},
		{"a pair without =", fmt.Sprintf("t=%d,%s,garbage", at, v1), body, reasonStripeMalformed},
	}
	v := mustVerifier(t, AuthConfig{Scheme: "stripe", Secrets: []string{stripeSecret}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Stripe-Signature", tt.header)
			}
			if got := reason(t, v.Verify(h, []byte(tt.body), now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
			// What the headers show to be wrong is refused before the body.
			early := reason(t, CheckHeaders(v, h, now))
			if tt.want == reasonSignatureMismatch || tt.want == "" {
				if early != "" {
					t.Errorf("CheckHeaders = %q, want nil: it needs the body", early)
				}
			} else if early != tt.want {
				t.Errorf("CheckHeaders = %q, want %q", early, tt.want)
			}
		})
	}
	if id := SignedID(v, nil, []byte(body)); id != "evt_1NG8Du2eZvKYlo2CUI79vXWy" {
		t.Errorf("SignedID = %q, want the payload's id", id)
	}
	for _, b := range []string{`{"id":42}`, `{}`, `[]`, `nope`} {
		if id := SignedID(v, nil, []byte(b)); id != "" {
			t.Errorf("SignedID(%s) = %q, want none", b, id)
		}
	}
}

func TestStripeToleranceAndRotation(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := `{"id":"evt_1"}`
	tests := []struct {
		name      string
		secrets   []string
		tolerance time.Duration
		signedBy  string
		signedAt  time.Time
		want      string
	}{
		{"rolling: old secret signs", []string{stripeSecretOld, stripeSecret}, 0, stripeSecretOld, now, ""},
		{"rolling: new secret signs", []string{stripeSecretOld, stripeSecret}, 0, stripeSecret, now, ""},
		{"rolled: old secret refused", []string{stripeSecret}, 0, stripeSecretOld, now, reasonSignatureMismatch},
		{"tolerance 1m: 2m old", []string{stripeSecret}, time.Minute, stripeSecret, now.Add(-2 * time.Minute), "timestamp too old"},
		{"tolerance 10m: 8m old", []string{stripeSecret}, 10 * time.Minute, stripeSecret, now.Add(-8 * time.Minute), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, AuthConfig{Scheme: "stripe", Secrets: tt.secrets, Tolerance: tt.tolerance})
			h := http.Header{"Stripe-Signature": {stripeHeader(tt.signedBy, tt.signedAt.Unix(), body)}}
			if got := reason(t, v.Verify(h, []byte(body), now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
	// Stripe, rolling a secret, signs with both: one header, two v1.
	v := mustVerifier(t, AuthConfig{Scheme: "stripe", Secrets: []string{stripeSecret}})
	old, cur := stripeHeader(stripeSecretOld, now.Unix(), body), stripeHeader(stripeSecret, now.Unix(), body)
	h := http.Header{"Stripe-Signature": {old + "," + cur[strings.Index(cur, "v1="):]}}
	if err := v.Verify(h, []byte(body), now); err != nil {
		t.Errorf("both secrets' signatures in one header: %v", err)
	}
}

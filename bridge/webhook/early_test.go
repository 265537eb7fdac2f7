package webhook

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestCheckHeaders: what each scheme can refuse before the body is read,
// and that a request CheckHeaders lets through is still fully verified.
func TestCheckHeaders(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"a":1}`)
	sig, err := SignStandard(whsec, "m1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	std := http.Header{"Webhook-Id": {"m1"}, "Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)}, "Webhook-Signature": {sig}}
	stale := std.Clone()
	stale.Set("Webhook-Timestamp", strconv.FormatInt(now.Add(-time.Hour).Unix(), 10))
	cases := []struct {
		name      string
		auth      AuthConfig
		header    http.Header
		early     bool // CheckHeaders refuses it
		verifyErr bool // Verify refuses it
	}{
		{"standard: good", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}}, std, false, false},
		{"standard: stale", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}}, stale, true, true},
		{"standard: missing", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}}, http.Header{}, true, true},
		{"standard: signature of another body", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{"whsec_QUJDREVGR0hJSktMTU5PUA=="}}, std, false, true},
		{"hmac: good", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"k"}}, http.Header{"X-Signature-256": {SignHMAC("k", body, "hex")}}, false, false},
		{"hmac: not hex", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"k"}}, http.Header{"X-Signature-256": {"zz"}}, true, true},
		{"hmac: another key", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"k"}}, http.Header{"X-Signature-256": {SignHMAC("j", body, "hex")}}, false, true},
		{"bearer: good", AuthConfig{Scheme: "bearer", Secrets: []string{"tok"}}, http.Header{"Authorization": {"Bearer tok"}}, false, false},
		{"bearer: wrong", AuthConfig{Scheme: "bearer", Secrets: []string{"tok"}}, http.Header{"Authorization": {"Bearer nope"}}, true, true},
		{"none", AuthConfig{Scheme: "none"}, http.Header{}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.auth)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckHeaders(v, tc.header, now); (err != nil) != tc.early {
				t.Errorf("CheckHeaders: %v, want refused %v", err, tc.early)
			}
			if err := v.Verify(tc.header, body, now); (err != nil) != tc.verifyErr {
				t.Errorf("Verify: %v, want refused %v", err, tc.verifyErr)
			}
		})
	}
}

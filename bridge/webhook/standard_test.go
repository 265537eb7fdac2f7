package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The example from the Standard Webhooks / Svix documentation and test suites.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func standardHeader(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set("webhook-id", id)
	}
	if ts != "" {
		h.Set("webhook-timestamp", ts)
	}
	if sig != "" {
		h.Set("webhook-signature", sig)
	}
	return h
}

func mustVerifier(t testing.TB, c AuthConfig) Verifier {
	t.Helper()
	v, err := NewVerifier(c)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// reason returns the AuthError reason of err, "" for nil, and fails the test
// for any other kind of error.
func reason(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *AuthError", err, err)
	}
	return ae.Reason
}

func TestStandardKnownVector(t *testing.T) {
	ts := time.Unix(vectorTimestamp, 0)
	got, err := SignStandard(vectorSecret, vectorID, ts, []byte(vectorBody))
	if err != nil {
		t.Fatal(err)
	}
	if got != vectorSignature {
		t.Errorf("SignStandard = %q, want %q", got, vectorSignature)
	}

	v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{vectorSecret}})
	h := standardHeader(vectorID, strconv.Itoa(vectorTimestamp), vectorSignature)
	if err := v.Verify(h, []byte(vectorBody), ts.Add(time.Minute)); err != nil {
		t.Errorf("Verify(known vector) = %v, want nil", err)
	}
}

// TestStandardIndependentHMAC checks the signed content against a direct
// crypto/hmac computation, and that the secret works without its prefix.
func TestStandardIndependentHMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	b64 := base64.StdEncoding.EncodeToString(key)
	body := []byte(`{"order_id":42}`)
	now := time.Unix(1700000000, 0)

	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("evt_1.1700000000." + string(body)))
	sig := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))

	for _, secret := range []string{"whsec_" + b64, b64} {
		v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{secret}})
		if err := v.Verify(standardHeader("evt_1", "1700000000", sig), body, now); err != nil {
			t.Errorf("secret form %.6q...: Verify = %v, want nil", secret, err)
		}
		got, err := SignStandard(secret, "evt_1", now, body)
		if err != nil || got != sig {
			t.Errorf("SignStandard = %q, %v; want %q", got, err, sig)
		}
	}
}

func TestStandardVerify(t *testing.T) {
	const (
		secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdGluZy0xMjM0NTY="
		other  = "whsec_b3RoZXIta2V5LWZvci10ZXN0aW5nLTk4NzY1NA=="
		id     = "msg_1"
	)
	now := time.Unix(1700000000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"a":1}`)
	sign := func(secret string, at time.Time, body string) string {
		s, err := SignStandard(secret, id, at, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign(secret, now, string(body))
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   string // AuthError reason; "" = accepted
	}{
		{"valid", standardHeader(id, ts, good), body, ""},
		{"header names in any case", http.Header{
			"Webhook-Id":        {id},
			"Webhook-Timestamp": {ts},
			"Webhook-Signature": {good},
		}, body, ""},
		{"one of several signatures", standardHeader(id, ts, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" "+good), body, ""},
		{"other versions ignored", standardHeader(id, ts, "v1a,bm90LWFuLWVkMjU1MTktc2ln v2,whatever "+good), body, ""},
		{"signature header repeated", http.Header{
			"Webhook-Id":        {id},
			"Webhook-Timestamp": {ts},
			"Webhook-Signature": {"v1a,xyz", good},
		}, body, ""},
		{"tampered body", standardHeader(id, ts, good), []byte(`{"a":2}`), "signature does not match"},
		{"tampered id", standardHeader("msg_2", ts, good), body, "signature does not match"},
		{"tampered timestamp", standardHeader(id, unix(now.Add(time.Second)), good), body, "signature does not match"},
		{"wrong secret", standardHeader(id, ts, sign(other, now, string(body))), body, "signature does not match"},
		{"missing id", standardHeader("", ts, good), body, "missing webhook-id header"},
		{"missing timestamp", standardHeader(id, "", good), body, "missing webhook-timestamp header"},
		{"missing signature", standardHeader(id, ts, ""), body, "missing webhook-signature header"},
		{"blank signature", standardHeader(id, ts, "   "), body, "missing webhook-signature header"},
		{"signature without version", standardHeader(id, ts, good[len("v1,"):]), body, "malformed webhook-signature header"},
		{"signature not base64", standardHeader(id, ts, "v1,not*base64"), body, "malformed webhook-signature header"},
		{"signature too short", standardHeader(id, ts, "v1,AAAA"), body, "malformed webhook-signature header"},
		{"empty version", standardHeader(id, ts, ","+good[len("v1,"):]), body, "malformed webhook-signature header"},
		{"only other versions", standardHeader(id, ts, "v1a,abcd v2,efgh"), body, "no v1 signature in webhook-signature header"},
		{"timestamp not a number", standardHeader(id, "yesterday", good), body, "malformed webhook-timestamp header"},
		{"timestamp with sign", standardHeader(id, "+"+ts, good), body, "malformed webhook-timestamp header"},
		{"timestamp negative", standardHeader(id, "-5", good), body, "malformed webhook-timestamp header"},
		{"timestamp fractional", standardHeader(id, ts+".5", good), body, "malformed webhook-timestamp header"},
		{"timestamp in milliseconds", standardHeader(id, ts+"000", good), body, "timestamp too new"},
		{"timestamp overflows int64", standardHeader(id, "99999999999999999999", good), body, "malformed webhook-timestamp header"},
		{"timestamp max int64", standardHeader(id, "9223372036854775807", good), body, "timestamp too new"},
		{"timestamp zero", standardHeader(id, "0", good), body, "timestamp too old"},
	}
	v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{secret}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reason(t, v.Verify(tt.header, tt.body, now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStandardTolerance(t *testing.T) {
	const secret = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdGluZy0xMjM0NTY="
	signedAt := time.Unix(1700000000, 0)
	body := []byte(`{}`)
	sig, err := SignStandard(secret, "msg_1", signedAt, body)
	if err != nil {
		t.Fatal(err)
	}
	h := standardHeader("msg_1", "1700000000", sig)

	tests := []struct {
		name      string
		tolerance time.Duration
		now       time.Time
		want      string
	}{
		{"same second", 0, signedAt, ""},
		{"default tolerance, just inside (old)", 0, signedAt.Add(5 * time.Minute), ""},
		{"default tolerance, just inside (new)", 0, signedAt.Add(-5 * time.Minute), ""},
		{"default tolerance, stale", 0, signedAt.Add(5*time.Minute + time.Nanosecond), "timestamp too old"},
		{"default tolerance, future", 0, signedAt.Add(-5*time.Minute - time.Nanosecond), "timestamp too new"},
		{"custom tolerance, inside", 30 * time.Second, signedAt.Add(30 * time.Second), ""},
		{"custom tolerance, stale", 30 * time.Second, signedAt.Add(31 * time.Second), "timestamp too old"},
		{"custom tolerance, future", 30 * time.Second, signedAt.Add(-31 * time.Second), "timestamp too new"},
		{"sub-second tolerance", 500 * time.Millisecond, signedAt.Add(400 * time.Millisecond), ""},
		{"sub-second tolerance, stale", 500 * time.Millisecond, signedAt.Add(600 * time.Millisecond), "timestamp too old"},
		{"a year late", 0, signedAt.AddDate(1, 0, 0), "timestamp too old"},
		{"now before 1970", 0, time.Unix(-1<<40, 0), "timestamp too new"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{secret}, Tolerance: tt.tolerance})
			if got := reason(t, v.Verify(h, body, tt.now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStandardRotation(t *testing.T) {
	const (
		oldSecret = "whsec_b2xkLXNlY3JldC1rZXktZm9yLXJvdGF0aW9uLTE="
		newSecret = "whsec_bmV3LXNlY3JldC1rZXktZm9yLXJvdGF0aW9uLTI="
	)
	now := time.Unix(1700000000, 0)
	body := []byte(`{"x":true}`)
	sig := func(secret string) string {
		s, err := SignStandard(secret, "msg_r", now, body)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	tests := []struct {
		name     string
		secrets  []string
		signedBy string
		want     string
	}{
		{"both configured, old signs", []string{oldSecret, newSecret}, oldSecret, ""},
		{"both configured, new signs", []string{oldSecret, newSecret}, newSecret, ""},
		{"old removed, new signs", []string{newSecret}, newSecret, ""},
		{"old removed, old signs", []string{newSecret}, oldSecret, "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: tt.secrets})
			h := standardHeader("msg_r", "1700000000", sig(tt.signedBy))
			if got := reason(t, v.Verify(h, body, now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSignStandardBadSecret(t *testing.T) {
	if _, err := SignStandard("whsec_!!!", "id", time.Unix(0, 0), nil); err == nil {
		t.Error("SignStandard with a non-base64 secret succeeded")
	}
}

// TestStandardSvixHeaders: Svix sends the same signature in svix-*
// headers; the bridge reads one set or the other, never a mix.
func TestStandardSvixHeaders(t *testing.T) {
	svix := func(id, ts, sig string) http.Header {
		return http.Header{"Svix-Id": {id}, "Svix-Timestamp": {ts}, "Svix-Signature": {sig}}
	}
	ts := strconv.Itoa(vectorTimestamp)
	both := svix(vectorID, ts, vectorSignature)
	for k, v := range standardHeader(vectorID, ts, vectorSignature) {
		both[k] = v
	}
	mixed := standardHeader(vectorID, "", "")
	mixed.Set("Svix-Timestamp", ts)
	mixed.Set("Svix-Signature", vectorSignature)
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   string
	}{
		{"svix headers, the published vector", svix(vectorID, ts, vectorSignature), vectorBody, ""},
		{"both sets, as some Svix accounts send", both, vectorBody, ""},
		{"svix: tampered body", svix(vectorID, ts, vectorSignature), `{"test": 2432232315}`, "signature does not match"},
		{"svix: tampered id", svix("msg_other", ts, vectorSignature), vectorBody, "signature does not match"},
		{"svix: missing signature", svix(vectorID, ts, ""), vectorBody, "missing svix-signature header"},
		{"svix: stale", svix(vectorID, strconv.Itoa(vectorTimestamp-600), vectorSignature), vectorBody, "timestamp too old"},
		{"a mix reads the webhook- set only", mixed, vectorBody, "missing webhook-timestamp header"},
		{"neither set", http.Header{}, vectorBody, "missing webhook-id (or svix-id) header"},
	}
	v := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{vectorSecret}})
	now := time.Unix(vectorTimestamp, 0).Add(time.Minute)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reason(t, v.Verify(tt.header, []byte(tt.body), now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
			if got := reason(t, CheckHeaders(v, tt.header, now)); tt.want == "" && got != "" {
				t.Errorf("CheckHeaders = %q, want nil", got)
			}
		})
	}
	if id := SignedID(v, svix("msg_svix", ts, vectorSignature), nil); id != "msg_svix" {
		t.Errorf("SignedID(svix) = %q, want msg_svix", id)
	}
	if id := SignedID(v, both, nil); id != vectorID {
		t.Errorf("SignedID(both) = %q", id)
	}
}

// BenchmarkStandardVerify measures the check of a signed webhook of 200
// bytes, which every request to a standard-webhooks source makes.
func BenchmarkStandardVerify(b *testing.B) {
	v := mustVerifier(b, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{vectorSecret}})
	body := []byte(`{"type":"order.shipped","data":{"order_id":"ord_12345","user_id":"u-12345","email":"user12345@example.com","items":3,"total":"49.90"}}`)
	now := time.Unix(vectorTimestamp, 0)
	sig, err := SignStandard(vectorSecret, vectorID, now, body)
	if err != nil {
		b.Fatal(err)
	}
	h := standardHeader(vectorID, strconv.Itoa(vectorTimestamp), sig)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(h, body, now); err != nil {
			b.Fatal(err)
		}
	}
}

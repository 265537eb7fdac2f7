package webhook

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestBearerVerify(t *testing.T) {
	cfg := AuthConfig{Scheme: "bearer", Secrets: []string{"tok-old", "tok-new"}}
	tests := []struct {
		name string
		auth []string // Authorization values; nil = absent
		want string
	}{
		{"first token", []string{"Bearer tok-old"}, ""},
		{"second token", []string{"Bearer tok-new"}, ""},
		{"scheme in lower case", []string{"bearer tok-new"}, ""},
		{"extra spaces", []string{"Bearer   tok-new"}, ""},
		{"wrong token", []string{"Bearer tok-wrong"}, "bearer token does not match"},
		{"prefix of a token", []string{"Bearer tok"}, "bearer token does not match"},
		{"token with suffix", []string{"Bearer tok-new2"}, "bearer token does not match"},
		{"missing", nil, "missing Authorization header"},
		{"empty", []string{""}, "missing Authorization header"},
		{"basic auth", []string{"Basic dG9rLW5ldw=="}, "malformed Authorization header: want Bearer token"},
		{"no token", []string{"Bearer"}, "malformed Authorization header: want Bearer token"},
		{"blank token", []string{"Bearer  "}, "malformed Authorization header: want Bearer token"},
		{"bare token", []string{"tok-new"}, "malformed Authorization header: want Bearer token"},
	}
	v := mustVerifier(t, cfg)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.auth != nil {
				h["Authorization"] = tt.auth
			}
			if got := reason(t, v.Verify(h, nil, time.Time{})); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("old token removed", func(t *testing.T) {
		v := mustVerifier(t, AuthConfig{Scheme: "bearer", Secrets: []string{"tok-new"}})
		h := http.Header{"Authorization": {"Bearer tok-old"}}
		if got := reason(t, v.Verify(h, nil, time.Time{})); got != "bearer token does not match" {
			t.Errorf("Verify reason = %q, want mismatch", got)
		}
	})
}

func TestNoneVerify(t *testing.T) {
	v := mustVerifier(t, AuthConfig{Scheme: "none"})
	if err := v.Verify(http.Header{}, []byte("anything"), time.Time{}); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
}

func TestAuthConfigValidate(t *testing.T) {
	const whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	tests := []struct {
		name   string
		config AuthConfig
		want   []string // substrings of the error; none = valid
	}{
		{"standard-webhooks", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}}, nil},
		{"standard-webhooks bare base64", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}, nil},
		{"standard-webhooks unpadded base64", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{"whsec_YWJjZA"}}, nil},
		{"standard-webhooks tolerance", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}, Tolerance: time.Minute}, nil},
		{"hmac-sha256", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s"}}, nil},
		{"hmac-sha256 github", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s"}, Header: "X-Hub-Signature-256", Prefix: "sha256=", Encoding: "hex"}, nil},
		{"hmac-sha256 base64", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s", "t"}, Encoding: "base64"}, nil},
		{"bearer", AuthConfig{Scheme: "bearer", Secrets: []string{"t"}}, nil},
		{"none", AuthConfig{Scheme: "none"}, nil},

		{"empty scheme", AuthConfig{}, []string{"scheme: is required"}},
		{"unknown scheme", AuthConfig{Scheme: "basic", Secrets: []string{"x"}}, []string{`scheme: unknown scheme "basic"`}},
		{"scheme is case-sensitive", AuthConfig{Scheme: "Bearer", Secrets: []string{"x"}}, []string{"unknown scheme"}},
		{"no secrets", AuthConfig{Scheme: "bearer"}, []string{"secret: is required for scheme bearer"}},
		{"empty secret", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"a", ""}}, []string{"secrets[1]: secret is empty"}},
		{"none with secret", AuthConfig{Scheme: "none", Secrets: []string{"x"}}, []string{"scheme none takes no secret"}},
		{"whsec not base64", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{"whsec_***"}}, []string{"secrets[0]: secret is not valid base64"}},
		{"whsec empty key", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{"whsec_"}}, []string{"secrets[0]: secret decodes to an empty key"}},
		{"header on bearer", AuthConfig{Scheme: "bearer", Secrets: []string{"t"}, Header: "X-Token"}, []string{"header: is only used by scheme hmac-sha256"}},
		{"prefix on standard", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}, Prefix: "v1="}, []string{"prefix: is only used by scheme hmac-sha256"}},
		{"encoding on none", AuthConfig{Scheme: "none", Encoding: "hex"}, []string{"encoding: is only used by scheme hmac-sha256"}},
		{"unknown encoding", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s"}, Encoding: "base32"}, []string{`encoding: unknown encoding "base32"`}},
		{"bad header name", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s"}, Header: "X Sig"}, []string{`header: "X Sig" is not a valid HTTP header name`}},
		{"negative tolerance", AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}, Tolerance: -time.Second}, []string{"tolerance: must not be negative"}},
		{"tolerance on hmac", AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"s"}, Tolerance: time.Second}, []string{"tolerance: is only used by schemes standard-webhooks and stripe"}},
		{"all problems reported", AuthConfig{Scheme: "bearer", Header: "X", Encoding: "hex"}, []string{"secret: is required", "header: is only used", "encoding: is only used"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.config.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				if _, err := NewVerifier(tt.config); err != nil {
					t.Fatalf("NewVerifier = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
			if v, err := NewVerifier(tt.config); err == nil || v != nil {
				t.Errorf("NewVerifier = %v, %v; want nil, error", v, err)
			}
		})
	}
}

// TestErrorsNeverContainSecrets drives every failure path and checks that no
// error text contains a secret, the key it decodes to, or a signature the
// receiver computed, in any of the encodings a log reader might recognise.
func TestErrorsNeverContainSecrets(t *testing.T) {
	key := []byte("super-secret-key-material-0123456789")
	whsec := "whsec_" + base64.StdEncoding.EncodeToString(key)
	const hmacSecret = "hmac-secret-value-abcdef"
	const token = "bearer-token-value-xyz"
	body := []byte(`{"a":1}`)
	now := time.Unix(1700000000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)

	stdSig, err := SignStandard(whsec, "id", now, body)
	if err != nil {
		t.Fatal(err)
	}
	hmacHex := SignHMAC(hmacSecret, body, "hex")
	hmacB64 := SignHMAC(hmacSecret, body, "base64")
	stdRaw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(stdSig, "v1,"))
	hmacRaw, _ := hex.DecodeString(hmacHex)

	forbidden := []string{
		whsec, strings.TrimPrefix(whsec, "whsec_"), string(key), hex.EncodeToString(key),
		hmacSecret, hex.EncodeToString([]byte(hmacSecret)), base64.StdEncoding.EncodeToString([]byte(hmacSecret)),
		token, hex.EncodeToString([]byte(token)), base64.StdEncoding.EncodeToString([]byte(token)),
		strings.TrimPrefix(stdSig, "v1,"), hex.EncodeToString(stdRaw), string(stdRaw),
		hmacHex, hmacB64, string(hmacRaw),
	}

	std := mustVerifier(t, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{whsec}})
	hm := mustVerifier(t, AuthConfig{Scheme: "hmac-sha256", Secrets: []string{hmacSecret}, Prefix: "sha256="})
	hm64 := mustVerifier(t, AuthConfig{Scheme: "hmac-sha256", Secrets: []string{hmacSecret}, Encoding: "base64"})
	bearer := mustVerifier(t, AuthConfig{Scheme: "bearer", Secrets: []string{token}})
	tampered := []byte(`{"a":2}`)

	var errs []error
	for _, tc := range []struct {
		v    Verifier
		h    http.Header
		body []byte
	}{
		{std, standardHeader("id", ts, stdSig), tampered},
		{std, standardHeader("other", ts, stdSig), body},
		{std, standardHeader("id", ts, "v1,bad"), body},
		{std, standardHeader("id", ts, "v1a,abc"), body},
		{std, standardHeader("id", "0", stdSig), body},
		{std, standardHeader("id", "x", stdSig), body},
		{std, standardHeader("", ts, stdSig), body},
		{hm, http.Header{"X-Signature-256": {"sha256=" + hmacHex}}, tampered},
		{hm, http.Header{"X-Signature-256": {hmacHex}}, body},
		{hm, http.Header{"X-Signature-256": {"sha256=zz"}}, body},
		{hm, http.Header{}, body},
		{hm64, http.Header{"X-Signature-256": {hmacB64}}, tampered},
		{hm64, http.Header{"X-Signature-256": {"@@"}}, body},
		{bearer, http.Header{"Authorization": {"Bearer " + token + "x"}}, body},
		{bearer, http.Header{"Authorization": {"Basic " + token}}, body},
	} {
		err := tc.v.Verify(tc.h, tc.body, now)
		if err == nil {
			t.Fatalf("Verify(%v) succeeded; the test expects a failure", tc.h)
		}
		errs = append(errs, err)
	}
	for _, c := range []AuthConfig{
		{Scheme: "standard-webhooks", Secrets: []string{whsec + "!"}},
		{Scheme: "standard-webhooks", Secrets: []string{"whsec_" + hmacSecret + "*"}},
		{Scheme: "none", Secrets: []string{token}},
		{Scheme: "bogus", Secrets: []string{token, hmacSecret}},
		{Scheme: "bearer", Secrets: []string{token}, Prefix: "x", Header: "y"},
	} {
		errs = append(errs, c.Validate())
	}
	_, err = SignStandard(whsec+"*", "id", now, body)
	errs = append(errs, err)

	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		for _, f := range forbidden {
			if strings.Contains(err.Error(), f) {
				t.Errorf("error %q contains secret material %q", err, f)
			}
		}
	}
}

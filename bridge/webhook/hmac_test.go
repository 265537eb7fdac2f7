package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSignHMAC(t *testing.T) {
	// RFC 4231 test case 2.
	const want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	body := []byte("what do ya want for nothing?")
	if got := SignHMAC("Jefe", body, "hex"); got != want {
		t.Errorf("SignHMAC hex = %s, want %s", got, want)
	}
	if got := SignHMAC("Jefe", body, ""); got != want {
		t.Errorf("SignHMAC default = %s, want %s", got, want)
	}
	raw, _ := hex.DecodeString(want)
	if got, want := SignHMAC("Jefe", body, "base64"), base64.StdEncoding.EncodeToString(raw); got != want {
		t.Errorf("SignHMAC base64 = %s, want %s", got, want)
	}
}

func TestHMACVerify(t *testing.T) {
	const (
		secret = "It's a Secret to Everybody"
		other  = "not the secret"
	)
	body := []byte("Hello, World!")
	now := time.Unix(1700000000, 0)

	// GitHub's documented example for X-Hub-Signature-256.
	const githubSig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	github := AuthConfig{Scheme: "hmac-sha256", Secrets: []string{secret}, Header: "X-Hub-Signature-256", Prefix: "sha256="}
	plain := AuthConfig{Scheme: "hmac-sha256", Secrets: []string{secret}}
	b64 := AuthConfig{Scheme: "hmac-sha256", Secrets: []string{secret}, Header: "X-Webhook-Signature", Encoding: "base64"}

	b64Sig := SignHMAC(secret, body, "base64")
	tests := []struct {
		name   string
		config AuthConfig
		header http.Header
		body   []byte
		want   string
	}{
		{"github example", github, hdr("X-Hub-Signature-256", githubSig), body, ""},
		{"github lower-case header name", github, hdr("x-hub-signature-256", githubSig), body, ""},
		{"github upper-case hex", github, hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(githubSig[7:])), body, ""},
		{"github upper-case prefix", github, hdr("X-Hub-Signature-256", "SHA256="+githubSig[7:]), body, ""},
		{"github tampered body", github, hdr("X-Hub-Signature-256", githubSig), []byte("Hello, World?"), "signature does not match"},
		{"github wrong secret", github, hdr("X-Hub-Signature-256", "sha256="+SignHMAC(other, body, "hex")), body, "signature does not match"},
		{"github missing header", github, hdr("X-Signature-256", githubSig), body, "missing X-Hub-Signature-256 header"},
		{"github missing prefix", github, hdr("X-Hub-Signature-256", githubSig[7:]), body, "malformed X-Hub-Signature-256 header: want prefix sha256="},
		{"github sha1 prefix", github, hdr("X-Hub-Signature-256", "sha1=01234567"), body, "malformed X-Hub-Signature-256 header: want prefix sha256="},
		{"github not hex", github, hdr("X-Hub-Signature-256", "sha256=zz"+githubSig[9:]), body, "malformed X-Hub-Signature-256 header: want hex HMAC-SHA256"},
		{"github truncated", github, hdr("X-Hub-Signature-256", githubSig[:40]), body, "malformed X-Hub-Signature-256 header: want hex HMAC-SHA256"},
		{"default header", plain, hdr("X-Signature-256", githubSig[7:]), body, ""},
		{"default header missing", plain, hdr("X-Hub-Signature-256", githubSig), body, "missing X-Signature-256 header"},
		{"base64", b64, hdr("X-Webhook-Signature", b64Sig), body, ""},
		{"base64 unpadded", b64, hdr("X-Webhook-Signature", strings.TrimRight(b64Sig, "=")), body, ""},
		{"base64 given hex", b64, hdr("X-Webhook-Signature", githubSig[7:]), body, "malformed X-Webhook-Signature header: want base64 HMAC-SHA256"},
		{"base64 tampered", b64, hdr("X-Webhook-Signature", b64Sig), []byte("x"), "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, tt.config)
			if got := reason(t, v.Verify(tt.header, tt.body, now)); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHMACIndependent checks the verifier against crypto/hmac directly.
func TestHMACIndependent(t *testing.T) {
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte("body"))
	h := http.Header{"X-Signature-256": {hex.EncodeToString(mac.Sum(nil))}}
	v := mustVerifier(t, AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"k"}})
	if err := v.Verify(h, []byte("body"), time.Time{}); err != nil {
		t.Errorf("Verify = %v, want nil", err)
	}
}

func TestHMACRotation(t *testing.T) {
	body := []byte(`{"event":"ping"}`)
	tests := []struct {
		name     string
		secrets  []string
		signedBy string
		want     string
	}{
		{"both configured, old signs", []string{"old", "new"}, "old", ""},
		{"both configured, new signs", []string{"old", "new"}, "new", ""},
		{"old removed, old signs", []string{"new"}, "old", "signature does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, AuthConfig{Scheme: "hmac-sha256", Secrets: tt.secrets})
			h := http.Header{"X-Signature-256": {SignHMAC(tt.signedBy, body, "hex")}}
			if got := reason(t, v.Verify(h, body, time.Time{})); got != tt.want {
				t.Errorf("Verify reason = %q, want %q", got, tt.want)
			}
		})
	}
}

// A pooled MAC is back at its keyed state each time it is handed out: sums
// made one after another and at once, on one key, are each the HMAC of
// their own parts alone.
func TestMACKeyReuse(t *testing.T) {
	k := newMACKey([]byte("secret"))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				body := fmt.Sprintf("body %d of %d", i, g)
				if got, want := k.sum([]byte("id."), []byte(body)), hmacOf("secret", "id.", body); !hmac.Equal(got, want) {
					t.Errorf("sum of %q: %x, want %x", body, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

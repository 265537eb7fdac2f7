package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzNow is the fixed "now" of the fuzz targets.
var fuzzNow = time.Unix(1700000000, 0)

// hmacOf is the fuzz targets' own HMAC-SHA256 of parts under key, made
// with crypto/hmac alone, to hold the verifiers' pooled ones to.
func hmacOf(key string, parts ...string) []byte {
	mac := hmac.New(sha256.New, []byte(key))
	for _, p := range parts {
		mac.Write([]byte(p))
	}
	return mac.Sum(nil)
}

// checkAuthError fails unless err is nil or an *AuthError whose text holds
// none of the forbidden strings.
func checkAuthError(t *testing.T, err error, forbidden ...string) {
	t.Helper()
	if err == nil {
		return
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *AuthError", err, err)
	}
	for _, f := range forbidden {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("error %q contains secret material", err)
		}
	}
}

func FuzzStandardWebhooksVerify(f *testing.F) {
	key := []byte("fuzz-key-0123456789abcdefghijklmn")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	v := mustVerifier(f, AuthConfig{Scheme: "standard-webhooks", Secrets: []string{secret}})
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)

	f.Add("msg_1", ts, "", []byte(`{"a":1}`), true)
	f.Add("msg_1", ts, "v1,AAAA", []byte(`{"a":1}`), false)
	f.Add("msg_1", ts, "v1a,xyz v2,abc", []byte(`{}`), true)
	f.Add("", ts, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)), []byte(`{}`), false)
	f.Add("id", "0", ",", []byte(nil), true)
	f.Add("id", "9223372036854775807", "v1, v1,", []byte("x"), true)
	f.Add("a.b", "-1", "   ", []byte("."), false)
	f.Add(vectorID, strconv.Itoa(vectorTimestamp), vectorSignature, []byte(vectorBody), false)

	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte, signIt bool) {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		if signIt {
			sig = "v1," + base64.StdEncoding.EncodeToString(want) + " " + sig
		}
		h := http.Header{
			"Webhook-Id":        {id},
			"Webhook-Timestamp": {ts},
			"Webhook-Signature": {sig},
		}
		err := v.Verify(h, body, fuzzNow)
		checkAuthError(t, err, secret, base64.StdEncoding.EncodeToString(want), hex.EncodeToString(want))

		if err == nil {
			// Accepted: the header must really carry the right signature,
			// for a present id and a timestamp within tolerance.
			if id == "" {
				t.Fatal("accepted without webhook-id")
			}
			n, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || n < fuzzNow.Unix()-300 || n > fuzzNow.Unix()+300 {
				t.Fatalf("accepted timestamp %q outside tolerance", ts)
			}
			found := false
			for _, e := range strings.Fields(sig) {
				if s, ok := strings.CutPrefix(e, "v1,"); ok {
					raw, _ := base64.StdEncoding.DecodeString(s)
					found = found || hmac.Equal(raw, want)
				}
			}
			if !found {
				t.Fatalf("accepted without the right signature: %q", sig)
			}
		}
		if signIt && reason(t, err) == reasonSignatureMismatch {
			t.Fatalf("correctly signed request rejected as mismatched (id %q, ts %q, sig %q)", id, ts, sig)
		}
	})
}

func FuzzHMACVerify(f *testing.F) {
	const secret = "fuzz-hmac-secret"
	hexV := mustVerifier(f, AuthConfig{Scheme: "hmac-sha256", Secrets: []string{"old-secret", secret}, Header: "X-Hub-Signature-256", Prefix: "sha256="})
	b64V := mustVerifier(f, AuthConfig{Scheme: "hmac-sha256", Secrets: []string{secret}, Encoding: "base64"})

	f.Add("", []byte(`{"a":1}`), true, false)
	f.Add("", []byte(`{"a":1}`), true, true)
	f.Add("sha256=", []byte(nil), false, false)
	f.Add("sha256="+strings.Repeat("0", 64), []byte("x"), false, false)
	f.Add(strings.Repeat("A", 43)+"=", []byte("x"), false, true)
	f.Add("SHA256=zz", []byte("x"), false, false)
	f.Add("  ", []byte(""), false, true)

	f.Fuzz(func(t *testing.T, value string, body []byte, signIt, useBase64 bool) {
		v, prefix, header, enc := hexV, "sha256=", "X-Hub-Signature-256", "hex"
		if useBase64 {
			v, prefix, header, enc = b64V, "", "X-Signature-256", "base64"
		}
		want := hmacOf(secret, string(body))
		if signIt {
			value = prefix + SignHMAC(secret, body, enc)
		}
		err := v.Verify(http.Header{header: {value}}, body, fuzzNow)
		checkAuthError(t, err, secret, hex.EncodeToString(want), base64.StdEncoding.EncodeToString(want))

		if signIt && err != nil {
			t.Fatalf("correctly signed request rejected: %v", err)
		}
		if err == nil && !signIt {
			// Only the configured secrets can have produced an accepted value.
			s := strings.TrimSpace(value)
			s = s[len(prefix):]
			var raw []byte
			if useBase64 {
				raw, _ = base64.StdEncoding.DecodeString(s)
				if raw == nil {
					raw, _ = base64.RawStdEncoding.DecodeString(s)
				}
			} else {
				raw, _ = hex.DecodeString(s)
			}
			if !hmac.Equal(raw, want) && !hmac.Equal(raw, hmacOf("old-secret", string(body))) {
				t.Fatalf("accepted %q without the right signature", value)
			}
		}
	})
}

// FuzzStripeVerify drives arbitrary Stripe-Signature headers through the
// parser and the verifier: no panic, only AuthErrors without secret
// material, and nothing accepted without the right signature.
func FuzzStripeVerify(f *testing.F) {
	const secret = "whsec_fuzz_0123456789abcdef"
	v := mustVerifier(f, AuthConfig{Scheme: "stripe", Secrets: []string{secret}})
	ts := strconv.FormatInt(fuzzNow.Unix(), 10)
	f.Add("t="+ts, []byte(`{"id":"evt_1"}`), true)
	f.Add("t="+ts+",v0=abcd", []byte(`{}`), true)
	f.Add("t="+ts+",v1="+strings.Repeat("0", 64), []byte(`{}`), false)
	f.Add("v1=,t=,=,,", []byte(nil), false)
	f.Add("t=1,t=2", []byte("x"), true)
	f.Add("t=99999999999999999999,v1=zz", []byte("."), false)

	f.Fuzz(func(t *testing.T, header string, body []byte, signIt bool) {
		// The timestamp the fuzzer put first, if any, is what a signature
		// must cover.
		first, _, _ := strings.Cut(header, ",")
		t0, _ := strings.CutPrefix(strings.TrimSpace(first), "t=")
		want := hmacOf(secret, t0+".", string(body))
		if signIt {
			header += ",v1=" + hex.EncodeToString(want)
		}
		h := http.Header{"Stripe-Signature": {header}}
		err := v.Verify(h, body, fuzzNow)
		checkAuthError(t, err, secret, hex.EncodeToString(want))

		pts, sigs, perr := parseStripeSignature(header)
		if perr == nil {
			if _, ok := parseUnixSeconds(pts); !ok || len(sigs) == 0 {
				t.Fatalf("parsed %q into t=%q and %d signatures", header, pts, len(sigs))
			}
			for _, s := range sigs {
				if len(s) != sha256.Size {
					t.Fatalf("a signature of %d bytes", len(s))
				}
			}
		}
		if err == nil {
			if perr != nil {
				t.Fatalf("accepted a header the parser refuses: %q", header)
			}
			if !strings.Contains(strings.ToLower(header), hex.EncodeToString(hmacOf(secret, pts, ".", string(body)))) {
				t.Fatalf("accepted without the right signature: %q", header)
			}
		}
	})
}

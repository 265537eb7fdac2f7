package webhook_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// A sender signs with SignStandard; the receiver checks with a Verifier and
// answers 401 with the AuthError's reason when the check fails.
func ExampleNewVerifier() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	v, err := webhook.NewVerifier(webhook.AuthConfig{Scheme: "standard-webhooks", Secrets: []string{secret}})
	if err != nil {
		panic(err)
	}

	now := time.Unix(1700000000, 0)
	body := []byte(`{"order_id":42}`)
	sig, err := webhook.SignStandard(secret, "msg_1", now, body)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_1")
	h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("webhook-signature", sig)

	fmt.Println(v.Verify(h, body, now))

	err = v.Verify(h, []byte(`{"order_id":43}`), now)
	var ae *webhook.AuthError
	if errors.As(err, &ae) {
		fmt.Println("401:", ae.Reason)
	}
	// Output:
	// <nil>
	// 401: signature does not match
}

// GitHub sends "X-Hub-Signature-256: sha256=<hex>".
func ExampleAuthConfig_github() {
	v, err := webhook.NewVerifier(webhook.AuthConfig{
		Scheme:  "hmac-sha256",
		Secrets: []string{"It's a Secret to Everybody"},
		Header:  "X-Hub-Signature-256",
		Prefix:  "sha256=",
	})
	if err != nil {
		panic(err)
	}
	body := []byte("Hello, World!")
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+webhook.SignHMAC("It's a Secret to Everybody", body, "hex"))
	fmt.Println(v.Verify(h, body, time.Now()))
	// Output: <nil>
}

package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// TestForgedReplayedStaleAndUnsigned covers the ways a webhook can lie
// about where it comes from, for every scheme.
func TestForgedReplayedStaleAndUnsigned(t *testing.T) {
	e := newEnv(t)
	body := []byte(`{"type":"order.paid","amount":150}`)
	now := time.Now()
	forged := []byte(`{"type":"order.paid","amount":15000}`)
	cases := []struct {
		name   string
		source string
		body   []byte
		header http.Header
		want   int
	}{
		{"standard: unsigned", "shop", body, http.Header{"Webhook-Id": {"a"}, "Webhook-Timestamp": {fmt.Sprint(now.Unix())}}, 401},
		{"standard: forged body", "shop", forged, standardHeaders(t, whsec, "b", now, body), 401},
		{"standard: signature for another id", "shop", body, func() http.Header {
			h := standardHeaders(t, whsec, "c", now, body)
			h.Set("Webhook-Id", "d")
			return h
		}(), 401},
		{"standard: stale", "shop", body, standardHeaders(t, whsec, "e", now.Add(-time.Hour), body), 401},
		{"standard: timestamp moved forward, old signature", "shop", body, func() http.Header {
			h := standardHeaders(t, whsec, "f", now.Add(-time.Hour), body)
			h.Set("Webhook-Timestamp", fmt.Sprint(now.Unix()))
			return h
		}(), 401},
		{"standard: signature of another secret", "shop", body, standardHeaders(t, "whsec_"+strings.Repeat("QUJD", 8), "g", now, body), 401},
		{"hmac: unsigned", "github", body, nil, 401},
		{"hmac: forged body", "github", forged, http.Header{"X-Hub-Signature-256": {"sha256=" + webhook.SignHMAC("gh-secret", body, "hex")}}, 401},
		{"hmac: prefix missing", "github", body, http.Header{"X-Hub-Signature-256": {webhook.SignHMAC("gh-secret", body, "hex")}}, 401},
		{"bearer: no token", "crm", []byte(`{"kind":"x"}`), nil, 401},
		{"bearer: basic auth instead", "crm", []byte(`{"kind":"x"}`), http.Header{"Authorization": {"Basic Y3JtLXRva2VuOg=="}}, 401},
		{"bearer: token in another header", "crm", []byte(`{"kind":"x"}`), http.Header{"X-Token": {"crm-token"}}, 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if status, answer := e.post(tc.source, tc.body, tc.header); status != tc.want {
				t.Errorf("status %d, want %d: %v", status, tc.want, answer)
			}
		})
	}
	if n := len(e.stored()); n != 0 {
		t.Errorf("%d forged events stored", n)
	}

	// A replay of a genuine request within the tolerance is stored once.
	h := standardHeaders(t, whsec, "genuine", now, body)
	for i := range 3 {
		if status, answer := e.post("shop", body, h); status != 202 || (answer["duplicate"] == true) != (i > 0) {
			t.Errorf("replay %d: %d %v", i, status, answer)
		}
	}
	if n := len(e.stored()); n != 1 {
		t.Errorf("a replayed request stored %d times", n)
	}
}

// TestHostileBodiesAreRefusedCheaply sends an oversize body and a deeply
// nested one: both are refused, and handling them allocates about the
// body's size, not a multiple of it.
func TestHostileBodiesAreRefusedCheaply(t *testing.T) {
	e := newEnv(t)
	e.opts.MaxBodyBytes = 1 << 20
	hooks, err := e.webhooks(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	handler := hooks.Handler()
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"oversize", bytes.Repeat([]byte("a"), 8<<20), http.StatusRequestEntityTooLarge},
		{"deeply nested", bytes.Repeat([]byte("["), 1<<20-1), http.StatusBadRequest},
		{"many keys", []byte("{" + strings.Repeat(`"k":1,`, 150000) + `"k":1}`), http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			rw := httptest.NewRecorder()
			handler.ServeHTTP(rw, httptest.NewRequest("POST", "/hooks/open", bytes.NewReader(tc.body)))
			runtime.ReadMemStats(&after)
			if rw.Code != tc.want {
				t.Fatalf("status %d, want %d: %.200s", rw.Code, tc.want, rw.Body)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d bytes allocated for a %d-byte body", tc.name, allocated, len(tc.body))
			if tc.want != http.StatusAccepted && allocated > 2<<20 { // the 1 MiB limit, twice
				t.Errorf("refusing the body allocated %d bytes", allocated)
			}
		})
	}
}

package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzWebhook sends arbitrary bodies and headers to a webhook source: the
// handler never panics, always answers JSON with a known status, and only a
// 202 stores anything.
func FuzzWebhook(f *testing.F) {
	f.Add("open", []byte(`{"a":1}`), "application/json", "", "")
	f.Add("open", []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{}}`), "application/cloudevents+json", "", "")
	f.Add("open", []byte(`{"a":1}`), "", "ce-1", "1.0")
	f.Add("shop", []byte(`{"a":1}`), "application/json", "msg", "v1,abc")
	f.Add("open", []byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`), "application/json", "", "")
	f.Add("open", []byte("\xff\xfe"), "text/plain", "", "")
	f.Add("open", []byte(`[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","id":"2","source":"s","type":"t","data":{}}]`), "application/cloudevents-batch+json", "", "")
	f.Add("open", []byte(`payload=%7B%7D`), "application/x-www-form-urlencoded", "", "")
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, source string, body []byte, contentType, id, sig string) {
		count := func() uint64 {
			info, err := e.events.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return info.State.Msgs
		}
		before := count()
		r := httptest.NewRequest(http.MethodPost, "/hooks/x", bytes.NewReader(body))
		r.URL.Path = "/hooks/" + strings.ReplaceAll(source, "/", "")
		r.SetPathValue("source", source)
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if id != "" {
			r.Header.Set("Webhook-Id", id)
			r.Header.Set("Ce-Id", id)
			r.Header.Set("Webhook-Timestamp", "1700000000")
		}
		if sig != "" {
			r.Header.Set("Webhook-Signature", sig)
			r.Header.Set("Ce-Specversion", sig)
		}
		rw := httptest.NewRecorder()
		e.hooks.ServeHTTP(rw, r)
		switch rw.Code {
		case 202, 400, 401, 404, 413, 415:
		default:
			t.Fatalf("status %d: %s", rw.Code, rw.Body)
		}
		if !strings.HasPrefix(rw.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("answer is not JSON: %q", rw.Body)
		}
		// A batch stores several, or none when each is a duplicate or it
		// is empty; a refused request stores nothing at all.
		stored := count() - before
		answer := rw.Body.String()
		switch {
		case rw.Code != 202 && stored != 0:
			t.Fatalf("status %d but %d events stored", rw.Code, stored)
		case rw.Code == 202 && stored == 0 && !strings.Contains(answer, `"duplicate":true`) && !strings.Contains(answer, `"events":[]`):
			t.Fatalf("status 202 but nothing stored: %s", answer)
		case rw.Code == 202 && stored > 1 && !strings.Contains(answer, `"events":[`):
			t.Fatalf("%d events stored from one event", stored)
		}
	})
}

// FuzzDecodeForm: a form body is GitHub's one payload field or refused,
// and what it yields is that field, decoded.
func FuzzDecodeForm(f *testing.F) {
	f.Add([]byte("payload=" + url.QueryEscape(`{"zen":"Design for failure."}`)))
	f.Add([]byte("payload=%7B%7D&payload=%7B%7D"))
	f.Add([]byte("payload=%zz"))
	f.Add([]byte("a=1;b=2"))
	f.Add([]byte("payload"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := decodeForm(body)
		if err != nil {
			if got != nil {
				t.Fatalf("a result with an error: %q", got)
			}
			return
		}
		if len(got) > len(body) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(body))
		}
		again, err := decodeForm([]byte("payload=" + url.QueryEscape(string(got))))
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("re-encoding %q gives %q, %v", got, again, err)
		}
	})
}

// FuzzSanitizeRequestID: whatever a client sends, what is echoed and
// logged is short, of the safe characters only, and stable.
func FuzzSanitizeRequestID(f *testing.F) {
	for _, s := range []string{"", "req-1", "a\r\nb", "é", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SanitizeRequestID(in)
		if len(out) > maxRequestID { // every replaced rune becomes one byte
			t.Fatalf("%d bytes", len(out))
		}
		for _, r := range out {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/+=@", r)) {
				t.Fatalf("%q kept %q", in, r)
			}
		}
		if again := SanitizeRequestID(out); again != out {
			t.Fatalf("not stable: %q then %q", out, again)
		}
	})
}

// FuzzCheckSubject: an accepted subject is a literal NATS subject.
func FuzzCheckSubject(f *testing.F) {
	for _, s := range []string{"a.b", "a..b", "a.*", "a.>", "a b", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if CheckSubject(s) != nil {
			return
		}
		if s == "" || strings.ContainsAny(s, " \t\r\n*>") || strings.Contains(s, "..") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			t.Fatalf("accepted %q", s)
		}
	})
}

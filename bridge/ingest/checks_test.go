package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/webhook"
	"github.com/intercom-bridge/bridge/internal/syncbuf"
)

func TestSanitizeRequestID(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "req-42_a.b:c/d+e=f@g", "req-42_a.b:c/d+e=f@g"},
		{"uuid", "0b9c3f1e-8a6d-4c2b-9f0e-2d7a1c5b3e4f", "0b9c3f1e-8a6d-4c2b-9f0e-2d7a1c5b3e4f"},
		{"spaces and quotes", `a b"c`, "a_b_c"},
		{"control characters", "a\r\nb\x00c\x1b[31m", "a__b_c__31m"},
		{"non-ASCII", "é☃", "__"},
		{"too long", strings.Repeat("x", 1000), strings.Repeat("x", maxRequestID)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SanitizeRequestID(tc.in); got != tc.want {
				t.Errorf("SanitizeRequestID(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestCheckTextAndIsObject(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		text   string // "" when UTF-8
		object bool
	}{
		{"object", `{"a":"é"}`, "", true},
		{"object after space", " \n\t{}", "", true},
		{"array", `[1]`, "", false},
		{"string", `"x"`, "", false},
		{"number", `12`, "", false},
		{"null", `null`, "", false},
		{"empty", ``, "", false},
		{"latin-1 in a string", "{\"a\":\"caf\xe9\"}", "invalid byte at offset 9", true},
		{"a lone continuation byte", "{\"\x80\":1}", "invalid byte at offset 2", true},
		{"overlong encoding", "{\"a\":\"\xc0\xaf\"}", "invalid byte at offset 6", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckText([]byte(tc.body))
			switch {
			case tc.text == "" && err != nil:
				t.Errorf("CheckText: %v", err)
			case tc.text != "" && (err == nil || !strings.Contains(err.Error(), tc.text)):
				t.Errorf("CheckText: %v, want %q", err, tc.text)
			}
			if got := IsObject([]byte(tc.body)); got != tc.object {
				t.Errorf("IsObject = %v", got)
			}
		})
	}
}

func TestCheckSubject(t *testing.T) {
	cases := []struct{ in, want string }{
		{"crm.lead", ""},
		{"a", ""},
		{"orders.eu-1.paid_2", ""},
		{"", "token 1 is empty"},
		{"a..b", "token 2 is empty"},
		{"a.", "token 2 is empty"},
		{"a.*", `holds '*'`},
		{"a.>", `holds '>'`},
		{"a b", `holds ' '`},
		{"a\tb", `holds '\t'`},
		{"a\r\nPUB x", `holds '\r'`},
		{"a\x7f", `holds '\x7f'`},
		{strings.Repeat("a", 300), "longer than 256 bytes"},
		{"caf\xe9", "not UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			err := CheckSubject(tc.in)
			if tc.want == "" {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestBodyReader: buffers grow as bytes arrive, within the limit and the
// budget, and go back to the pool.
func TestBodyReader(t *testing.T) {
	cases := []struct {
		name     string
		body     []byte
		announce int64 // Content-Length; -1: unknown
		limit    int64
		inflight int64
		want     error // nil, errBusy or *http.MaxBytesError
	}{
		{"small", []byte(`{"a":1}`), 7, 1 << 20, 1 << 20, nil},
		{"unknown length", bytes.Repeat([]byte("a"), 100_000), -1, 1 << 20, 1 << 20, nil},
		{"exactly the limit", bytes.Repeat([]byte("a"), 10_000), -1, 10_000, 1 << 20, nil},
		{"one past the limit", bytes.Repeat([]byte("a"), 10_001), -1, 10_000, 1 << 20, &http.MaxBytesError{}},
		{"announced past the limit", []byte("a"), 20_000, 10_000, 1 << 20, &http.MaxBytesError{}},
		{"over the budget", bytes.Repeat([]byte("a"), 50_000), -1, 1 << 20, 20_000, errBusy},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			br := newBodyReader(tc.limit, tc.inflight, time.Second)
			req := httptest.NewRequest("POST", "/hooks/x", iotest.OneByteReader(bytes.NewReader(tc.body)))
			req.ContentLength = tc.announce
			b, err := br.read(httptest.NewRecorder(), req)
			var tooBig *http.MaxBytesError
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("error %v", err)
			case tc.want == nil && !bytes.Equal(b.Bytes(), tc.body):
				t.Errorf("read %d bytes, want %d", len(b.Bytes()), len(tc.body))
			case tc.want == errBusy && !errors.Is(err, errBusy):
				t.Errorf("error %v, want errBusy", err)
			case tc.want != nil && tc.want != errBusy && !errors.As(err, &tooBig):
				t.Errorf("error %v, want a MaxBytesError", err)
			}
			if held := br.budget.used.Load(); held > tc.inflight {
				t.Errorf("%d bytes held, over the budget of %d", held, tc.inflight)
			}
			b.release()
			if held := br.budget.used.Load(); held != 0 {
				t.Errorf("%d bytes still held after release", held)
			}
		})
	}
}

// TestBodyReaderAllocatesAsBytesArrive: announcing a large body and
// sending one byte costs a small buffer, not the announced size.
func TestBodyReaderAllocatesAsBytesArrive(t *testing.T) {
	br := newBodyReader(1<<20, 64<<20, time.Second)
	pr, pw := io.Pipe()
	req := httptest.NewRequest("POST", "/hooks/x", pr)
	req.ContentLength = 1 << 20
	done := make(chan *body)
	go func() {
		b, _ := br.read(httptest.NewRecorder(), req)
		done <- b
	}()
	// A pipe's Write returns once the reader has taken the bytes: after the
	// second, the reader is done with the first and waiting for more.
	pw.Write([]byte("{"))
	pw.Write([]byte(" "))
	if held := br.budget.used.Load(); held > initialBodyBuf {
		t.Errorf("one byte of a 1 MiB body holds %d bytes", held)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF)
	(<-done).release()
}

func TestWebhookRefusesBeforeTheBody(t *testing.T) {
	e := newEnv(t)
	now := time.Now()
	cases := []struct {
		name, source string
		header       http.Header
	}{
		{"bearer: wrong token", "crm", http.Header{"Authorization": {"Bearer nope"}}},
		{"standard: stale", "shop", standardHeaders(t, whsec, "s", now.Add(-time.Hour), []byte(`{}`))},
		{"standard: no signature", "shop", http.Header{"Webhook-Id": {"a"}, "Webhook-Timestamp": {fmt.Sprint(now.Unix())}}},
		{"hmac: malformed", "github", http.Header{"X-Hub-Signature-256": {"sha256=zz"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A body that is never sent: answering at all shows it was not read.
			r := httptest.NewRequest(http.MethodPost, "/hooks/"+tc.source, blockingReader{})
			r.ContentLength = 1 << 20
			for k, v := range tc.header {
				r.Header[k] = v
			}
			rw := httptest.NewRecorder()
			done := make(chan struct{})
			go func() { e.hooks.Handler().ServeHTTP(rw, r); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler waited for the body")
			}
			if rw.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", rw.Code)
			}
		})
	}
}

// blockingReader never delivers a byte.
type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { select {} }

func TestWebhookRefusesWhatRulesCannotRead(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name   string
		body   string
		header http.Header
		want   string
	}{
		{"array", `[1,2]`, nil, "the event must be a JSON object"},
		{"string", `"hello"`, nil, "the event must be a JSON object"},
		{"not UTF-8", "{\"a\":\"caf\xe9\"}", nil, "the body is not UTF-8"},
		{"CloudEvent with array data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":[1]}`, http.Header{"Content-Type": {"application/cloudevents+json"}}, "data must be a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, answer := e.post("open", []byte(tc.body), tc.header)
			if status != http.StatusBadRequest || !strings.Contains(fmt.Sprint(answer["error"]), tc.want) {
				t.Errorf("%d %v, want 400 %q", status, answer, tc.want)
			}
		})
	}
	if n := len(e.stored()); n != 0 {
		t.Errorf("%d refused bodies stored", n)
	}
	// A subject from the payload must be a literal NATS subject.
	for _, kind := range []string{"a b", "x.*", "", "a..b"} {
		status, _ := e.post("crm", fmt.Appendf(nil, `{"kind":%q}`, kind), http.Header{"Authorization": {"Bearer crm-token"}})
		if status != http.StatusBadRequest && kind != "" {
			t.Errorf("subject crm.%q: status %d, want 400", kind, status)
		}
	}
	if status, _ := e.post("crm", []byte(`{"kind":"lead"}`), http.Header{"Authorization": {"Bearer crm-token"}}); status != 202 {
		t.Errorf("a good subject: %d", status)
	}
}

// TestDefaultIDsComeFromSignedData: a replay of a signed request with new
// unsigned headers is the same event.
func TestDefaultIDsComeFromSignedData(t *testing.T) {
	e := newEnv(t)
	e.sources[1].Webhook.ID = "" // github: no id expression, so the defaults apply
	hooks, err := e.webhooks(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	e.hooks = hooks
	body := []byte(`{"type":"order.paid"}`)
	sig := "sha256=" + webhook.SignHMAC("gh-secret", body, "hex")
	ids := map[string]bool{}
	for i := range 3 {
		h := http.Header{"X-Hub-Signature-256": {sig}, "Webhook-Id": {fmt.Sprint("fresh-", i)}, "X-Request-Id": {fmt.Sprint("r", i)},
			"Ce-Id": {fmt.Sprint("ce-", i)}, "Ce-Source": {"/s"}, "Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Content-Type": {"application/json"}}
		status, answer := e.post("github", body, h)
		if status != 202 {
			t.Fatalf("%d %v", status, answer)
		}
		ids[fmt.Sprint(answer["id"])] = true
	}
	if len(ids) != 1 || len(e.stored()) != 1 {
		t.Errorf("ids %v, %d stored; want one event", ids, len(e.stored()))
	}
	// standard-webhooks signs webhook-id: a new one is a new signature.
	now := time.Now()
	for _, id := range []string{"m1", "m1"} {
		h := standardHeaders(t, whsec, id, now, body)
		h.Set("X-Request-Id", "r-"+fmt.Sprint(time.Now().UnixNano()))
		if status, answer := e.post("shop", body, h); status != 202 || answer["id"] != "m1" {
			t.Errorf("%d %v", status, answer)
		}
	}
}

func TestWebhookCloseOnTransferEncoding(t *testing.T) {
	e := newEnv(t)
	r := httptest.NewRequest(http.MethodPost, "/hooks/open", strings.NewReader(`{"a":1}`))
	r.TransferEncoding = []string{"chunked"}
	rw := httptest.NewRecorder()
	e.hooks.Handler().ServeHTTP(rw, r)
	if rw.Header().Get("Connection") != "close" {
		t.Errorf("Connection %q, want close", rw.Header().Get("Connection"))
	}
	r = httptest.NewRequest(http.MethodPost, "/hooks/open", strings.NewReader(`{"a":2}`))
	rw = httptest.NewRecorder()
	e.hooks.Handler().ServeHTTP(rw, r)
	if rw.Header().Get("Connection") != "" {
		t.Errorf("a request framed by Content-Length alone: Connection %q", rw.Header().Get("Connection"))
	}
	// An answer that leaves the body unread closes the connection too,
	// rather than wait for the body.
	for _, path := range []string{"/elsewhere", "/hooks/nosuchsource"} {
		rw = httptest.NewRecorder()
		e.hooks.Handler().ServeHTTP(rw, httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"a":3}`)))
		if rw.Code != http.StatusNotFound || rw.Header().Get("Connection") != "close" {
			t.Errorf("%s: %d, Connection %q; want 404 and close", path, rw.Code, rw.Header().Get("Connection"))
		}
	}
}

// TestUnknownSourceLogIsRateLimited: a flood of random paths logs one line
// per interval.
func TestUnknownSourceLogIsRateLimited(t *testing.T) {
	e := newEnv(t)
	var logs syncbuf.Buffer
	hooks, err := e.webhooks(zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		rw := httptest.NewRecorder()
		hooks.Handler().ServeHTTP(rw, httptest.NewRequest("POST", fmt.Sprintf("/hooks/random-%d", i), strings.NewReader("{}")))
		if rw.Code != http.StatusNotFound {
			t.Fatalf("status %d", rw.Code)
		}
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 {
		t.Errorf("%d log lines for 1000 requests to unknown sources, want 1:\n%.500s", n, logs.String())
	}
}

func TestStoreHealth(t *testing.T) {
	full := &jetstream.APIError{Code: 500, ErrorCode: 10047, Description: "insufficient storage resources available"}
	steps := []struct {
		err  error
		want string // a part of the problem; "" healthy
	}{
		{nil, ""},
		{full, "insufficient storage resources available (10047)"},
		{errors.New("nats: timeout"), "insufficient storage"}, // not a store problem: the last one stands
		{nil, ""},
		{fmt.Errorf("publish: %w", &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"}), "insufficient resources"},
	}
	w := &Webhooks{}
	for i, s := range steps {
		w.store.record(s.err)
		got := w.StoreProblem()
		if (s.want == "") != (got == "") || !strings.Contains(got, s.want) {
			t.Errorf("step %d: problem %q, want %q", i, got, s.want)
		}
	}
}

// TestRefusedAccessLogIsRateLimited: forged requests to a known source log
// one line per status per interval, and stored events every one.
func TestRefusedAccessLogIsRateLimited(t *testing.T) {
	e := newEnv(t)
	var logs syncbuf.Buffer
	hooks, err := e.webhooks(zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		r := httptest.NewRequest("POST", "/hooks/crm", strings.NewReader(`{"kind":"x"}`))
		r.Header.Set("Authorization", "Bearer forged")
		hooks.Handler().ServeHTTP(httptest.NewRecorder(), r)
	}
	for i := range 3 {
		hooks.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/hooks/open", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i))))
	}
	if n := strings.Count(logs.String(), `"status":401`); n != 1 {
		t.Errorf("%d lines for 100 forged requests, want 1", n)
	}
	if n := strings.Count(logs.String(), `"status":202`); n != 3 {
		t.Errorf("%d lines for 3 stored events, want 3", n)
	}
}

// The answer to a stored event is what writeJSON writes for it.
func TestWriteAccepted(t *testing.T) {
	for _, a := range []accepted{
		{ID: "msg_2Lx9"},
		{ID: "BRIDGE_EVENTS-17", Duplicate: true},
		{ID: `<a href="x">&amp;</a>`},
		{ID: "caf\u00e9 \u2028 \"q\" \\ \x01 \xff"},
		{},
	} {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		writeAccepted(got, a)
		writeJSON(want, http.StatusAccepted, a)
		if got.Code != want.Code || got.Body.String() != want.Body.String() ||
			!reflect.DeepEqual(got.Header(), want.Header()) {
			t.Errorf("%+v: got %d %v %q, want %d %v %q", a, got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

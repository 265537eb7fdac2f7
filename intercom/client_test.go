package intercom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// The seed's example request and answer, verbatim except for the admin's
// email address, which the seed's page has obfuscated.
const (
	seedRequest = `{
  "message_type": "email",
  "subject": "Hey",
  "body": "Ponies, cute small horses or something more sinister?",
  "template": "plain",
  "from": {
    "type": "admin",
    "id": "394051"
  },
  "to": {
    "type": "user",
    "id": "536e564f316c83104c000020"
  }
}`
	seedResponse = `{
  "type": "admin_message",
  "id": "2001",
  "created_at": 1401916877,
  "message_type": "email",
  "subject" : "Hey",
  "body" : "Ponies, cute small horses or something more sinister?",
  "template": "plain",
  "owner": {
    "email": "wash@serenity.example",
    "id": "394051",
    "name": "Wash",
    "type": "admin"
  }
}`
)

func TestSeedRoundTrip(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, nil)

	// The seed's request decodes into Message with no field left over...
	var m intercom.Message
	dec := json.NewDecoder(strings.NewReader(seedRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("seed request does not fit Message: %v", err)
	}
	before := time.Now().Truncate(time.Second)
	got, err := c.CreateMessage(context.Background(), m)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	after := time.Now()

	// ...and goes out as the same JSON, with the seed's headers.
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/messages" {
		t.Errorf("request line = %s %s, want POST /messages", r.Method, r.Path)
	}
	assertSameJSON(t, "request body", r.Body, []byte(seedRequest), "")
	for name, want := range map[string]string{
		"Authorization":    "Bearer " + srv.Token(),
		"Accept":           "application/json",
		"Content-Type":     "application/json",
		"Intercom-Version": intercom.DefaultVersion,
		"User-Agent":       "intercom-bridge/v0.0.0-test",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}

	// The fake answers as the seed shows, and the client reads all of it.
	assertSameJSON(t, "answer", r.Response, []byte(seedResponse), "created_at")
	want := &intercom.SentMessage{
		Type:        "admin_message",
		ID:          "2001",
		CreatedAt:   got.CreatedAt,
		MessageType: "email",
		Subject:     "Hey",
		Body:        "Ponies, cute small horses or something more sinister?",
		Template:    "plain",
		Owner:       &intercom.Admin{Type: "admin", ID: "394051", Name: "Wash", Email: "wash@serenity.example"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CreateMessage =\n%+v\nwant\n%+v", got, want)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.After(after) {
		t.Errorf("CreatedAt = %v, want between %v and %v", got.CreatedAt, before, after)
	}
}

// assertSameJSON compares two JSON documents by value, ignoring the named
// top-level field if not empty.
func assertSameJSON(t *testing.T, what string, got, want []byte, ignore string) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want: %v", what, err)
	}
	if ignore != "" {
		if _, ok := g[ignore]; !ok {
			t.Errorf("%s: no %q in %s", what, ignore, got)
		}
		delete(g, ignore)
		delete(w, ignore)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s =\n%s\nwant\n%s", what, got, want)
	}
}

func TestCreateMessage(t *testing.T) {
	yes := true
	tests := []struct {
		name     string
		msg      intercom.Message
		wantSent string // the JSON the fake must record
		want     intercom.SentMessage
	}{
		{
			name: "email to a user by email, template defaults to plain",
			msg: intercom.Message{
				MessageType: "email", Subject: "Plato Quote", Body: "And what, Socrates, is the food of the soul?",
				From: intercom.From{ID: adminID}, To: intercom.To{Type: "user", Email: "kaylee@serenity.example"},
			},
			wantSent: `{"message_type":"email","subject":"Plato Quote","body":"And what, Socrates, is the food of the soul?","template":"plain",
				"from":{"type":"admin","id":"394051"},"to":{"type":"user","email":"kaylee@serenity.example"}}`,
			want: intercom.SentMessage{MessageType: "email", Subject: "Plato Quote", Body: "And what, Socrates, is the food of the soul?", Template: "plain"},
		},
		{
			name: "personal email to a user by user_id, HTML body sent unescaped",
			msg: intercom.Message{
				MessageType: "email", Subject: "This Land", Body: "<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>", Template: "personal",
				From: intercom.From{Type: "admin", ID: adminID}, To: intercom.To{Type: "user", UserID: "customer-7"},
			},
			wantSent: `{"message_type":"email","subject":"This Land","body":"<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>","template":"personal",
				"from":{"type":"admin","id":"394051"},"to":{"type":"user","user_id":"customer-7"}}`,
			want: intercom.SentMessage{MessageType: "email", Subject: "This Land", Body: "<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>", Template: "personal"},
		},
		{
			name: "inapp to a contact by id, without contact reply",
			msg: intercom.Message{
				MessageType: "inapp", Body: "Your trial ends tomorrow.",
				From: intercom.From{Type: "admin", ID: adminID}, To: intercom.To{Type: "contact", ID: "65a0c0ffee"},
				CreateConversationWithoutContactReply: &yes,
			},
			wantSent: `{"message_type":"inapp","body":"Your trial ends tomorrow.","from":{"type":"admin","id":"394051"},
				"to":{"type":"contact","id":"65a0c0ffee"},"create_conversation_without_contact_reply":true}`,
			want: intercom.SentMessage{MessageType: "inapp", Body: "Your trial ends tomorrow."},
		},
		{
			name: "inapp to a lead by user_id",
			msg: intercom.Message{
				MessageType: "inapp", Body: "Hi",
				From: intercom.From{Type: "admin", ID: adminID}, To: intercom.To{Type: "lead", UserID: "lead-42"},
			},
			wantSent: `{"message_type":"inapp","body":"Hi","from":{"type":"admin","id":"394051"},"to":{"type":"lead","user_id":"lead-42"}}`,
			want:     intercom.SentMessage{MessageType: "inapp", Body: "Hi"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			c := newClient(t, srv, nil)
			got, err := c.CreateMessage(context.Background(), tt.msg)
			if err != nil {
				t.Fatalf("CreateMessage: %v", err)
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("fake got %d requests, want 1", len(reqs))
			}
			assertSameJSON(t, "request body", reqs[0].Body, []byte(tt.wantSent), "")
			if bytes.Contains(reqs[0].Body, []byte(`\u003c`)) {
				t.Errorf("body has escaped HTML: %s", reqs[0].Body)
			}
			want := tt.want
			want.Type, want.ID, want.CreatedAt = "admin_message", "2001", got.CreatedAt
			want.Owner = &intercom.Admin{Type: "admin", ID: adminID, Name: "Wash", Email: "wash@serenity.example"}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("CreateMessage =\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}

func TestConfigHeaders(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *intercom.Config) {
		cfg.Version = "2.7"
		cfg.UserAgent = "intercom-bridge/v1.2.3"
	})
	if _, err := c.CreateMessage(context.Background(), email()); err != nil {
		t.Fatal(err)
	}
	h := srv.Requests()[0].Header
	if got := h.Get("Intercom-Version"); got != "2.7" {
		t.Errorf("Intercom-Version = %q, want 2.7", got)
	}
	if got := h.Get("User-Agent"); got != "intercom-bridge/v1.2.3" {
		t.Errorf("User-Agent = %q, want intercom-bridge/v1.2.3", got)
	}
}

func TestAdmins(t *testing.T) {
	srv := newFake(t)
	srv.AddAdmin("814860", "Zoe", "zoe@serenity.example")
	c := newClient(t, srv, nil)
	ctx := context.Background()

	me, err := c.Me(ctx)
	if err != nil {
		t.Fatalf("Me: %v", err)
	}
	if want := (intercom.Admin{Type: "admin", ID: adminID, Name: "Wash", Email: "wash@serenity.example"}); *me != want {
		t.Errorf("Me = %+v, want %+v", *me, want)
	}
	admins, err := c.ListAdmins(ctx)
	if err != nil {
		t.Fatalf("ListAdmins: %v", err)
	}
	want := []intercom.Admin{
		{Type: "admin", ID: adminID, Name: "Wash", Email: "wash@serenity.example"},
		{Type: "admin", ID: "814860", Name: "Zoe", Email: "zoe@serenity.example"},
	}
	if !reflect.DeepEqual(admins, want) {
		t.Errorf("ListAdmins = %+v, want %+v", admins, want)
	}
	for _, r := range srv.Requests() {
		if r.Method != "GET" || r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "Bearer "+srv.Token() {
			t.Errorf("%s %s with headers %v", r.Method, r.Path, r.Header)
		}
	}

	// A rejected token is recognisable, which is what `bridge check` needs.
	bad := newClient(t, srv, func(cfg *intercom.Config) { cfg.Token = "not-the-token" })
	if _, err := bad.Me(ctx); !intercom.IsUnauthorized(err) {
		t.Errorf("Me with a wrong token: err = %v, want unauthorized", err)
	}
	if _, err := bad.ListAdmins(ctx); !intercom.IsUnauthorized(err) {
		t.Errorf("ListAdmins with a wrong token: err = %v, want unauthorized", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     intercom.Config
		wantErr string
	}{
		{"defaults", intercom.Config{Token: "tok"}, ""},
		{"EU", intercom.Config{Token: "tok", BaseURL: intercom.BaseURLEU}, ""},
		{"AU with trailing slash", intercom.Config{Token: "tok", BaseURL: intercom.BaseURLAU + "/"}, ""},
		{"proxy path", intercom.Config{Token: "tok", BaseURL: "http://proxy.internal:8080/intercom"}, ""},
		{"no token", intercom.Config{}, "access token is required"},
		{"token with a newline", intercom.Config{Token: "secret-abc\n"}, "white space or control characters"},
		{"not a URL", intercom.Config{Token: "tok", BaseURL: "://nope"}, "base URL"},
		{"no scheme", intercom.Config{Token: "tok", BaseURL: "api.intercom.io"}, "want http(s)://host"},
		{"query", intercom.Config{Token: "tok", BaseURL: "https://api.intercom.io?x=1"}, "want http(s)://host"},
		{"negative limit", intercom.Config{Token: "tok", RateLimitPerMinute: -1}, "must not be negative"},
		{"negative timeout", intercom.Config{Token: "tok", Timeout: -time.Second}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := intercom.New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.CloseIdleConnections()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.cfg.Token != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.cfg.Token)) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	srv := newFake(t)
	var (
		mu  sync.Mutex
		obs []intercom.Observation
	)
	c := newClient(t, srv, func(cfg *intercom.Config) {
		cfg.Observe = func(o intercom.Observation) {
			mu.Lock()
			defer mu.Unlock()
			obs = append(obs, o)
		}
	})
	ctx := context.Background()
	c.CreateMessage(ctx, email())      // no rate-limit headers
	srv.SetWindowLimit(100, time.Hour) // headers from now on
	c.Me(ctx)
	m := email()
	m.Subject = ""
	c.CreateMessage(ctx, m) // 422
	srv.DropNext(1)
	c.CreateMessage(ctx, email()) // no answer (a GET would be retried by net/http)

	want := []struct {
		op        string
		status    int
		remaining int
	}{
		{"create_message", 200, -1},
		{"me", 200, 99},
		{"create_message", 422, 98},
		{"create_message", 0, -1},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(obs) != len(want) {
		t.Fatalf("got %d observations, want %d: %+v", len(obs), len(want), obs)
	}
	for i, w := range want {
		o := obs[i]
		if o.Operation != w.op || o.StatusCode != w.status || o.RateLimitRemaining != w.remaining {
			t.Errorf("observation %d = %+v, want operation %s, status %d, remaining %d", i, o, w.op, w.status, w.remaining)
		}
		if o.Duration <= 0 || o.Waited < 0 {
			t.Errorf("observation %d = %+v, want a positive duration", i, o)
		}
	}
}

func TestPermissiveFake(t *testing.T) {
	srv := newFake(t, intercomtest.WithPermissive(true))
	c := newClient(t, srv, nil)
	m := email()
	m.To = intercom.To{Type: "user", Email: "anyone@example.com"}
	if _, err := c.CreateMessage(context.Background(), m); err != nil {
		t.Errorf("unknown user with a permissive fake: %v", err)
	}
	m.From.ID = "1"
	_, err := c.CreateMessage(context.Background(), m)
	if d := intercom.Classify(err); d.Class != intercom.RetryLater || !strings.Contains(d.Reason, "Admin Not Found") {
		t.Errorf("unknown admin with a permissive fake: %+v", d)
	}
}

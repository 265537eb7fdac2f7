package intercom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// The seed's example request and answer in their 2.x form: the admin id is
// a number, as Intercom's SDKs send it, and the answer has a conversation id.
const (
	seedRequest = `{
  "message_type": "email",
  "subject": "Hey",
  "body": "Ponies, cute small horses or something more sinister?",
  "template": "plain",
  "from": {
    "type": "admin",
    "id": 394051
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
  },
  "conversation_id": "1002001"
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

		ConversationID: "1002001",
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
	user := intercom.Recipient{Type: "user", ID: userID}
	lead := intercom.Recipient{Type: "lead", ID: leadID}
	tests := []struct {
		name     string
		version  string // DefaultVersion when empty
		msg      intercom.Message
		wantSent string // the JSON the fake must record
		want     intercom.SentMessage
	}{
		{
			name: "email, template defaults to plain, one recipient as an object",
			msg: intercom.Message{
				MessageType: "email", Subject: "Plato Quote", Body: "And what, Socrates, is the food of the soul?",
				From: intercom.From{ID: adminID}, To: []intercom.Recipient{user},
			},
			wantSent: `{"message_type":"email","subject":"Plato Quote","body":"And what, Socrates, is the food of the soul?","template":"plain",
				"from":{"type":"admin","id":394051},"to":{"type":"user","id":"536e564f316c83104c000020"}}`,
			want: intercom.SentMessage{MessageType: "email", Subject: "Plato Quote", Body: "And what, Socrates, is the food of the soul?", Template: "plain"},
		},
		{
			name: "personal email, HTML body sent unescaped, back-dated",
			msg: intercom.Message{
				MessageType: "email", Subject: "This Land", Body: "<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>", Template: "personal",
				From: intercom.From{Type: "admin", ID: adminID}, To: []intercom.Recipient{user}, CreatedAt: 1590000000,
			},
			wantSent: `{"message_type":"email","subject":"This Land","body":"<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>","template":"personal",
				"from":{"type":"admin","id":394051},"to":{"type":"user","id":"536e564f316c83104c000020"},"created_at":1590000000}`,
			want: intercom.SentMessage{MessageType: "email", Subject: "This Land", Body: "<p>Har har har! Mine is an evil laugh & a <b>bold</b> one</p>", Template: "personal", CreatedAt: time.Unix(1590000000, 0)},
		},
		{
			name:    "inapp to a lead at 2.11, without contact reply",
			version: "2.11",
			msg: intercom.Message{
				MessageType: "inapp", Body: "Your trial ends tomorrow.",
				From: intercom.From{Type: "admin", ID: adminID}, To: []intercom.Recipient{lead},
				CreateConversationWithoutContactReply: &yes,
			},
			wantSent: `{"message_type":"inapp","body":"Your trial ends tomorrow.","from":{"type":"admin","id":394051},
				"to":{"type":"lead","id":"65a0c0ffee65a0c0ffee65a0"},"create_conversation_without_contact_reply":true}`,
			want: intercom.SentMessage{MessageType: "inapp", Body: "Your trial ends tomorrow."},
		},
		{
			name: "several recipients, cc and bcc as arrays",
			msg: intercom.Message{
				MessageType: "inapp", Body: "Hi",
				From: intercom.From{Type: "admin", ID: adminID},
				To:   []intercom.Recipient{user, lead}, Cc: []intercom.Recipient{user}, Bcc: []intercom.Recipient{lead},
			},
			wantSent: `{"message_type":"inapp","body":"Hi","from":{"type":"admin","id":394051},
				"to":[{"type":"user","id":"536e564f316c83104c000020"},{"type":"lead","id":"65a0c0ffee65a0c0ffee65a0"}],
				"cc":[{"type":"user","id":"536e564f316c83104c000020"}],"bcc":[{"type":"lead","id":"65a0c0ffee65a0c0ffee65a0"}]}`,
			want: intercom.SentMessage{MessageType: "inapp", Body: "Hi"},
		},
		{
			name: "an admin id that is not all digits stays a string",
			msg: intercom.Message{
				MessageType: "inapp", Body: "Hi", From: intercom.From{Type: "admin", ID: "0394051"}, To: []intercom.Recipient{user},
			},
			wantSent: `{"message_type":"inapp","body":"Hi","from":{"type":"admin","id":"0394051"},"to":{"type":"user","id":"536e564f316c83104c000020"}}`,
			want:     intercom.SentMessage{MessageType: "inapp", Body: "Hi"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			srv.AddAdmin("0394051", "Wash, padded", "wash0@serenity.example")
			c := newClient(t, srv, func(cfg *intercom.Config) { cfg.Version = tt.version })
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
			want.Type, want.ID, want.ConversationID = "admin_message", "2001", "1002001"
			if want.CreatedAt.IsZero() {
				want.CreatedAt = got.CreatedAt
			}
			want.Owner = got.Owner
			if got.Owner == nil || got.Owner.ID != tt.msg.From.ID {
				t.Errorf("owner = %+v, want admin %s", got.Owner, tt.msg.From.ID)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("CreateMessage =\n%+v\nwant\n%+v", *got, want)
			}

			// The recorded body decodes back into the message sent.
			sent := tt.msg
			sent.From.Type = "admin"
			if sent.MessageType == "email" && sent.Template == "" {
				sent.Template = "plain"
			}
			if rec := reqs[0].Message; rec == nil || !reflect.DeepEqual(*rec, sent) {
				t.Errorf("recorded message = %+v, want %+v", rec, sent)
			}
		})
	}
}

// A message a version cannot express is refused before anything is sent.
func TestCreateMessageVersionLimits(t *testing.T) {
	user := intercom.Recipient{Type: "user", ID: userID}
	lead := intercom.Recipient{Type: "lead", ID: leadID}
	tests := []struct {
		name    string
		version string
		edit    func(*intercom.Message)
		wantErr string // "" when it must be sent
	}{
		{"one recipient at 2.11", "2.11", func(*intercom.Message) {}, ""},
		{"two recipients at 2.13", "2.13", func(m *intercom.Message) { m.To = append(m.To, lead) }, "need Intercom-Version 2.14"},
		{"cc at 2.12", "2.12", func(m *intercom.Message) { m.Cc = []intercom.Recipient{lead} }, "need Intercom-Version 2.14"},
		{"bcc at 2.11", "2.11", func(m *intercom.Message) { m.Bcc = []intercom.Recipient{lead} }, "need Intercom-Version 2.14"},
		{"no recipient", "2.14", func(m *intercom.Message) { m.To = nil }, "no recipient"},
		{"two recipients at 2.14", "2.14", func(m *intercom.Message) { m.To = append(m.To, lead) }, ""},
		{"cc at 2.16", "2.16", func(m *intercom.Message) { m.Cc = []intercom.Recipient{user} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t)
			c := newClient(t, srv, func(cfg *intercom.Config) { cfg.Version = tt.version })
			m := email()
			tt.edit(&m)
			_, err := c.CreateMessage(context.Background(), m)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CreateMessage: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, intercom.ErrInvalidMessage) {
				t.Fatalf("err = %v, want ErrInvalidMessage saying %q", err, tt.wantErr)
			}
			if d := intercom.Classify(err); d.Class != intercom.Permanent || d.Uncertain {
				t.Errorf("Classify = %+v, want permanent and certain", d)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Errorf("fake got %d requests, want none", n)
			}
		})
	}
}

// A message survives its own JSON (as the pipeline stores it) and decodes
// from the wire form of every version.
func TestMessageJSON(t *testing.T) {
	yes := true
	m := intercom.Message{
		MessageType: "email", Subject: "s", Body: "b", Template: "plain",
		From: intercom.From{Type: "admin", ID: "394051"},
		To:   []intercom.Recipient{{Type: "user", ID: "a"}, {Type: "lead", ID: "b"}},
		Cc:   []intercom.Recipient{{Type: "user", ID: "c"}}, Bcc: []intercom.Recipient{{Type: "user", ID: "d"}},
		CreatedAt: 1590000000, CreateConversationWithoutContactReply: &yes,
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back intercom.Message
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip through %s =\n%+v\nwant\n%+v", data, back, m)
	}

	tests := []struct {
		name, json string
		want       intercom.Message
	}{
		{"object recipient, string admin id", `{"message_type":"inapp","body":"b","from":{"type":"admin","id":"7"},"to":{"type":"user","id":"a"}}`,
			intercom.Message{MessageType: "inapp", Body: "b", From: intercom.From{Type: "admin", ID: "7"}, To: []intercom.Recipient{{Type: "user", ID: "a"}}}},
		{"numeric admin id, cc object", `{"message_type":"inapp","body":"b","from":{"type":"admin","id":7},"to":[{"type":"user","id":"a"}],"cc":{"type":"lead","id":"c"}}`,
			intercom.Message{MessageType: "inapp", Body: "b", From: intercom.From{Type: "admin", ID: "7"}, To: []intercom.Recipient{{Type: "user", ID: "a"}}, Cc: []intercom.Recipient{{Type: "lead", ID: "c"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got intercom.Message
			if err := json.Unmarshal([]byte(tt.json), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigHeaders(t *testing.T) {
	srv := newFake(t)
	c := newClient(t, srv, func(cfg *intercom.Config) {
		cfg.Version = "2.16"
		cfg.UserAgent = "intercom-bridge/v1.2.3"
	})
	if _, err := c.CreateMessage(context.Background(), email()); err != nil {
		t.Fatal(err)
	}
	h := srv.Requests()[0].Header
	if got := h.Get("Intercom-Version"); got != "2.16" {
		t.Errorf("Intercom-Version = %q, want 2.16", got)
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
		{"oldest version", intercom.Config{Token: "tok", Version: "2.11"}, ""},
		{"newest version", intercom.Config{Token: "tok", Version: "2.16"}, ""},
		{"1.x version", intercom.Config{Token: "tok", Version: "1.4"}, `unsupported Intercom-Version "1.4": supported versions are 2.11, 2.12, 2.13, 2.14, 2.15, 2.16`},
		{"too old a 2.x", intercom.Config{Token: "tok", Version: "2.10"}, "unsupported Intercom-Version"},
		{"unknown version", intercom.Config{Token: "tok", Version: "Unstable"}, "unsupported Intercom-Version"},
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
	srv.SetWindowLimit(100, time.Hour)
	c.CreateMessage(ctx, email())
	c.SearchContacts(ctx, "email", "kaylee@serenity.example")
	c.GetContact(ctx, userID)
	c.FindContactByExternalID(ctx, "customer-7")
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
		{"create_message", 200, 99},
		{"search_contacts", 200, 98},
		{"get_contact", 200, 97},
		{"find_contact_by_external_id", 200, 96},
		{"me", 200, 95},
		{"create_message", 422, 94},
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
	m.To = []intercom.Recipient{{Type: "user", ID: "0123456789abcdef01234567"}}
	if _, err := c.CreateMessage(context.Background(), m); err != nil {
		t.Errorf("unknown user with a permissive fake: %v", err)
	}
	m.From.ID = "1"
	_, err := c.CreateMessage(context.Background(), m)
	if d := intercom.Classify(err); d.Class != intercom.RetryLater || !strings.Contains(d.Reason, "Admin Not Found") {
		t.Errorf("unknown admin with a permissive fake: %+v", d)
	}
}

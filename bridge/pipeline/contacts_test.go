package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
	"github.com/intercom-bridge/bridge/rules"
)

// contactsBucket is the contacts cache bucket on a real NATS server.
func contactsBucket(t *testing.T) KV {
	t.Helper()
	js := natstest.JetStream(t)
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), testTopology.Contacts)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func TestContactsLookUpOncePerPerson(t *testing.T) {
	t.Parallel()
	user := intercom.Contact{ID: "65b2a9c0d1e2f3a4b5c6d7e8", Role: "user", ExternalID: "u-42", Email: "ada@example.com"}
	kv := contactsBucket(t)
	srv, client := contractFake(t, "2.14", []intercom.Contact{user})
	opts := ContactsOptions{Finder: client, FindByExternalID: true, TTL: time.Hour, NegativeTTL: time.Second}
	replica1, replica2 := NewContacts(kv, opts), NewContacts(kv, opts)
	p := rules.Recipient{Type: "user", UserID: "u-42"}

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			r, err := replica1.Resolve(context.Background(), p, zerolog.Nop())
			if err == nil && r != user.Recipient() {
				err = errors.New("resolved to " + r.ID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Count(http.MethodGet, "/contacts/find_by_external_id/"); n != 1 {
		t.Errorf("20 concurrent look-ups of one person made %d requests, want 1", n)
	}
	// Later, and from another replica: the shared cache answers.
	for _, c := range []*Contacts{replica1, replica2} {
		if r, err := c.Resolve(context.Background(), p, zerolog.Nop()); err != nil || r != user.Recipient() {
			t.Fatalf("resolve: %v, %v", r, err)
		}
	}
	if n := srv.Count(http.MethodGet, "/contacts/"); n != 1 {
		t.Errorf("%d requests after the cache was warm, want still 1", n)
	}

	// Nobody: cached for the negative TTL, then asked again.
	nobody := rules.Recipient{Type: "lead", Email: "nobody@example.com"}
	for range 2 {
		_, err := replica2.Resolve(context.Background(), nobody, zerolog.Nop())
		var nf *ContactNotFoundError
		if !errors.As(err, &nf) || nf.Field != "email" {
			t.Fatalf("unknown person: %v, want a ContactNotFoundError on email", err)
		}
	}
	if n := srv.Count(http.MethodPost, "/contacts/search"); n != 1 {
		t.Errorf("two look-ups of nobody made %d searches, want 1", n)
	}
	poll.For(t, 30*time.Second, "the negative entry to expire and nobody to be asked for again", func() bool {
		replica2.Resolve(context.Background(), nobody, zerolog.Nop())
		return srv.Count(http.MethodPost, "/contacts/search") == 2
	})
}

func TestChooseContact(t *testing.T) {
	t.Parallel()
	u := intercom.Contact{ID: "u1", Role: "user"}
	u2 := intercom.Contact{ID: "u2", Role: "user"}
	l := intercom.Contact{ID: "l1", Role: "lead"}
	tests := []struct {
		name      string
		found     []intercom.Contact
		requested string
		want      string
		says      bool
	}{
		{"the requested lead among a lead and a user", []intercom.Contact{u, l}, "lead", "l1", false},
		{"the requested user among a lead and a user", []intercom.Contact{l, u}, "user", "u1", false},
		{"a user asked, only a lead: the lead, said", []intercom.Contact{l}, "user", "l1", true},
		{"a lead asked, only a user: the user, said", []intercom.Contact{u}, "lead", "u1", true},
		{"contact: the user first, said", []intercom.Contact{l, u}, "contact", "u1", true},
		{"contact: one lead", []intercom.Contact{l}, "contact", "l1", false},
		{"two users: the first, said", []intercom.Contact{u, u2}, "user", "u1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := choose(tt.found, tt.requested)
			if got.ID != tt.want || (why != "") != tt.says {
				t.Errorf("choose = %s (%q), want %s (said: %v)", got.ID, why, tt.want, tt.says)
			}
		})
	}
}

// A message to a person Intercom does not know ends as one dead letter
// contact_not_found, with the key searched; it is not retried.
func TestSenderContactNotFound(t *testing.T) {
	t.Parallel()
	_, finder := contractFake(t, "2.14", nil)
	client := &fakeSender{}
	f := newSenderFixture(t, client, senderSetup{contacts: finder})
	job := testJob("ghost", "1")
	job.Message.To = []rules.Recipient{{Type: "user", UserID: "u-404"}}
	f.publish(t, job)
	poll.For(t, 30*time.Second, "the dead letter", func() bool { return f.deadLetters(ReasonContactNotFound) == 1 })
	poll.For(t, 30*time.Second, "the job acked", f.outboxEmpty)
	entries := f.deadLetterEntries(t)
	if len(entries) != 1 || entries[0].Reason != ReasonContactNotFound || entries[0].Rule != "ghost" ||
		entries[0].Error != `no Intercom contact has external_id "u-404" (recipient: user user_id u-404)` {
		t.Fatalf("dead letters %+v", entries)
	}
	if _, calls := client.snapshot(); calls != 0 {
		t.Errorf("%d sends for a person nobody knows", calls)
	}
	if r := f.outcomes("ghost", OutcomeRetry); r != 0 {
		t.Errorf("%d retries", r)
	}
}

// silentKV never answers, as a bucket does whose replies were lost while
// NATS restarted; it records how long each caller would have waited.
type silentKV struct {
	KV
	mu    sync.Mutex
	waits []time.Duration // the context's deadline, from the call
}

func (k *silentKV) wait(ctx context.Context) {
	k.mu.Lock()
	d, ok := ctx.Deadline()
	w := time.Duration(-1) // none
	if ok {
		w = time.Until(d)
	}
	k.waits = append(k.waits, w)
	k.mu.Unlock()
	<-ctx.Done()
}

func (k *silentKV) Get(ctx context.Context, _ string) (jetstream.KeyValueEntry, error) {
	k.wait(ctx)
	return nil, ctx.Err()
}

func (k *silentKV) Create(ctx context.Context, _ string, _ []byte, _ ...jetstream.KVCreateOpt) (uint64, error) {
	k.wait(ctx)
	return 0, ctx.Err()
}

// A contact cache that does not answer is asked no longer than the cache
// timeout, however long the look-up may wait for Intercom (the pacer): the
// person is looked up in Intercom instead. Held for the look-up's whole
// time (minutes), a job waited out a NATS restart in a worker's hands.
func TestContactsCacheThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	user := intercom.Contact{ID: "65b2a9c0d1e2f3a4b5c6d7e8", Role: "user", ExternalID: "u-42"}
	_, client := contractFake(t, "2.14", []intercom.Contact{user})
	kv := &silentKV{}
	c := NewContacts(kv, ContactsOptions{Finder: client, FindByExternalID: true, TTL: time.Hour, NegativeTTL: time.Second})
	c.cacheTimeout = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a look-up's: the pacer's wait and the send
	defer cancel()
	r, err := c.Resolve(ctx, rules.Recipient{Type: "user", UserID: "u-42"}, zerolog.Nop())
	if err != nil || r != user.Recipient() {
		t.Fatalf("Resolve = %+v, %v; want the user, from Intercom", r, err)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if len(kv.waits) != 2 {
		t.Fatalf("%d calls to the cache, want 2 (the read, the write)", len(kv.waits))
	}
	for i, w := range kv.waits {
		if w < 0 || w > c.cacheTimeout {
			t.Errorf("cache call %d could wait %s, want at most %s", i+1, w, c.cacheTimeout)
		}
	}
}

// gatedFinder finds one user by external id. Its look-ups wait at gate;
// one made by a caller that may not wait for the pacer fails with
// ErrWouldWait when refuse is set, as the client's would.
type gatedFinder struct {
	ContactFinder
	user   intercom.Contact
	gate   chan struct{}
	refuse bool
	mu     sync.Mutex
	calls  int
}

func (g *gatedFinder) FindContactByExternalID(ctx context.Context, id string) (*intercom.Contact, error) {
	g.mu.Lock()
	g.calls++
	g.mu.Unlock()
	<-g.gate
	if g.refuse && !intercom.MayWait(ctx) {
		return nil, fmt.Errorf("GET /contacts/find_by_external_id: %w", intercom.ErrWouldWait)
	}
	return &g.user, nil
}

// A caller that may not wait (a first attempt) does not wait for another's
// look-up either, and one that may wait is not failed by a look-up that
// could not.
func TestContactsLookUpThatMayNotWait(t *testing.T) {
	t.Parallel()
	user := intercom.Contact{ID: "65b2a9c0d1e2f3a4b5c6d7e8", Role: "user", ExternalID: "u-42"}
	p := rules.Recipient{Type: "user", UserID: "u-42"}
	noWait := intercom.WithoutWaiting(context.Background())
	opts := func(f ContactFinder) ContactsOptions {
		return ContactsOptions{Finder: f, FindByExternalID: true, TTL: time.Hour, NegativeTTL: time.Second}
	}
	t.Run("does not join a look-up in flight", func(t *testing.T) {
		t.Parallel()
		g := &gatedFinder{user: user, gate: make(chan struct{})}
		c := NewContacts(contactsBucket(t), opts(g))
		first := make(chan error, 1)
		go func() { _, err := c.Resolve(context.Background(), p, zerolog.Nop()); first <- err }()
		poll.For(t, 10*time.Second, "the first look-up in flight", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.calls == 1
		})
		if _, err := c.Resolve(noWait, p, zerolog.Nop()); !errors.Is(err, intercom.ErrWouldWait) {
			t.Errorf("a look-up that may not wait, with another in flight: %v, want ErrWouldWait", err)
		}
		close(g.gate)
		if err := <-first; err != nil {
			t.Errorf("the look-up in flight: %v", err)
		}
	})
	t.Run("a waiter looks up again when the call it joined could not wait", func(t *testing.T) {
		t.Parallel()
		g := &gatedFinder{user: user, gate: make(chan struct{}), refuse: true}
		c := NewContacts(contactsBucket(t), opts(g))
		first := make(chan error, 1)
		go func() { _, err := c.Resolve(noWait, p, zerolog.Nop()); first <- err }()
		poll.For(t, 10*time.Second, "the first look-up in flight", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.calls == 1
		})
		second := make(chan error, 1)
		var got intercom.Recipient
		go func() {
			var err error
			got, err = c.Resolve(context.Background(), p, zerolog.Nop())
			second <- err
		}()
		poll.For(t, 10*time.Second, "the second caller waiting for the first's look-up", func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, call := range c.calls {
				if call.joined == 1 {
					return true
				}
			}
			return false
		})
		close(g.gate)
		if err := <-first; !errors.Is(err, intercom.ErrWouldWait) {
			t.Errorf("the look-up that may not wait: %v, want ErrWouldWait", err)
		}
		if err := <-second; err != nil || got != user.Recipient() {
			t.Errorf("the look-up that may wait: %v, %v; want %v", got, err, user.Recipient())
		}
	})
}

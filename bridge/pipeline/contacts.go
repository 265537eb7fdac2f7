package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// ContactFinder looks contacts up in Intercom; *intercom.Client is one.
type ContactFinder interface {
	SearchContacts(ctx context.Context, field, value string) ([]intercom.Contact, error)
	GetContact(ctx context.Context, id string) (*intercom.Contact, error)
	FindContactByExternalID(ctx context.Context, externalID string) (*intercom.Contact, error)
}

// ContactsOptions configure Contacts.
type ContactsOptions struct {
	Finder ContactFinder
	// FindByExternalID uses GET /contacts/find_by_external_id for users
	// named by user_id (the configured Intercom version has it).
	FindByExternalID bool
	// TTL is how long a contact found stays cached; NegativeTTL how long
	// "nobody" does (shorter: the person may sign up any minute).
	TTL, NegativeTTL time.Duration
	Log              zerolog.Logger
	Metrics          *Metrics
}

// Contacts turns recipients as rules name them (your user id, an email, or
// Intercom's id of a contact of unknown role) into Intercom's 2.x
// recipients, {type: user|lead, id}. Look-ups are cached in a KV bucket
// shared by the workers and the replicas, and concurrent look-ups of one
// person in a process make one request. A recipient named by Intercom's id
// with its role (user or lead) needs no look-up.
type Contacts struct {
	ContactsOptions
	kv KV
	// cacheTimeout bounds each call to the cache (see contactCacheTimeout).
	cacheTimeout time.Duration

	mu    sync.Mutex
	calls map[string]*lookupCall // in flight, by cache key
}

type lookupCall struct {
	done    chan struct{}
	found   []intercom.Contact
	err     error
	expires time.Time // once done: until when it still answers look-ups
	joined  int       // callers that waited for it besides its own, under Contacts.mu
}

// recentLookup is how long a finished look-up still answers in this
// process. It closes the gap between a worker missing the cache and
// taking the lock while another worker finishes the same look-up, which
// would otherwise ask Intercom twice.
const recentLookup = 2 * time.Second

// contactCacheTimeout bounds a read or a write of the contact cache. A
// look-up's own context may last minutes (it waits for the pacer before
// asking Intercom); a cache that does not answer within this (a reply lost
// while NATS restarts) is skipped, and Intercom asked.
const contactCacheTimeout = 2 * time.Second

// NewContacts returns Contacts caching in kv (see ContactsBucketConfig);
// nil kv caches nothing beyond the look-ups in flight.
func NewContacts(kv KV, opts ContactsOptions) *Contacts {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry()) // counted nowhere
	}
	return &Contacts{ContactsOptions: opts, kv: kv, calls: map[string]*lookupCall{}, cacheTimeout: contactCacheTimeout}
}

// ContactNotFoundError is a recipient no Intercom contact matches: its
// message cannot be sent (dead letter contact_not_found).
type ContactNotFoundError struct {
	Recipient rules.Recipient
	Field     string // what was searched: id, external_id or email
}

func (e *ContactNotFoundError) Error() string {
	value := e.Recipient.ID
	switch e.Field {
	case "external_id":
		value = e.Recipient.UserID
	case "email":
		value = e.Recipient.Email
	}
	return fmt.Sprintf("no Intercom contact has %s %q (recipient: %s)", e.Field, value, e.Recipient)
}

// Lookup outcomes: the values of bridge_contact_lookups_total's outcome.
const (
	LookupHit      = "hit"       // found in the cache
	LookupMiss     = "miss"      // not cached; found in Intercom
	LookupNotFound = "not_found" // nobody: from Intercom or the cache
	LookupError    = "error"     // the look-up failed (429, 5xx, timeout)
)

// cachedContacts is a cache entry: the contacts a look-up found (none for
// "nobody").
type cachedContacts struct {
	Contacts []intercom.Contact `json:"contacts"`
}

// Message returns the request for m with every recipient looked up.
func (c *Contacts) Message(ctx context.Context, m rules.Message, log zerolog.Logger) (intercom.Message, error) {
	return Request(m, func(p rules.Recipient) (intercom.Recipient, error) { return c.Resolve(ctx, p, log) })
}

// needsLookup reports whether a recipient of m is looked up before m is
// sent; most name Intercom's id and role, and need no context for it.
func (c *Contacts) needsLookup(m rules.Message) bool {
	for _, to := range [][]rules.Recipient{m.To, m.Cc, m.Bcc} {
		for _, p := range to {
			if _, ok := lookupOf(p, c.FindByExternalID); ok {
				return true
			}
		}
	}
	return false
}

// Request is Intercom's form of m, each recipient turned into Intercom's by
// resolve; it stops at the first recipient resolve fails for.
func Request(m rules.Message, resolve func(rules.Recipient) (intercom.Recipient, error)) (intercom.Message, error) {
	out := intercom.Message{
		MessageType: m.MessageType, Subject: m.Subject, Body: m.Body, Template: m.Template,
		From:      intercom.From{Type: m.From.Type, ID: m.From.ID},
		CreatedAt: m.CreatedAt, CreateConversationWithoutContactReply: m.CreateConversationWithoutContactReply,
	}
	for _, l := range []struct {
		in  []rules.Recipient
		out *[]intercom.Recipient
	}{{m.To, &out.To}, {m.Cc, &out.Cc}, {m.Bcc, &out.Bcc}} {
		for _, p := range l.in {
			r, err := resolve(p)
			if err != nil {
				return out, err
			}
			*l.out = append(*l.out, r)
		}
	}
	return out, nil
}

// Resolve returns Intercom's recipient for p.
func (c *Contacts) Resolve(ctx context.Context, p rules.Recipient, log zerolog.Logger) (intercom.Recipient, error) {
	l, ok := lookupOf(p, c.FindByExternalID)
	if !ok {
		return intercom.Recipient{Type: p.Type, ID: p.ID}, nil
	}
	field, value, scope := l.field, l.value, l.scope
	found, fresh, err := c.lookup(ctx, field, value, scope)
	if err != nil {
		c.Metrics.ContactLookups.WithLabelValues(LookupError).Inc()
		return intercom.Recipient{}, err
	}
	if len(found) == 0 {
		c.Metrics.ContactLookups.WithLabelValues(LookupNotFound).Inc()
		return intercom.Recipient{}, &ContactNotFoundError{Recipient: p, Field: field}
	}
	if fresh {
		c.Metrics.ContactLookups.WithLabelValues(LookupMiss).Inc()
	} else {
		c.Metrics.ContactLookups.WithLabelValues(LookupHit).Inc()
	}
	chosen, why := choose(found, p.Type)
	if why != "" && fresh { // once per look-up, not once per message
		log.Info().Str("recipient", p.String()).Str("contact_id", chosen.ID).Str("role", chosen.Role).Msg(why)
	}
	return chosen.Recipient(), nil
}

// lookup is how a recipient is found in Intercom.
type lookup struct {
	field, value string
	scope        string // "users": GET /contacts/find_by_external_id; "any": the others
}

// lookupOf is the look-up p needs; false when it needs none (Intercom's
// id and a role).
func lookupOf(p rules.Recipient, findByExternalID bool) (lookup, bool) {
	switch {
	case p.UserID != "":
		l := lookup{field: "external_id", value: p.UserID, scope: "any"}
		if p.Type == "user" && findByExternalID {
			l.scope = "users" // find_by_external_id finds users only
		}
		return l, true
	case p.Email != "":
		return lookup{field: "email", value: p.Email, scope: "any"}, true
	case p.Type == "contact":
		return lookup{field: "id", value: p.ID, scope: "any"}, true
	}
	return lookup{}, false
}

// DescribeLookup says which request finds p before a send, "" when none
// is needed: what `bridge render` shows.
func DescribeLookup(p rules.Recipient, findByExternalID bool) string {
	l, ok := lookupOf(p, findByExternalID)
	switch {
	case !ok:
		return ""
	case l.field == "id":
		return "GET /contacts/" + l.value
	case l.scope == "users":
		return "GET /contacts/find_by_external_id/" + l.value
	}
	return fmt.Sprintf("POST /contacts/search %s = %q", l.field, l.value)
}

// choose picks the contact to message among those a look-up found: the
// requested role first, then a user, then the first found. why is set
// when the choice needs saying.
func choose(found []intercom.Contact, requested string) (intercom.Contact, string) {
	pick := func(role string) (intercom.Contact, int) {
		n, first := 0, -1
		for i, c := range found {
			if c.Role == role {
				n++
				if first < 0 {
					first = i
				}
			}
		}
		if first < 0 {
			return intercom.Contact{}, 0
		}
		return found[first], n
	}
	if requested == "user" || requested == "lead" {
		if c, n := pick(requested); n > 0 {
			if n > 1 {
				return c, fmt.Sprintf("%d %ss match; sending to the first", n, requested)
			}
			return c, ""
		}
	}
	for _, role := range []string{"user", "lead"} {
		if c, n := pick(role); n > 0 {
			switch {
			case requested != "contact":
				return c, fmt.Sprintf("no %s matches, but a %s does; sending to the %s", requested, role, role)
			case n > 1 || len(found) > n:
				return c, fmt.Sprintf("%d contacts match; sending to the first %s", len(found), role)
			}
			return c, ""
		}
	}
	return found[0], fmt.Sprintf("the contact has role %q; sending to it as is", found[0].Role)
}

// lookup returns the contacts whose field is value, from the cache or from
// Intercom (fresh). scope "users" looks among users only.
func (c *Contacts) lookup(ctx context.Context, field, value, scope string) (found []intercom.Contact, fresh bool, err error) {
	key := kvKey("contacts\x00" + field + "\x00" + scope + "\x00" + value)
	if c.kv != nil {
		cctx, cancel := context.WithTimeout(ctx, c.cacheTimeout)
		e, err := c.kv.Get(cctx, key)
		cancel()
		if err == nil {
			var v cachedContacts
			if json.Unmarshal(e.Value(), &v) == nil {
				return v.Contacts, false, nil
			}
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			c.Log.Debug().Err(err).Msg("contact cache unreachable; asking Intercom")
		}
	}

	now := time.Now()
	c.mu.Lock()
	if call, ok := c.calls[key]; ok && (call.expires.IsZero() || now.Before(call.expires)) {
		mayWait := intercom.MayWait(ctx)
		if !mayWait {
			select {
			case <-call.done:
			default:
				c.mu.Unlock()
				// A caller that may not wait for the pacer does not wait
				// for another's look-up, which may be waiting for it.
				return nil, false, fmt.Errorf("look-up of a contact by %s in flight: %w", field, intercom.ErrWouldWait)
			}
		}
		call.joined++
		c.mu.Unlock()
		select {
		case <-call.done:
			if mayWait && errors.Is(call.err, intercom.ErrWouldWait) {
				// That caller could not wait for the pacer; this one can,
				// and the failed call is gone from the map.
				return c.lookup(ctx, field, value, scope)
			}
			return call.found, false, call.err
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	for k, old := range c.calls { // the map holds what is in flight or recent
		if !old.expires.IsZero() && now.After(old.expires) {
			delete(c.calls, k)
		}
	}
	call := &lookupCall{done: make(chan struct{})}
	c.calls[key] = call
	c.mu.Unlock()

	call.found, call.err = c.fetch(ctx, field, value, scope)
	if call.err == nil {
		c.store(ctx, key, call.found)
	}
	c.mu.Lock()
	if call.err != nil {
		delete(c.calls, key) // a failure is not shared with later look-ups
	} else {
		call.expires = time.Now().Add(recentLookup)
	}
	c.mu.Unlock()
	close(call.done)
	return call.found, true, call.err
}

// fetch asks Intercom; a 404 is nobody.
func (c *Contacts) fetch(ctx context.Context, field, value, scope string) ([]intercom.Contact, error) {
	if c.Finder == nil {
		return nil, fmt.Errorf("a recipient named by %s needs a look-up in Intercom, and there is no client to ask", field)
	}
	start := time.Now()
	defer func() { c.Metrics.ContactLookupDuration.Observe(time.Since(start).Seconds()) }()
	var one *intercom.Contact
	var err error
	switch {
	case field == "id":
		one, err = c.Finder.GetContact(ctx, value)
	case scope == "users":
		one, err = c.Finder.FindContactByExternalID(ctx, value)
	default:
		return c.Finder.SearchContacts(ctx, field, value)
	}
	if intercom.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []intercom.Contact{*one}, nil
}

// store caches what a look-up found, for TTL (NegativeTTL for nobody). A
// cache that cannot be written only costs a look-up later.
func (c *Contacts) store(ctx context.Context, key string, found []intercom.Contact) {
	if c.kv == nil {
		return
	}
	ttl := c.TTL
	if len(found) == 0 {
		ttl = c.NegativeTTL
	}
	v, _ := json.Marshal(cachedContacts{Contacts: found})
	ctx, cancel := context.WithTimeout(ctx, c.cacheTimeout)
	defer cancel()
	if _, err := c.kv.Create(ctx, key, v, jetstream.KeyTTL(ttl)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		c.Log.Debug().Err(err).Msg("cannot cache a contact look-up")
	}
}

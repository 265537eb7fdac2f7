package pipeline

import (
	"context"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

func TestShortKeys(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	seen := map[string]string{}
	for _, k := range []string{"", "r/1", "r/2", "welcome email/ünïcode key with spaces.and*wildcards>", DeliveryKey("r", "1")} {
		for name, got := range map[string]string{"ledger": ledgerKey(k), "outbox": outboxMsgID(k)} {
			if !valid.MatchString(got) {
				t.Errorf("%s key of %q = %q: not 22 base64url characters", name, k, got)
			}
			if name == "ledger" && isLegacyLedgerKey(got) {
				t.Errorf("ledger key of %q taken for the older form", k)
			}
		}
		if other, ok := seen[ledgerKey(k)]; ok && other != k {
			t.Errorf("%q and %q share a key", k, other)
		}
		seen[ledgerKey(k)] = k
		if !isLegacyLedgerKey(legacyLedgerKey(k)) {
			t.Errorf("legacy key of %q not recognised", k)
		}
	}
	if isLegacyLedgerKey(keysMarker) {
		t.Error("the marker looks like a key")
	}
}

// sentBucket creates an empty sent ledger bucket.
func sentBucket(t *testing.T) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	js := natstest.JetStream(t)
	kv, err := js.CreateOrUpdateKeyValue(context.Background(), testTopology.Sent)
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

func putEntry(t *testing.T, kv jetstream.KeyValue, kvKey string, e ledgerEntry) {
	t.Helper()
	v, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), kvKey, v); err != nil {
		t.Fatal(err)
	}
}

// The legacy lookup is on exactly when the bucket held old keys at the
// first start of the new form, for one dedupe window from then.
func TestLegacyUntil(t *testing.T) {
	t.Parallel()
	window := 7 * 24 * time.Hour
	cases := []struct {
		name   string
		seed   func(t *testing.T, kv jetstream.KeyValue)
		legacy bool
	}{
		{"fresh bucket", func(*testing.T, jetstream.KeyValue) {}, false},
		{"old keys", func(t *testing.T, kv jetstream.KeyValue) {
			putEntry(t, kv, legacyLedgerKey("r/1"), ledgerEntry{State: stateSent, Key: "r/1"})
		}, true},
		{"old keys, then new ones", func(t *testing.T, kv jetstream.KeyValue) {
			putEntry(t, kv, legacyLedgerKey("r/1"), ledgerEntry{State: stateSent, Key: "r/1"})
			putEntry(t, kv, ledgerKey("r/2"), ledgerEntry{State: stateSent, Key: "r/2"})
		}, true},
		{"new keys only (the marker expired)", func(t *testing.T, kv jetstream.KeyValue) {
			putEntry(t, kv, ledgerKey("r/2"), ledgerEntry{State: stateSent, Key: "r/2"})
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			js, kv := sentBucket(t)
			tc.seed(t, kv)
			before := time.Now()
			until, err := legacyUntil(ctx, js, kv, window)
			if err != nil {
				t.Fatal(err)
			}
			if got := !until.IsZero(); got != tc.legacy {
				t.Fatalf("legacy lookups %v (until %v), want %v", got, until, tc.legacy)
			}
			if tc.legacy && (until.Before(before.Add(window)) || until.After(time.Now().Add(window))) {
				t.Errorf("until %v, want one window from now", until)
			}
			// A later start reads the marker and agrees, whatever was
			// written since.
			putEntry(t, kv, ledgerKey("r/3"), ledgerEntry{State: stateSent, Key: "r/3"})
			again, err := legacyUntil(ctx, js, kv, window)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Equal(until) {
				t.Errorf("second start: until %v, first %v", again, until)
			}
		})
	}
}

// An entry written under the old key still answers for its delivery key
// while the legacy lookup lasts, and is read-only: a new attempt writes
// the new key.
func TestLedgerReadsLegacyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, kv := sentBucket(t)
	putEntry(t, kv, legacyLedgerKey("r/sent"), ledgerEntry{State: stateSent, Key: "r/sent", MessageID: "m1"})
	putEntry(t, kv, legacyLedgerKey("r/failed"), ledgerEntry{State: stateFailed, Key: "r/failed", Attempts: 2})

	on := &Ledger{kv: kv, legacyUntil: time.Now().Add(time.Hour)}
	e, rev, err := on.get(ctx, "r/sent")
	if err != nil {
		t.Fatal(err)
	}
	if e == nil || e.State != stateSent || e.MessageID != "m1" || rev != 0 {
		t.Fatalf("legacy sent entry read as %+v rev %d", e, rev)
	}
	if d := decide(e, false, testJob("r", "sent"), Policy{OnUncertain: "resend"}, time.Now()); d.step != stepDrop {
		t.Errorf("a message sent under the old key: step %v, want drop", d.step)
	}
	e, rev, err = on.get(ctx, "r/failed")
	if err != nil || e == nil || e.Attempts != 2 {
		t.Fatalf("legacy failed entry: %+v, %v", e, err)
	}
	if _, err := on.markPending(ctx, "r/failed", "w#3", 3, time.Minute, rev); err != nil {
		t.Fatalf("a new attempt over a legacy entry: %v", err)
	}
	if e, _, _ := on.get(ctx, "r/failed"); e == nil || e.State != statePending || e.Attempts != 3 {
		t.Errorf("after the new attempt: %+v", e)
	}

	off := &Ledger{kv: kv, legacyUntil: time.Now().Add(-time.Second)}
	if e, _, err := off.get(ctx, "r/sent"); err != nil || e != nil {
		t.Errorf("after the window: %+v, %v; want no entry", e, err)
	}
}

// Upgrading over a ledger that recorded a message under its old key does
// not send it again.
func TestSenderUpgradeKeepsOldRecords(t *testing.T) {
	t.Parallel()
	client := &fakeSender{}
	job, fresh := testJob("up", "old"), testJob("up", "new")
	f := newSenderFixture(t, client, senderSetup{seed: func(js jetstream.JetStream) {
		kv, err := js.CreateOrUpdateKeyValue(context.Background(), testTopology.Sent)
		if err != nil {
			t.Fatal(err)
		}
		putEntry(t, kv, legacyLedgerKey(job.Key), ledgerEntry{State: stateSent, Key: job.Key, MessageID: "m-old"})
	}})
	f.publish(t, job)
	f.publish(t, fresh)
	poll.For(t, 10*time.Second, "both jobs settled", func() bool {
		return f.outcomes("up", OutcomeDuplicate) == 1 && f.outcomes("up", OutcomeSent) == 1 && f.outboxEmpty()
	})
	if n := client.count(job.Key); n != 0 {
		t.Errorf("the message recorded under the old key was sent %d times", n)
	}
	if n := client.count(fresh.Key); n != 1 {
		t.Errorf("the new message was sent %d times", n)
	}
}

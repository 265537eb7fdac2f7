package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The keys the bridge derives from delivery keys, and how the sent ledger
// moved from one form of them to another.
//
// Every message sent leaves its key behind for delivery.dedupe_window (in
// the ledger) and nats.events.duplicates (as the outbox's Nats-Msg-Id), and
// NATS holds each in memory for that long, so they are as short as they can
// be while two delivery keys never share one.

// shortHashLen is 128 bits of SHA-256. With n keys alive at once the chance
// that any two share a hash is at most n²/2¹²⁹: for 10⁹ keys (a week at
// 1,600 messages/s) about 1.5·10⁻²¹, far below the chance of the disk
// corrupting a record. SHA-256 is preimage resistant, so no event can be
// crafted to take another's key.
const shortHashLen = 16

// shortHash is s's fixed-length digest in unpadded base64url: 22
// characters, all valid in a KV key and in a subject token.
func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:shortHashLen])
}

// ledgerKey is a delivery key's key in the sent ledger.
func ledgerKey(deliveryKey string) string { return shortHash(deliveryKey) }

// outboxMsgID is a job's Nats-Msg-Id in the outbox. Changing its form is
// safe at an upgrade: a job queued under the old id and rendered again
// under the new one is queued twice, and stage 2 drops the second by the
// ledger.
func outboxMsgID(deliveryKey string) string { return shortHash(deliveryKey) }

// kvKey maps any text to a valid KV key: the full SHA-256 in hex. The
// throttle and contact buckets keep it (a throttle window keyed anew at an
// upgrade would let a throttled message through), and so did the sent
// ledger before ledgerKey.
func kvKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// legacyLedgerKey is the key the ledger used before ledgerKey.
func legacyLedgerKey(deliveryKey string) string { return kvKey(deliveryKey) }

// keysMarker is the ledger's record of when it took on ledgerKey. A dot
// makes it two tokens, so no 22-character hash can be it.
const keysMarker = "keys.v2"

// keysEpoch is the value of keysMarker.
type keysEpoch struct {
	// Since is when the first bridge using ledgerKey opened the bucket.
	Since time.Time `json:"since"`
	// Legacy reports that the bucket then held entries: keys of the older
	// form, which must still be read until they expire.
	Legacy bool `json:"legacy"`
}

// legacyUntil is how long the ledger must also look a delivery key up
// under legacyLedgerKey: until every entry written before the epoch has
// expired, one dedupe window after it (the bucket's TTL). The zero time:
// never.
//
// The marker is written once, by the first bridge of the new form to start
// (Create: one of several replicas wins, the others read it), so a bucket
// that was empty then never pays the second read. The marker expires with
// the bucket's TTL too, when legacy lookups end; a bridge that finds no
// marker in a bucket that is not empty looks at the bucket's oldest entry
// to tell the two cases apart. Replicas of the older form that go on
// running after the epoch (a rolling upgrade) write old keys that are read
// for the rest of the window only: finish an upgrade well within it.
func legacyUntil(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, window time.Duration) (time.Time, error) {
	for range 3 {
		e, err := kv.Get(ctx, keysMarker)
		if err == nil {
			var ep keysEpoch
			if err := json.Unmarshal(e.Value(), &ep); err != nil {
				return time.Time{}, fmt.Errorf("%s: %w", keysMarker, err)
			}
			if !ep.Legacy {
				return time.Time{}, nil
			}
			return ep.Since.Add(window), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return time.Time{}, fmt.Errorf("%s: %w", keysMarker, err)
		}
		legacy, err := holdsLegacyKeys(ctx, js, kv)
		if err != nil {
			return time.Time{}, err
		}
		v, err := json.Marshal(keysEpoch{Since: time.Now().UTC(), Legacy: legacy})
		if err != nil {
			return time.Time{}, err
		}
		if _, err := kv.Create(ctx, keysMarker, v); err != nil && !isRevisionConflict(err) {
			return time.Time{}, fmt.Errorf("%s: %w", keysMarker, err)
		}
		// Written, or another replica wrote it first: read what stands.
	}
	return time.Time{}, fmt.Errorf("%s: written, but not there when read back", keysMarker)
}

// deliveryKeys is how many of a bucket's values are delivery keys: all but
// the marker, while it is there.
func deliveryKeys(ctx context.Context, kv jetstream.KeyValue, values uint64) uint64 {
	if _, err := kv.Get(ctx, keysMarker); err == nil && values > 0 {
		return values - 1
	}
	return values
}

// holdsLegacyKeys reports whether the bucket's oldest entry is keyed in the
// older form. The bucket keeps one entry per key (history 1) in the order
// they were written, and old keys are only written before any new one, so
// an oldest entry of the new form means there are no old ones. When it
// cannot tell, it says yes: reading both forms is only slower.
func holdsLegacyKeys(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (bool, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return false, fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
	}
	if st.Values() == 0 {
		return false, nil
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok || bs.StreamInfo() == nil {
		return true, nil
	}
	info := bs.StreamInfo()
	s, err := js.Stream(ctx, info.Config.Name)
	if err != nil {
		return false, fmt.Errorf("stream %s: %w", info.Config.Name, err)
	}
	m, err := s.GetMsg(ctx, info.State.FirstSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil // expired a moment ago
	}
	if err != nil {
		return false, fmt.Errorf("bucket %s: oldest entry: %w", kv.Bucket(), err)
	}
	return isLegacyLedgerKey(strings.TrimPrefix(m.Subject, "$KV."+kv.Bucket()+".")), nil
}

// isLegacyLedgerKey reports whether k has the older form: 64 hex digits.
func isLegacyLedgerKey(k string) bool {
	if len(k) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

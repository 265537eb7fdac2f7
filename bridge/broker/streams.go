package broker

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream creates the stream or updates it to sc, retrying what
// passes by itself (see Retry) for as long as ctx lasts. A change
// JetStream refuses (subjects another stream owns, a retention or storage
// that cannot change, ...) is reported with the stream's name, JetStream's
// reason and, when the stream exists, what differs.
func (b *Broker) EnsureStream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := Retry(ctx, "stream "+sc.Name, func(ctx context.Context) error {
		var err error
		s, err = b.JS.CreateOrUpdateStream(ctx, sc)
		return err
	})
	if err == nil {
		return s, nil
	}
	exists := ""
	ictx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if existing, ierr := b.JS.Stream(ictx, sc.Name); ierr == nil {
		if diff := StreamDiff(existing.CachedInfo().Config, sc); diff != "" {
			exists = " (the stream exists with " + diff + ")"
		}
	}
	return nil, fmt.Errorf("stream %s (subjects %v): JetStream refused the configuration%s: %w", sc.Name, sc.Subjects, exists, err)
}

// StreamDiff says how have differs from want in the settings the bridge
// sets, "" when it does not.
func StreamDiff(have, want jetstream.StreamConfig) string {
	var diffs []string
	add := func(name string, h, w any) {
		if fmt.Sprint(h) != fmt.Sprint(w) {
			diffs = append(diffs, fmt.Sprintf("%s %v (want %v)", name, h, w))
		}
	}
	add("subjects", have.Subjects, want.Subjects)
	add("retention", have.Retention, want.Retention)
	add("storage", have.Storage, want.Storage)
	add("replicas", max(have.Replicas, 1), max(want.Replicas, 1))
	add("max_age", have.MaxAge, want.MaxAge)
	add("max_bytes", have.MaxBytes, want.MaxBytes)
	add("duplicates", have.Duplicates, want.Duplicates)
	add("discard", have.Discard, want.Discard)
	return strings.Join(diffs, ", ")
}

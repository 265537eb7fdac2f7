package broker

import (
	"context"
	"errors"
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
		s, err = createOrUpdateStream(ctx, b.JS, sc)
		return err
	})
	if err == nil {
		// A server older than the option takes the configuration and
		// drops what it does not know: a schedule would then be stored as
		// a plain message and never fire.
		if sc.AllowMsgSchedules && !s.CachedInfo().Config.AllowMsgSchedules {
			return nil, fmt.Errorf("stream %s: the NATS server does not keep message schedules, which messages that wait need (NATS Server 2.12 or later)", sc.Name)
		}
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

// createOrUpdateStream creates the stream, or updates it to sc when it
// exists with another configuration. It asks to create first, rather than
// to update first as jetstream's CreateOrUpdateStream does: on a cluster
// (nats-server 2.15), an update that reaches JetStream while another
// replica's create of the same stream is being proposed leaves both
// requests unanswered, and each replica lost a whole try's timeout per
// stream, past nats.connect_timeout in all; identical creates are all
// answered.
func createOrUpdateStream(ctx context.Context, js jetstream.JetStream, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, sc)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.UpdateStream(ctx, sc)
	}
	return s, err
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
	// No limit is -1 as JetStream stores it, 0 as a config may ask for it.
	add("max_bytes", max(have.MaxBytes, 0), max(want.MaxBytes, 0))
	add("duplicates", have.Duplicates, want.Duplicates)
	add("discard", have.Discard, want.Discard)
	return strings.Join(diffs, ", ")
}

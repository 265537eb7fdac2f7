package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/config"
)

// EventsStreamConfig is the configuration of the stream that stores every
// event: webhook events under <prefix>.in.>, and the subjects of NATS
// sources in capture mode.
func EventsStreamConfig(cfg *config.Config) jetstream.StreamConfig {
	subjects := []string{cfg.NATS.Prefix + ".in.>"}
	for _, s := range cfg.Sources {
		if s.Mode() == "capture" {
			subjects = append(subjects, s.NATS.Subjects...)
		}
	}
	maxBytes := cfg.NATS.Events.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	return jetstream.StreamConfig{
		Name:        cfg.EventsStream(),
		Description: "intercom-bridge: every event received, kept for replay",
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.NATS.Events.MaxAge.D(),
		Duplicates:  cfg.NATS.Events.Duplicates.D(),
		Replicas:    cfg.NATS.Events.Replicas,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
	}
}

// EnsureStream creates the stream or updates it to sc. A change JetStream
// refuses (subjects another stream owns, a smaller replica count on a
// single server, ...) is reported with the stream's name and JetStream's
// reason.
func (b *Broker) EnsureStream(ctx context.Context, sc jetstream.StreamConfig) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := b.JS.CreateOrUpdateStream(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("stream %s (subjects %v): JetStream refused the configuration: %w", sc.Name, sc.Subjects, err)
	}
	return s, nil
}

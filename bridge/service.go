// Package bridge is the service: it wires the NATS side, the sources, the
// rules and delivery together, and serves webhooks.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/ingest"
	"github.com/intercom-bridge/bridge/rules"
)

// Service is a running bridge.
type Service struct {
	cfg    *config.Config
	log    zerolog.Logger
	broker *broker.Broker
	rules  atomic.Pointer[rules.Set]

	webhooks *ingest.Webhooks
	sources  *ingest.NATSSources
	matcher  *matcher
	http     *http.Server
	httpLn   net.Listener
}

// LoadRules loads the rules that cfg names, checked against its sources
// and default admin.
func LoadRules(cfg *config.Config) (*rules.Set, error) {
	return rules.Load(cfg.Rules.Paths, rules.Options{DefaultAdminID: cfg.Intercom.DefaultAdminID, Sources: cfg.SourceNames()})
}

// Start starts the bridge: NATS, the streams, the rules, the sources and the
// webhook listener. Stop undoes it.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger) (*Service, error) {
	s := &Service{cfg: cfg, log: log}
	set, err := LoadRules(cfg)
	if err != nil {
		return nil, fmt.Errorf("rules:\n%w", err)
	}
	s.rules.Store(set)
	log.Info().Int("rules", set.Len()).Str("hash", set.Hash()[:12]).Msg("rules loaded")

	if s.broker, err = broker.Open(ctx, cfg, log); err != nil {
		return nil, err
	}
	if _, err := s.broker.EnsureStream(ctx, broker.EventsStreamConfig(cfg)); err != nil {
		s.Stop(ctx)
		return nil, err
	}
	if s.matcher, err = startMatcher(ctx, s.broker.JS, cfg, s.rules.Load, log); err != nil {
		s.Stop(ctx)
		return nil, err
	}
	if s.sources, err = ingest.StartNATSSources(ctx, cfg, s.broker.Conn, s.broker.JS, log); err != nil {
		s.Stop(ctx)
		return nil, err
	}
	if s.webhooks, err = ingest.NewWebhooks(cfg, s.broker.JS, log); err != nil {
		s.Stop(ctx)
		return nil, err
	}
	if s.httpLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
		s.Stop(ctx)
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	s.http = &http.Server{Handler: s.webhooks.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
	go func() {
		if err := s.http.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("webhook listener failed")
		}
	}()
	log.Info().Str("addr", s.httpLn.Addr().String()).Msg("receiving webhooks at POST /hooks/<source>")
	return s, nil
}

// WebhookAddr is the address the webhook listener is bound to.
func (s *Service) WebhookAddr() string { return s.httpLn.Addr().String() }

// Broker is the service's NATS side.
func (s *Service) Broker() *broker.Broker { return s.broker }

// Stop shuts the bridge down: webhooks answer 503 at once, sources stop,
// work in flight finishes, and NATS closes cleanly.
func (s *Service) Stop(ctx context.Context) error {
	if s.webhooks != nil {
		s.webhooks.Close()
	}
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	if s.sources != nil {
		s.sources.Stop()
	}
	if s.matcher != nil {
		s.matcher.stop()
	}
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	return errors.Join(errs...)
}

// Package bridge is the service: it wires the NATS side, the sources, the
// rules and the delivery pipeline together, and serves webhooks and the
// admin endpoints.
//
// It owns the wiring and the service's own metrics; it is the only package,
// besides cmd, that imports config (whose options.go maps the file onto
// the other packages' options).
package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/config"
	"github.com/intercom-bridge/bridge/bridge/console"
	"github.com/intercom-bridge/bridge/bridge/ingest"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// Options are what the caller supplies besides the config.
type Options struct {
	Version string // for the User-Agent sent to Intercom
	// Sender replaces the Intercom client (tests); nil: a real client, or
	// dry run when the config says so or has no token.
	Sender pipeline.MessageSender
	// Reload, when not nil, asks for the webhook secret files and the rule
	// files to be read again (main sends on it on SIGHUP).
	Reload <-chan struct{}
}

// Service is a running bridge.
type Service struct {
	cfg      *config.Config
	log      zerolog.Logger
	registry *prometheus.Registry
	metrics  *serviceMetrics
	pipeline *pipeline.Metrics
	ingest   *ingest.Metrics
	broker   *broker.Broker
	rules    atomic.Pointer[rules.Set]
	activity *pipeline.Activity // each rule's matches, for /rules
	dryRun   bool

	tokenRejected atomic.Bool
	streamsReady  atomic.Bool

	webhooks *ingest.Webhooks
	sources  *ingest.NATSSources
	matcher  *pipeline.Matcher
	sender   *pipeline.Sender
	client   *intercom.Client

	http, admin     *http.Server
	httpLn, adminLn net.Listener

	reloader  *reloader
	stopWatch context.CancelFunc
	watchDone chan struct{}

	version     string             // the binary's, for the console
	stopHistory context.CancelFunc // the console's sampling of counters
	historyDone chan struct{}
}

// LoadRules loads the rules that cfg names, checked against its sources
// and default admin.
func LoadRules(cfg *config.Config) (*rules.Set, error) {
	return rules.Load(cfg.Rules.Paths, cfg.RuleOptions())
}

// Start starts the bridge: NATS and its streams, and then what cfg.Role
// runs: the rules and both pipeline stages (delivery), the sources and the
// webhook listener (intake); and the admin listener. Stop undoes it.
func Start(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts Options) (_ *Service, err error) {
	reg := newRegistry()
	s := &Service{cfg: cfg, log: log, registry: reg, metrics: newServiceMetrics(reg), pipeline: pipeline.NewMetrics(reg),
		ingest: ingest.NewMetrics(reg), activity: pipeline.NewActivity(), version: opts.Version}
	registerBuildInfo(reg, opts.Version, cfg.Intercom.Version)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bridge_ready",
		Help: "1 while /readyz answers 200, else 0 (its body says why)."}, func() float64 {
		if s.readiness().Ready {
			return 1
		}
		return 0
	}))
	s.ingest.Precreate(cfg.SourceNames())
	defer func() {
		if err != nil {
			s.Stop(context.Background())
		}
	}()
	var set *rules.Set
	var sender pipeline.MessageSender
	if cfg.Delivers() {
		if set, err = LoadRules(cfg); err != nil {
			return nil, fmt.Errorf("rules:\n%w", err)
		}
		s.setRules(set)
		if sender, err = s.messageSender(opts); err != nil {
			return nil, err
		}
	}

	if s.broker, err = broker.Open(ctx, cfg.BrokerOptions(), log); err != nil {
		return nil, err
	}
	// The streams, buckets and consumers are created or updated with
	// retries for up to nats.connect_timeout: a cluster that is starting
	// too (no leader yet) answers with errors that pass.
	topoCtx, cancelTopo := context.WithTimeout(ctx, cfg.NATS.Connect.D())
	defer cancelTopo()
	top := cfg.Topology()
	for _, sc := range top.Streams() {
		if _, err := s.broker.EnsureStream(topoCtx, sc); err != nil {
			return nil, err
		}
	}
	s.streamsReady.Store(true)
	s.broker.StartProbe(top.Events.Name)

	if cfg.Delivers() {
		if err := s.startStages(topoCtx, sender); err != nil {
			return nil, err
		}
	}
	if cfg.Intakes() {
		sources := cfg.IngestSources()
		if s.sources, err = ingest.StartNATSSources(topoCtx, top, sources, s.broker.Conn, s.broker.JS, log, s.ingest); err != nil {
			return nil, err
		}
		hookOpts := cfg.WebhookOptions()
		hookOpts.Unavailable = s.broker.Unavailable
		if s.webhooks, err = ingest.NewWebhooks(top, hookOpts, sources, s.broker.JS, log, s.ingest); err != nil {
			return nil, err
		}
	}
	// From here a reload may swap the webhook secrets as well as the rules.
	s.startReloader(set, opts.Reload)
	if cfg.Intakes() {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("http.listen: %w", err)
		}
		s.httpLn = limitListener(s.httpLn, cfg.HTTP.MaxConnections)
		s.http = s.serve(s.httpLn, s.webhooks.Handler(), "webhook")
	}
	if cfg.Admin.Listen != "" {
		if s.adminLn, err = net.Listen("tcp", cfg.Admin.Listen); err != nil {
			return nil, fmt.Errorf("admin.listen: %w", err)
		}
		var c *console.Console
		if cfg.Delivers() {
			// The console is the rules' and the dead letters': an intake
			// replica has neither.
			if c, err = s.startConsole(topoCtx); err != nil {
				return nil, err
			}
		}
		s.admin = s.serve(s.adminLn, s.adminHandler(c), "admin")
	}
	for _, w := range cfg.Warnings() {
		log.Warn().Str("setting", w.Msg).Str("at", w.Pos.String()).Msg("weak setting")
	}
	log.Info().Str("role", cfg.Role).Str("webhooks", s.WebhookAddr()).Str("admin", cfg.Admin.Listen).Bool("dry_run", s.dryRun).Msg("bridge running")
	return s, nil
}

// messageSender is what sends to Intercom: the one in opts, a client with
// the config's token, or none (dry run).
func (s *Service) messageSender(opts Options) (pipeline.MessageSender, error) {
	if opts.Sender != nil {
		return opts.Sender, nil
	}
	ic := s.cfg.Intercom
	if ic.DryRun || ic.Token == "" {
		s.dryRun = true
		s.log.Warn().Msg("dry run: messages are rendered and logged, never sent (set intercom.token and dry_run: false to send)")
		return nil, nil
	}
	var err error
	s.client, err = intercom.New(intercom.Config{BaseURL: ic.BaseURL, Token: ic.Token,
		Version: ic.Version, UserAgent: "intercom-bridge/" + s.version,
		RateLimitPerMinute: ic.RateLimitPerMinute, Timeout: ic.Timeout.D(),
		Observe: s.observeIntercom})
	if err != nil {
		return nil, err
	}
	return s.client, nil
}

// startStages starts stage 2 (the sender) and stage 1 (the matcher).
func (s *Service) startStages(ctx context.Context, sender pipeline.MessageSender) error {
	cfg, top := s.cfg, s.cfg.Topology()
	contacts := cfg.ContactsOptions()
	contacts.Finder = contactFinder(s.client, sender)
	var err error
	s.sender, err = pipeline.StartSender(ctx, s.broker.JS, pipeline.SenderOptions{
		Topology: top, Workers: cfg.Delivery.Workers, Policy: cfg.Policy(), Timeouts: cfg.Timeouts(),
		Client: sender, DryRun: s.dryRun, Log: s.log, Metrics: s.pipeline, OnUnauthorized: s.tokenRefused,
		Contacts: contacts})
	if err != nil {
		return err
	}
	decoder, err := cfg.Decoder()
	if err != nil {
		return err
	}
	s.matcher, err = pipeline.StartMatcher(ctx, s.broker.JS, pipeline.MatcherOptions{
		Topology: top, Decoder: decoder, Rules: s.rules.Load, Log: s.log, Metrics: s.pipeline, Received: s.ingest.EventsReceived,
		Activity: s.activity, Sender: s.sender})
	return err
}

// startReloader reloads the webhook secret files and the rules when
// reload says so, and the rules on changes to the rule files when
// rules.watch is on.
//
// An intake replica has no rules: reload asks for its secret files only.
func (s *Service) startReloader(set *rules.Set, reload <-chan struct{}) {
	ctx, stop := context.WithCancel(context.Background())
	s.stopWatch, s.watchDone = stop, make(chan struct{})
	if set == nil {
		go func() {
			defer close(s.watchDone)
			for {
				select {
				case <-ctx.Done():
					return
				case _, ok := <-reload:
					if !ok {
						reload = nil // closed: no more requests
						continue
					}
					s.ReloadSecrets()
				}
			}
		}()
		return
	}
	s.reloader = newReloader(func() (*rules.Set, error) { return LoadRules(s.cfg) }, s.applyRules, s.log, s.metrics)
	s.reloader.SetCurrent(set)
	s.reloader.onRequest = func() { s.ReloadSecrets() }
	var paths []string
	if s.cfg.Rules.Watch {
		paths = s.cfg.Rules.Paths
	}
	go func() {
		defer close(s.watchDone)
		if err := s.reloader.Watch(ctx, paths, 0, reload); err != nil {
			s.log.Error().Err(err).Msg("rules: cannot watch the rule files; send SIGHUP to reload")
			s.reloader.Watch(ctx, nil, 0, reload)
		}
	}()
}

// ReloadSecrets reads the webhook sources' secret_file again and swaps
// their secrets in, so that a rotated Kubernetes or Docker secret takes
// effect on SIGHUP. On any error (a file missing or empty, a secret its
// scheme refuses) every source keeps the secrets it has. The other *_file
// keys (NATS, Intercom) are read at start only.
func (s *Service) ReloadSecrets() error {
	if s.webhooks == nil {
		return nil // a delivery replica checks no signatures
	}
	secrets, err := s.cfg.ReadWebhookSecretFiles()
	if err == nil && len(secrets) == 0 {
		return nil
	}
	if err == nil {
		err = s.webhooks.SetSecrets(secrets)
	}
	if err != nil {
		s.log.Error().Err(err).Msg("webhook secret files not reloaded; the running secrets stay")
		return fmt.Errorf("webhook secrets: %w", err)
	}
	s.log.Info().Int("sources", len(secrets)).Msg("webhook secret files reloaded")
	return nil
}

// ReloadRules loads the rule files again and swaps them in if they are
// valid; on error the running rules stay.
func (s *Service) ReloadRules() error {
	if s.reloader == nil {
		return errors.New("role intake runs no rules")
	}
	return s.reloader.Reload()
}

// maxHeaderBytes bounds a request's headers (431 past it): webhook
// headers are a few hundred bytes, and the default of 1 MiB is memory a
// client can make the bridge hold per connection.
const maxHeaderBytes = 64 << 10

func (s *Service) serve(ln net.Listener, h http.Handler, name string) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: maxHeaderBytes}
	if name == "webhook" {
		// A body's reads have their own deadline, which every byte that
		// arrives moves on (see ingest), instead of one for the whole
		// request; the answer's write deadline is set once the body is in.
		srv.ReadTimeout, srv.WriteTimeout = 0, 0
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("listener", name).Msg("listener failed")
		}
	}()
	return srv
}

func (s *Service) setRules(set *rules.Set) {
	s.applyRules(set)
	s.metrics.SetRules(set.Len(), set.Hash())
	s.log.Info().Int("rules", set.Len()).Str("hash", set.Hash()[:12]).Msg("rules loaded")
}

// applyRules puts set in force and makes its rules' series exist.
func (s *Service) applyRules(set *rules.Set) {
	s.rules.Store(set)
	s.pipeline.Precreate(set.Rules(), s.cfg.SourceNames())
}

// contactFinder is what looks recipients up: the client, or a sender given
// in Options that can (nil in dry run).
func contactFinder(client *intercom.Client, sender pipeline.MessageSender) pipeline.ContactFinder {
	if client != nil {
		return client
	}
	if f, ok := sender.(pipeline.ContactFinder); ok {
		return f
	}
	return nil
}

// tokenRefused is called when Intercom rejects the token (401).
func (s *Service) tokenRefused() {
	if !s.tokenRejected.Swap(true) {
		s.metrics.IntercomTokenOK.Set(0)
		s.log.Error().Msg("Intercom rejected the token (401): /readyz fails until a message is accepted")
	}
}

func (s *Service) observeIntercom(o intercom.Observation) {
	s.metrics.IntercomDuration.WithLabelValues(strconv.Itoa(o.StatusCode)).Observe(o.Duration.Seconds())
	if o.RateLimitRemaining >= 0 {
		s.metrics.IntercomRemaining.WithLabelValues().Set(float64(o.RateLimitRemaining))
	}
	if o.StatusCode >= 200 && o.StatusCode < 300 && s.tokenRejected.Swap(false) {
		s.metrics.IntercomTokenOK.Set(1)
		s.log.Info().Msg("Intercom accepts the token again")
	}
}

// WebhookAddr is the address the webhook listener is bound to; "" when
// there is none (role delivery).
func (s *Service) WebhookAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// AdminAddr is the address of the admin listener; "" when it is off.
func (s *Service) AdminAddr() string {
	if s.adminLn == nil {
		return ""
	}
	return s.adminLn.Addr().String()
}

// Registry holds the service's metrics, as /metrics serves them.
func (s *Service) Registry() *prometheus.Registry { return s.registry }

// PipelineMetrics are the delivery pipeline's metrics.
func (s *Service) PipelineMetrics() *pipeline.Metrics { return s.pipeline }

// Broker is the service's NATS side.
func (s *Service) Broker() *broker.Broker { return s.broker }

// Stop shuts the bridge down: webhooks answer 503 at once, sources stop,
// stage 1 and stage 2 finish what they hold (the rest is redelivered
// later), and NATS closes cleanly.
func (s *Service) Stop(ctx context.Context) error {
	if s.stopWatch != nil {
		s.stopWatch()
		<-s.watchDone
	}
	if s.webhooks != nil {
		s.webhooks.Close()
	}
	var errs []error
	if s.http != nil {
		errs = append(errs, s.http.Shutdown(ctx))
	}
	// Stop taking work and let what is in hand finish, within ctx; past it,
	// what was not acked is redelivered after the restart.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if s.sources != nil {
			s.sources.Stop()
		}
		// Both stages at once: stage 1's first attempts give up waiting
		// for the ledger once stage 2 stops (see pipeline.Sender).
		var stages sync.WaitGroup
		if s.matcher != nil {
			stages.Go(s.matcher.Stop)
		}
		if s.sender != nil {
			stages.Go(s.sender.Stop)
		}
		stages.Wait()
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("work in flight did not finish in time: %w", ctx.Err()))
	}
	if s.admin != nil {
		errs = append(errs, s.admin.Shutdown(ctx))
	}
	if s.stopHistory != nil {
		s.stopHistory()
		<-s.historyDone
	}
	if s.broker != nil {
		errs = append(errs, s.broker.Close())
	}
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

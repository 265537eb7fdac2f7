// Package broker is the bridge's NATS side: an embedded NATS server with
// JetStream, or a connection to an external server or cluster, and the
// streams the bridge keeps there.
//
// It owns the NATS connection, the embedded server, the topology (every
// stream, bucket and consumer name and configuration, see Topology) and
// the retries of topology changes (Retry). It must not import any other
// of the bridge's packages: they all build on it.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/internal/lograte"
)

// Options say how to reach NATS: an external server or cluster (URL), or
// the embedded server (no URL), whose store lives under DataDir.
type Options struct {
	URL     string // one URL or comma-separated URLs; "": embedded
	Listen  string // embedded only: host:port for other programs; "": none
	DataDir string // embedded only
	Creds   string // external only: a .creds file
	// User, Password and Token are the credentials the bridge connects
	// with; for the embedded server with Listen, also the ones its
	// listener requires.
	User, Password, Token string
	TLS                   TLS
	ConnectTimeout        time.Duration // how long Open waits for the first connection
	MaxStore              int64         // embedded only: JetStream's file storage, in bytes
}

// TLS is the CA to trust and the client certificate for an external
// server, or the embedded listener's certificate and the CA that client
// certificates must be signed by.
type TLS struct {
	CA, Cert, Key string
}

// Broker holds the connection to NATS and, when embedded, the server.
type Broker struct {
	Conn *nats.Conn
	JS   jetstream.JetStream

	server    *server.Server // nil for an external server
	lock      *dirLock
	log       zerolog.Logger
	connected atomic.Bool
	closing   atomic.Bool
	probe     *Probe // nil until StartProbe
}

// Open starts the embedded server (no nats.url) or connects to the external
// one, and waits for the first connection for at most o.ConnectTimeout.
// Afterwards a lost connection is retried for ever; Connected tells whether
// it is up.
func Open(ctx context.Context, o Options, log zerolog.Logger) (*Broker, error) {
	b := &Broker{log: log}
	if o.URL == "" {
		if err := b.startEmbedded(o); err != nil {
			b.Close()
			return nil, err
		}
	} else if err := b.connectExternal(ctx, o); err != nil {
		b.Close()
		return nil, err
	}
	js, err := jetstream.New(b.Conn, jetstream.WithPublishAsyncTimeout(forgetPublishAfter),
		jetstream.WithPublishAsyncMaxPending(MaxAsyncPublishes))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	b.JS = js
	return b, nil
}

// forgetPublishAfter is when the client gives up an async publish whose
// acknowledgement never came (a request lost while a stream's leader
// moves): every caller stops waiting long before, but without it the
// client would keep each one pending for ever, and stall new publishes
// once 4,000 were.
const forgetPublishAfter = time.Minute

// MaxAsyncPublishes bounds the publishes awaiting an answer on the
// bridge's connection, past which a publish waits and then fails. The
// windows of its users add up to far less (webhooks: http.max_connections
// requests of up to 64 each; a bind or core source: 256; stage 1: a batch
// of jobs per worker); jetstream's default, 4,000, is less than 64
// requests with batches would need.
const MaxAsyncPublishes = 1 << 17

// Dial connects a tool (bridge dlq, bridge check) to the NATS that a
// bridge with options o uses: the external server, or the embedded one
// through its listener. When the embedded server does not listen, Dial
// opens its store itself, which only works while the bridge is stopped.
func Dial(ctx context.Context, o Options, log zerolog.Logger) (*Broker, error) {
	if o.URL == "" && o.Listen != "" {
		c := o
		c.URL = "nats://" + o.Listen
		if o.TLS.Cert != "" {
			// With the listener's own certificate as the client's: tools
			// reach a TLS listener when tls.ca signs its certificate too.
			c.URL = "tls://" + o.Listen
		}
		c.ConnectTimeout = 2 * time.Second
		b, err := Open(ctx, c, log)
		if err == nil {
			return b, nil
		}
		// Not running: fall through and open the store.
	}
	b, err := Open(ctx, o, log)
	if err != nil && o.URL == "" && o.Listen == "" {
		return nil, fmt.Errorf("%w\n(to use this while the bridge runs, set nats.listen so tools can reach its embedded server)", err)
	}
	return b, err
}

func (b *Broker) startEmbedded(o Options) error {
	if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	lock, err := lockDir(o.DataDir)
	if err != nil {
		return err
	}
	b.lock = lock
	opts, err := embeddedOptions(o)
	if err != nil {
		return err
	}
	if o.Listen != "" {
		// The server reports a busy port only in its log, after the start
		// timeout; trying the port first puts the reason in the error.
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return fmt.Errorf("nats.listen: %w", err)
		}
		ln.Close()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	s.SetLoggerV2(serverLogger{b.log.With().Str("component", "nats-server").Logger(), lograte.New(10 * time.Second)}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(o.ConnectTimeout) {
		s.Shutdown()
		return fmt.Errorf("embedded nats: not ready after %s", o.ConnectTimeout)
	}
	b.server = s
	connOpts := []nats.Option{nats.InProcessServer(s), nats.Name("intercom-bridge"), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(b.onDisconnect), nats.ReconnectHandler(b.onReconnect)}
	connOpts = append(connOpts, credentials(o)...)
	nc, err := nats.Connect("", connOpts...)
	if err != nil {
		return fmt.Errorf("embedded nats: connect: %w", err)
	}
	b.Conn = nc
	b.connected.Store(true)
	if o.Listen != "" {
		b.log.Info().Str("url", s.ClientURL()).Msg("embedded NATS server listening")
	}
	return nil
}

// embeddedOptions are the embedded server's options: JetStream within
// nats.max_store, and a listener only with nats.listen, requiring the
// configured credentials and TLS.
func embeddedOptions(n Options) (*server.Options, error) {
	opts := &server.Options{
		ServerName:        "bridge",
		JetStream:         true,
		StoreDir:          filepath.Join(n.DataDir, "jetstream"),
		JetStreamMaxStore: n.MaxStore,
		NoSigs:            true,
		DontListen:        n.Listen == "",
	}
	if n.Listen == "" {
		return opts, nil
	}
	host, port, err := net.SplitHostPort(n.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %w", err)
	}
	opts.Host = host
	if opts.Port, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("nats.listen: port %q", port)
	}
	opts.Username, opts.Password, opts.Authorization = n.User, n.Password, n.Token
	if n.TLS.Cert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: n.TLS.Cert, KeyFile: n.TLS.Key, CaFile: n.TLS.CA, Verify: n.TLS.CA != ""})
		if err != nil {
			return nil, fmt.Errorf("nats.tls: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSVerify = tc, true, n.TLS.CA != ""
		opts.TLSTimeout = 2
	}
	return opts, nil
}

// credentials are the options that authenticate a connection.
func credentials(n Options) []nats.Option {
	var opts []nats.Option
	if n.User != "" {
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if n.Token != "" {
		opts = append(opts, nats.Token(n.Token))
	}
	return opts
}

// StoreProblem says why the embedded JetStream takes no writes at all: it
// turns itself off when a write to disk fails (a full disk), and stays off
// until the bridge restarts. nil while it runs, and for an external
// server.
// StartProbe probes the stream every 5 seconds (see Probe); ProbeProblem
// and Unavailable then say what it found. Close stops it.
func (b *Broker) StartProbe(stream string) {
	b.probe = StartProbe(b.JS, stream, 5*time.Second, 2*time.Second)
}

// ProbeProblem is why the last probe failed; nil when it passed, or when
// there is no probe.
func (b *Broker) ProbeProblem() error {
	if b.probe == nil {
		return nil
	}
	return b.probe.Problem()
}

// Unavailable says why an event cannot be stored now, nil when it can be
// tried: NATS disconnected, the embedded JetStream stopped, or the last
// probe unanswered. Webhooks answer 503 at once then, rather than after a
// publish timeout.
func (b *Broker) Unavailable() error {
	if !b.Connected() {
		return errors.New("NATS is not connected")
	}
	if err := b.StoreProblem(); err != nil {
		return err
	}
	return b.ProbeProblem()
}

func (b *Broker) StoreProblem() error {
	if b.server == nil || b.server.JetStreamEnabled() || b.closing.Load() {
		return nil
	}
	return errors.New("the embedded JetStream stopped after a failed disk write (disk full?): free space, then restart the bridge")
}

func (b *Broker) connectExternal(ctx context.Context, n Options) error {
	opts := []nats.Option{
		nats.Name("intercom-bridge"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(b.onReconnect),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ClosedHandler(func(*nats.Conn) { b.connected.Store(false) }),
	}
	if n.Creds != "" {
		opts = append(opts, nats.UserCredentials(n.Creds))
	}
	opts = append(opts, credentials(n)...)
	if n.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CA))
	}
	if n.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(n.TLS.Cert, n.TLS.Key))
	}
	if n.TLS.CA != "" || n.TLS.Cert != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	b.Conn = nc
	deadline := time.NewTimer(n.ConnectTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsConnected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("nats: could not connect to %s within %s", RedactURLs(n.URL), n.ConnectTimeout)
		case <-tick.C:
		}
	}
	b.connected.Store(true)
	return nil
}

func (b *Broker) onDisconnect(nc *nats.Conn, err error) {
	b.connected.Store(false)
	if b.closing.Load() {
		return
	}
	ev := b.log.Warn()
	if err != nil {
		ev = ev.Err(err)
	}
	ev.Msg("NATS connection lost; reconnecting")
}

func (b *Broker) onReconnect(nc *nats.Conn) {
	b.connected.Store(true)
	b.log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS connected")
}

// Connected reports whether the connection to NATS is up.
func (b *Broker) Connected() bool { return b.connected.Load() && b.Conn != nil && b.Conn.IsConnected() }

// ClientURL is the URL other programs use to reach the embedded server; ""
// when it does not listen or the server is external.
func (b *Broker) ClientURL() string {
	if b.server == nil || b.server.Addr() == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Close drains the connection, shuts the embedded server down cleanly and
// releases the data directory.
func (b *Broker) Close() error {
	b.closing.Store(true)
	if b.probe != nil {
		b.probe.Stop()
	}
	var errs []error
	if b.Conn != nil {
		if err := b.Conn.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		for i := 0; i < 100 && !b.Conn.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.Conn.Close()
	}
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
	if b.lock != nil {
		errs = append(errs, b.lock.release())
	}
	return errors.Join(errs...)
}

// serverLogger sends the embedded server's log to zerolog. Its warnings
// and errors repeat per client or per write (an authorization violation
// for every forged connection, a full store for every publish): each
// format is logged once per interval, with the count of the others.
type serverLogger struct {
	log   zerolog.Logger
	limit *lograte.Limiter
}

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.limited(l.log.Warn(), format, v) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.limited(l.log.Error(), format, v) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// numbers are what differs between repeats of one server message: the
// client's address, port and connection id in its prefix.
var numbers = regexp.MustCompile(`[0-9]+`)

func (l serverLogger) limited(ev *zerolog.Event, format string, v []any) {
	ok, suppressed := l.limit.Allow(numbers.ReplaceAllString(format, "#"))
	if !ok {
		ev.Discard()
		return
	}
	if suppressed > 0 {
		ev = ev.Int("suppressed", suppressed)
	}
	ev.Msgf(format, v...)
}

// RedactURLs hides the passwords of a comma-separated list of URLs, for
// messages that name the server tried.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		} else {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

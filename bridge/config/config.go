// Package config loads and checks the bridge's configuration file.
//
// It owns the file's format, its defaults and its validation, and maps the
// file onto the options of the packages that do the work (options.go):
// broker, ingest and pipeline never see a Config, and only the service and
// cmd import this package. Settings a package defines (a webhook auth
// block, an Intercom version) are checked and defaulted by that package's
// own code, reported here at their place in the file.
package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/intercom-bridge/bridge/bridge/ingest"
	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/rules"
)

// Config is the whole configuration file. config.example.yaml documents
// every key.
type Config struct {
	// Role is the part of the bridge this process runs (RoleAll,
	// RoleIntake, RoleDelivery): replicas of each role share one NATS.
	Role     string   `yaml:"role"`
	Log      Log      `yaml:"log"`
	DataDir  string   `yaml:"data_dir"`
	NATS     NATS     `yaml:"nats"`
	HTTP     HTTP     `yaml:"http"`
	Admin    Admin    `yaml:"admin"`
	Sources  []Source `yaml:"sources"`
	Intercom Intercom `yaml:"intercom"`
	Rules    Rules    `yaml:"rules"`
	Delivery Delivery `yaml:"delivery"`

	// ShutdownTimeout bounds a graceful stop: work in flight past it is
	// left to be redelivered.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// path is the file the config was loaded from; relative paths in the
	// file are taken relative to its directory.
	path string
	// fallbacks maps a value taken from a ${VAR:-fallback} fallback to
	// VAR, so that an error about the value can name what to set.
	fallbacks map[string]string
	// warnings are Lint's, at their place in the file.
	warnings rules.ErrorList
}

// Roles. Intake is every source (webhooks, bind and core copies) up to
// the events stream; delivery is both pipeline stages, from the events
// stream to Intercom. A capture source needs no process: its subjects are
// the events stream's own.
const (
	RoleAll      = "all"
	RoleIntake   = "intake"
	RoleDelivery = "delivery"
)

// Intakes reports whether this process takes events in.
func (c *Config) Intakes() bool { return c.Role != RoleDelivery }

// Delivers reports whether this process runs the pipeline stages.
func (c *Config) Delivers() bool { return c.Role != RoleIntake }

// publishedSecrets are secrets printed in the README and the example
// config: anyone can sign with them, so they are for trying the bridge on
// loopback only.
var publishedSecrets = []string{"whsec_ZGV2LW9ubHktc2VjcmV0LWNoYW5nZS1tZQ=="}

// IsLoopback reports whether a host:port listens on loopback only; an
// empty host (":8080") listens on every interface.
func IsLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setYourOwn says what to set instead of a value: the environment
// variable whose fallback it is, when there is one.
func (c *Config) setYourOwn(value string) string {
	if v := c.fallbacks[value]; v != "" {
		return "set " + v + " to a secret of your own"
	}
	return "use a secret of your own"
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug | info | warn | error
	Format string `yaml:"format"` // json | console
}

// NATS configures the embedded server or the connection to an external one.
type NATS struct {
	URL    string `yaml:"url"`    // empty: embedded; else a URL or comma-separated URLs
	Listen string `yaml:"listen"` // embedded only: host:port for other clients
	Creds  string `yaml:"creds"`  // external only: a .creds file
	// User, Password and Token are the credentials the bridge connects
	// with; for the embedded server with Listen, also the ones its
	// listener requires. The *File forms read them from a file.
	User         string   `yaml:"user"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	Token        string   `yaml:"token"`
	TokenFile    string   `yaml:"token_file"`
	TLS          TLS      `yaml:"tls"`
	Prefix       string   `yaml:"prefix"`
	Events       Stream   `yaml:"events"`
	Connect      Duration `yaml:"connect_timeout"`
	// MaxStore bounds the embedded server's JetStream file storage, in
	// bytes, so that it fills up before the disk does.
	MaxStore int64 `yaml:"max_store"`
}

// TLS configures TLS to an external NATS server (the CA to trust, a client
// certificate), or the embedded server's listener (its certificate, and a
// CA that client certificates must be signed by).
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Stream configures the events stream.
type Stream struct {
	MaxAge     Duration `yaml:"max_age"`    // how long events are kept
	Duplicates Duration `yaml:"duplicates"` // the Nats-Msg-Id duplicate window
	Replicas   int      `yaml:"replicas"`   // on a cluster
	MaxBytes   int64    `yaml:"max_bytes"`  // 0: unlimited
}

// HTTP configures the webhook listener.
type HTTP struct {
	Listen       string `yaml:"listen"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	MaxDepth     int    `yaml:"max_json_depth"`
	// MaxInflightBytes bounds the body bytes held by all requests at once;
	// past it, requests get 503 until others finish.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// MaxConnections bounds the open connections; more wait to be accepted.
	MaxConnections int `yaml:"max_connections"`
	// BodyIdleTimeout is how long a body may go without a byte arriving.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout"`
}

// Admin configures the listener for health checks, metrics and the
// console.
type Admin struct {
	Listen string    `yaml:"listen"`
	Auth   AdminAuth `yaml:"auth"`
	// PProf mounts Go's profiler (net/http/pprof) under /debug/pprof/ on
	// this listener, so that a live bridge can be profiled.
	PProf bool `yaml:"pprof"`
}

// AdminAuth is what the admin listener asks of every request but /healthz
// and /readyz: a bearer token, a user and password (HTTP basic auth, what
// a browser prompts for), or either when both are set. Unset: nothing is
// asked, and the console is served on loopback only.
type AdminAuth struct {
	Bearer     string    `yaml:"bearer"`
	BearerFile string    `yaml:"bearer_file"`
	Basic      BasicAuth `yaml:"basic"`
}

// BasicAuth is a user and password for HTTP basic auth.
type BasicAuth struct {
	User         string `yaml:"user"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// IsSet reports whether the admin listener asks for credentials.
func (a AdminAuth) IsSet() bool { return a.Bearer != "" || a.Basic.User != "" }

// Source is where events come from: exactly one of Webhook or NATS.
type Source struct {
	Name    string      `yaml:"name"`
	Webhook *Webhook    `yaml:"webhook"`
	NATS    *NATSSource `yaml:"nats"`
}

// Webhook is a source that receives events at POST /hooks/<name>.
type Webhook struct {
	// Preset fills, for a well-known sender (github, shopify, stripe, svix,
	// standard-webhooks), what the keys below leave out: the auth scheme,
	// header, prefix and encoding, the subject and the content types. It
	// sits beside auth, not in it, because it sets more than auth.
	Preset  string      `yaml:"preset"`
	Auth    WebhookAuth `yaml:"auth"`
	ID      string      `yaml:"id"`      // expr for the event id
	Subject string      `yaml:"subject"` // expr for the event's subject
	Headers []string    `yaml:"headers"` // request headers rules may see
	// ContentTypes the source accepts besides JSON (which it always does):
	// application/x-www-form-urlencoded for GitHub's form setting.
	ContentTypes []string `yaml:"content_types"`
}

// WebhookAuth says how a webhook proves where it comes from.
type WebhookAuth struct {
	Scheme  string   `yaml:"scheme"` // standard-webhooks | stripe | hmac-sha256 | bearer | none
	Secret  string   `yaml:"secret"`
	Secrets []string `yaml:"secrets"` // several, while rotating keys
	// SecretFile holds the secrets instead, one a line (a mounted
	// Kubernetes or Docker secret); re-read on SIGHUP, so a rotation is an
	// edit of the file.
	SecretFile string   `yaml:"secret_file"`
	Header     string   `yaml:"header"`
	Prefix     string   `yaml:"prefix"`
	Encoding   string   `yaml:"encoding"`
	Tolerance  Duration `yaml:"tolerance"`
}

// keyPath is the path in the file, below auth, of a key the webhook
// package names: secrets[i] counts Secret first, as AllSecrets does.
func (a WebhookAuth) keyPath(key string) string {
	var i int
	if _, err := fmt.Sscanf(key, "secrets[%d]", &i); err == nil && a.Secret != "" {
		if i == 0 {
			return ".secret"
		}
		key = fmt.Sprintf("secrets[%d]", i-1)
	}
	if key == "" {
		return ""
	}
	return "." + key
}

// AllSecrets returns Secret and Secrets together.
func (a WebhookAuth) AllSecrets() []string {
	var out []string
	if a.Secret != "" {
		out = append(out, a.Secret)
	}
	return append(out, a.Secrets...)
}

// NATSSource is a source that reads NATS subjects, in one of three modes:
// capture (the bridge's stream stores the subjects), bind (a durable
// consumer on an existing stream) or core (a queue subscription,
// at-most-once).
type NATSSource struct {
	Subjects []string `yaml:"subjects"`
	Stream   string   `yaml:"stream"` // bind mode: the existing stream
	Core     bool     `yaml:"core"`
	Queue    string   `yaml:"queue"` // core mode: the queue group
	ID       string   `yaml:"id"`    // expr for the event id
}

// Kind says what the source is: webhook, capture, bind or core; "" when
// it names neither webhook nor nats (Validate reports that).
func (s Source) Kind() ingest.Kind {
	switch {
	case s.Webhook != nil:
		return ingest.KindWebhook
	case s.NATS == nil:
		return ""
	case s.NATS.Core:
		return ingest.KindCore
	case s.NATS.Stream != "":
		return ingest.KindBind
	}
	return ingest.KindCapture
}

// Intercom configures the Intercom API client.
type Intercom struct {
	BaseURL            string   `yaml:"base_url"`
	Token              string   `yaml:"token"`
	TokenFile          string   `yaml:"token_file"` // or: a file holding the token
	Version            string   `yaml:"version"`
	DefaultAdminID     string   `yaml:"default_admin_id"`
	RateLimitPerMinute int      `yaml:"rate_limit_per_minute"`
	Timeout            Duration `yaml:"timeout"`
	DryRun             bool     `yaml:"dry_run"`
	Contacts           Contacts `yaml:"contacts"`
}

// Contacts configures the cache of contact look-ups (recipients named by
// user_id or email).
type Contacts struct {
	TTL         Duration `yaml:"cache_ttl"`    // a contact found
	NegativeTTL Duration `yaml:"negative_ttl"` // nobody found
}

// Rules configures where rules are loaded from.
type Rules struct {
	Paths []string `yaml:"paths"`
	Watch bool     `yaml:"watch"`
}

// Delivery configures sending.
type Delivery struct {
	Workers      int      `yaml:"workers"`
	MaxAttempts  int      `yaml:"max_attempts"`
	Backoff      Backoff  `yaml:"backoff"`
	DedupeWindow Duration `yaml:"dedupe_window"`
	OnUncertain  string   `yaml:"on_uncertain"` // resend | dead_letter
}

// Backoff is the delay between attempts: Initial, doubling up to Max.
type Backoff struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Role:    RoleAll,
		Log:     Log{Level: "info", Format: "json"},
		DataDir: "./data",
		NATS: NATS{
			Prefix:   "bridge",
			Events:   Stream{MaxAge: Duration(7 * 24 * time.Hour), Duplicates: Duration(10 * time.Minute), Replicas: 1},
			Connect:  Duration(10 * time.Second),
			MaxStore: 1 << 30,
		},
		HTTP: HTTP{Listen: ":8080", MaxBodyBytes: 1 << 20, MaxDepth: 64, MaxInflightBytes: 64 << 20,
			MaxConnections: 1024, BodyIdleTimeout: Duration(10 * time.Second)},
		Admin: Admin{Listen: "127.0.0.1:9090"},
		Intercom: Intercom{
			BaseURL:            "https://api.intercom.io",
			Version:            intercom.DefaultVersion,
			RateLimitPerMinute: 10000,
			Timeout:            Duration(10 * time.Second),
			Contacts:           Contacts{TTL: Duration(24 * time.Hour), NegativeTTL: Duration(5 * time.Minute)},
		},
		Rules: Rules{Paths: []string{"./rules"}, Watch: true},
		Delivery: Delivery{
			Workers:      32,
			MaxAttempts:  12,
			Backoff:      Backoff{Initial: Duration(time.Second), Max: Duration(10 * time.Minute)},
			DedupeWindow: Duration(7 * 24 * time.Hour),
			OnUncertain:  "resend",
		},
		ShutdownTimeout: Duration(30 * time.Second),
	}
}

// applySourceDefaults fills what sources leave out.
func (c *Config) applySourceDefaults() {
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Webhook != nil {
			s.Webhook.applyPreset()
			a := &s.Webhook.Auth
			d := a.Options().WithDefaults()
			a.Header, a.Encoding, a.Tolerance = d.Header, d.Encoding, Duration(d.Tolerance)
		}
		if s.NATS != nil && s.NATS.Core && s.NATS.Queue == "" {
			s.NATS.Queue = c.NATS.Prefix
		}
	}
}

// applyPreset fills what w leaves out from its preset: explicit keys win.
// The preset's header, prefix and encoding go with its scheme, so they are
// left out when the file names another scheme. An unknown preset fills
// nothing; Validate reports it.
func (w *Webhook) applyPreset() {
	if w.Preset == "" {
		return
	}
	p, err := ingest.LookupPreset(w.Preset)
	if err != nil {
		return
	}
	a := &w.Auth
	if a.Scheme == "" || a.Scheme == p.Auth.Scheme {
		a.Scheme = p.Auth.Scheme
		a.Header = cmp.Or(a.Header, p.Auth.Header)
		a.Prefix = cmp.Or(a.Prefix, p.Auth.Prefix)
		a.Encoding = cmp.Or(a.Encoding, p.Auth.Encoding)
	}
	w.Subject = cmp.Or(w.Subject, p.Subject)
	if len(w.ContentTypes) == 0 { // none written: JSON only, as without a preset
		w.ContentTypes = p.ContentTypes
	}
}

// presetSubject reports whether w's subject is its preset's own, which
// the bridge chose knowingly (and documents), not one the file wrote.
func (w *Webhook) presetSubject() bool {
	p, err := ingest.LookupPreset(w.Preset)
	return w.Preset != "" && err == nil && w.Subject == p.Subject
}

// Path is the file the configuration was loaded from.
func (c *Config) Path() string { return c.path }

// FieldError is a problem with one key, named by its path in the file
// ("sources[1].webhook.auth.scheme").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9_-]+$`)
	prefixRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	adminRe  = regexp.MustCompile(`^[0-9]+$`)
)

// Validate checks every key and returns every problem.
func (c *Config) Validate() []FieldError {
	var errs []FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		bad("log.format", "must be json or console, not %q", c.Log.Format)
	}
	if c.DataDir == "" && c.NATS.URL == "" {
		bad("data_dir", "is required for the embedded NATS server")
	}
	switch c.Role {
	case RoleAll:
	case RoleIntake, RoleDelivery:
		if c.NATS.URL == "" && c.NATS.Listen == "" {
			// Each role needs the other's replicas, and nothing else
			// can reach an embedded server without a listener.
			bad("role", "%s needs replicas of the other role on the same NATS: set nats.url, or nats.listen for the embedded server", c.Role)
		}
	default:
		bad("role", "must be all, intake or delivery, not %q", c.Role)
	}

	n := c.NATS
	if !prefixRe.MatchString(n.Prefix) {
		bad("nats.prefix", "must be letters, digits, '-' or '_', not %q", n.Prefix)
	}
	if n.Password != "" && n.User == "" {
		bad("nats.password", "needs nats.user")
	}
	if n.Token != "" && n.User != "" {
		bad("nats.token", "and nats.user exclude each other: use one way to authenticate")
	}
	if (n.TLS.Cert == "") != (n.TLS.Key == "") {
		bad("nats.tls", "cert and key go together")
	}
	if n.URL == "" {
		if n.Creds != "" {
			bad("nats.creds", "is for an external server: set nats.url too, or remove it")
		}
		if n.Listen == "" {
			for key, v := range map[string]string{"user": n.User, "token": n.Token, "tls.ca": n.TLS.CA, "tls.cert": n.TLS.Cert} {
				if v != "" {
					bad("nats."+key, "is for an external server (nats.url) or the embedded server's listener (nats.listen): set one, or remove it")
				}
			}
		} else if _, _, err := net.SplitHostPort(n.Listen); err != nil {
			bad("nats.listen", "must be host:port, not %q", n.Listen)
		} else if !IsLoopback(n.Listen) && n.User == "" && n.Token == "" && n.TLS.CA == "" {
			// Whoever connects could read every stored event and publish
			// events the bridge would send. A tls.ca makes client
			// certificates required, which is authentication too.
			bad("nats.listen", "%q is not a loopback address: set nats.user and nats.password, or nats.token (or client certificates with nats.tls), so that only your programs can connect", n.Listen)
		}
		if n.MaxStore < 1 {
			bad("nats.max_store", "must be positive")
		}
	} else {
		if n.Listen != "" {
			bad("nats.listen", "is for the embedded server; with nats.url set the bridge uses that server")
		}
		for _, u := range strings.Split(n.URL, ",") {
			if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || pu.Host == "" {
				bad("nats.url", "%q is not a URL such as nats://host:4222", strings.TrimSpace(u))
			}
		}
	}
	if n.Events.MaxAge <= 0 {
		bad("nats.events.max_age", "must be positive")
	}
	if n.Events.Duplicates <= 0 || n.Events.Duplicates > n.Events.MaxAge {
		bad("nats.events.duplicates", "must be positive and at most max_age")
	}
	if n.Events.Replicas < 1 || n.Events.Replicas > 5 {
		bad("nats.events.replicas", "must be 1 to 5")
	}

	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "must be host:port or :port, not %q", c.HTTP.Listen)
	}
	if c.HTTP.MaxBodyBytes < 1 {
		bad("http.max_body_bytes", "must be positive")
	}
	if c.HTTP.MaxDepth < 1 {
		bad("http.max_json_depth", "must be positive")
	}
	if c.HTTP.MaxInflightBytes < c.HTTP.MaxBodyBytes {
		bad("http.max_inflight_bytes", "must be at least http.max_body_bytes (%d), or no body of the largest size could be read", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.MaxConnections < 1 {
		bad("http.max_connections", "must be positive")
	}
	if c.HTTP.BodyIdleTimeout <= 0 {
		bad("http.body_idle_timeout", "must be positive")
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen", "must be host:port, not %q", c.Admin.Listen)
		}
	} else if c.Admin.PProf {
		bad("admin.pprof", "is served on the admin listener: set admin.listen, or remove it")
	}
	if b := c.Admin.Auth.Basic; b.User != "" || b.Password != "" {
		switch {
		case b.User == "":
			bad("admin.auth.basic.user", "is required with a password")
		case strings.ContainsAny(b.User, ":\r\n"):
			bad("admin.auth.basic.user", "must not contain ':' or a line break (HTTP basic auth cannot carry them)")
		case b.Password == "":
			bad("admin.auth.basic", "needs password or password_file")
		}
	}

	errs = append(errs, c.validateSources()...)

	ic := c.Intercom
	if u, err := url.Parse(ic.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("intercom.base_url", "must be an http(s) URL such as https://api.intercom.io")
	}
	if ic.DefaultAdminID != "" && !adminRe.MatchString(ic.DefaultAdminID) {
		bad("intercom.default_admin_id", "must be an admin id (digits)")
	}
	if ic.RateLimitPerMinute < 1 {
		bad("intercom.rate_limit_per_minute", "must be positive")
	}
	if ic.Timeout <= 0 {
		bad("intercom.timeout", "must be positive")
	}
	if err := intercom.ValidateVersion(ic.Version); err != nil {
		bad("intercom.version", "%s", strings.TrimPrefix(err.Error(), "intercom: "))
	}
	if ic.Contacts.TTL <= 0 {
		bad("intercom.contacts.cache_ttl", "must be positive")
	}
	if ic.Contacts.NegativeTTL <= 0 {
		bad("intercom.contacts.negative_ttl", "must be positive")
	}

	if len(c.Rules.Paths) == 0 {
		bad("rules.paths", "needs at least one file or directory")
	}

	d := c.Delivery
	if d.Workers < 1 || d.Workers > 1024 {
		bad("delivery.workers", "must be 1 to 1024")
	}
	if d.MaxAttempts < 1 {
		bad("delivery.max_attempts", "must be at least 1")
	}
	if d.Backoff.Initial <= 0 || d.Backoff.Max < d.Backoff.Initial {
		bad("delivery.backoff", "initial must be positive and max at least initial")
	}
	if d.DedupeWindow <= 0 {
		bad("delivery.dedupe_window", "must be positive")
	}
	if d.OnUncertain != "resend" && d.OnUncertain != "dead_letter" {
		bad("delivery.on_uncertain", "must be resend or dead_letter, not %q", d.OnUncertain)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown_timeout", "must be positive")
	}
	return errs
}

func (c *Config) validateSources() []FieldError {
	var errs []FieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	seen := map[string]int{}
	captured := map[string]string{} // subject -> source, for capture-mode overlaps
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "":
			bad(p+".name", "is required")
		case !nameRe.MatchString(s.Name):
			bad(p+".name", "%q may only hold a-z, 0-9, '-' and '_'", s.Name)
		}
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			bad(p+".name", "%q is also the name of sources[%d]", s.Name, j)
		}
		seen[s.Name] = i
		if (s.Webhook == nil) == (s.NATS == nil) {
			bad(p, "needs exactly one of webhook or nats")
			continue
		}
		if w := s.Webhook; w != nil {
			if w.Preset != "" {
				if _, err := ingest.LookupPreset(w.Preset); err != nil {
					bad(p+".webhook.preset", "%v", err)
				}
			}
			if err := ingest.CheckContentTypes(w.ContentTypes); err != nil {
				bad(p+".webhook.content_types", "%v", err)
			}
			a := w.Auth
			wp := p + ".webhook.auth"
			for _, pr := range a.Options().Problems() {
				if pr.Key == "secret" && a.SecretFile != "" {
					continue // the file could not be read: that error says why
				}
				bad(wp+a.keyPath(pr.Key), "%s", pr.Msg)
			}
			if !IsLoopback(c.HTTP.Listen) {
				for _, secret := range a.AllSecrets() {
					if slices.Contains(publishedSecrets, secret) {
						bad(wp+".secret", "is the example secret printed in the README, accepted only while http.listen is a loopback address (not %q): %s", c.HTTP.Listen, c.setYourOwn(secret))
					}
				}
			}
		}
		if ns := s.NATS; ns != nil {
			np := p + ".nats"
			if len(ns.Subjects) == 0 {
				bad(np+".subjects", "needs at least one subject")
			}
			for k, subj := range ns.Subjects {
				if err := rules.CheckSubjectPattern(subj); err != nil {
					bad(fmt.Sprintf("%s.subjects[%d]", np, k), "%v", err)
				}
				if strings.HasPrefix(subj, c.NATS.Prefix+".") || subj == ">" {
					bad(fmt.Sprintf("%s.subjects[%d]", np, k), "%q overlaps the bridge's own subjects (%s.>)", subj, c.NATS.Prefix)
				}
				if s.Kind() == ingest.KindCapture {
					if other, dup := captured[subj]; dup {
						bad(fmt.Sprintf("%s.subjects[%d]", np, k), "%q is also captured by source %q", subj, other)
					}
					captured[subj] = s.Name
				}
			}
			if ns.Core && ns.Stream != "" {
				bad(np, "core and stream exclude each other")
			}
			if !ns.Core && ns.Queue != "" {
				bad(np+".queue", "is for core mode")
			}
		}
	}
	return errs
}

// SourceNames lists the configured sources' names.
func (c *Config) SourceNames() []string {
	names := make([]string, 0, len(c.Sources))
	for _, s := range c.Sources {
		names = append(names, s.Name)
	}
	return names
}

// Secrets lists every secret value in the configuration, so that logs and
// errors can be checked for them.
func (c *Config) Secrets() []string {
	var out []string
	for _, v := range []string{c.Intercom.Token, c.NATS.Password, c.NATS.Token, c.Admin.Auth.Bearer, c.Admin.Auth.Basic.Password} {
		if v != "" {
			out = append(out, v)
		}
	}
	for _, s := range c.Sources {
		if s.Webhook != nil {
			out = append(out, s.Webhook.Auth.AllSecrets()...)
		}
	}
	return out
}

// Package console is the web console on the admin listener: the bridge's
// status, its rules with what they did in the last hour and whether their
// tests pass, a playground that shows what an event would send (nothing
// is sent), and the dead letters and waiting messages, to replay, purge
// or cancel.
//
// Pages are rendered on the server with html/template; the templates, the
// style sheet and a few lines of JavaScript are embedded in the binary, so
// the console needs nothing from the network. Every change (replay,
// purge, cancel) is a POST that carries a CSRF token and asks for a
// confirmation first.
//
// It reads what the service hands it (Options) and never imports the
// service: the service mounts it.
package console

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/dlq"
	"github.com/intercom-bridge/bridge/bridge/event"
	"github.com/intercom-bridge/bridge/bridge/pipeline"
	"github.com/intercom-bridge/bridge/internal/plural"
	"github.com/intercom-bridge/bridge/rules"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is mounted on the admin listener.
const Prefix = "/console/"

// Status is what the status page shows; the service fills it.
type Status struct {
	Ready    bool
	NotReady []string
	DryRun   bool
	Version  string // the bridge's

	NATSConnected bool
	NATSServer    string // the server connected to, without credentials
	Stages        []Stage

	IntercomVersion    string
	RateLimitPerMinute int      // what the bridge paces itself to
	RateLimitRemaining *float64 // Intercom's last X-RateLimit-Remaining; nil: none yet
	TokenRejected      bool

	Rules        int
	RulesHash    string
	LastReload   time.Time // the last successful load
	ReloadErrors []string  // of the last reload, when it failed: file:line:col: message
}

// Stage is one step of the pipeline and what waits in it.
type Stage struct {
	Name    string
	Backlog float64
	Detail  string
}

// Options are what the console reads and acts on.
type Options struct {
	JS       jetstream.JetStream
	Topology broker.Topology
	Decoder  *event.Decoder // reads stored events for the playground

	Status   func(context.Context) Status
	Rules    func() *rules.Set
	Activity func(rule string) pipeline.RuleActivity
	// History is the last hour of Sample, which gives the counters now.
	History *History
	Sample  func() Sample

	// RulePaths are where the rules (and their *.test.yaml tests) are.
	RulePaths []string
	// Sources are the config's source names, for the playground.
	Sources []string
	// IntercomVersion is the config's: what requests are shown for by
	// default and rule tests are run at.
	IntercomVersion string
	// Prepare makes an event what the service would store (config's
	// AsStored), for the playground and the rule tests.
	Prepare func(*rules.Event) error
	Log     zerolog.Logger
}

// Console serves the pages.
type Console struct {
	opts    Options
	auth    Auth
	csrf    *csrf
	pages   map[string]*template.Template
	dlq     *dlq.DLQ
	waiting *pipeline.Waiting
	tests   *testCache
}

// New opens the dead-letter stream and the messages that wait, and parses
// the templates.
func New(ctx context.Context, opts Options, auth Auth) (*Console, error) {
	c := &Console{opts: opts, auth: auth, csrf: newCSRF(), tests: &testCache{}}
	var err error
	if c.dlq, err = dlq.Open(ctx, opts.JS, opts.Topology, opts.Decoder); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if c.waiting, err = pipeline.OpenWaiting(ctx, opts.JS, opts.Topology); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if c.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return c, nil
}

var funcs = template.FuncMap{
	"count": plural.Count,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return age(time.Since(t))
	},
	"num":  trimFloat,
	"join": strings.Join,
}

// age writes a duration the way people say it: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + age(-d)
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// parsePages parses each page with the layout it fills in.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// Handler serves the console under Prefix. Auth is checked here as well
// as by whoever mounts it, so that the console is never served without.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+Prefix+"{$}", c.statusPage)
	mux.HandleFunc("GET "+Prefix+"rules", c.rulesPage)
	mux.HandleFunc("GET "+Prefix+"playground", c.playgroundPage)
	mux.HandleFunc("POST "+Prefix+"playground", c.playgroundRun)
	mux.HandleFunc("GET "+Prefix+"dead-letters", c.deadLettersPage)
	mux.HandleFunc("GET "+Prefix+"dead-letters/{id}", c.deadLetterPage)
	mux.HandleFunc("POST "+Prefix+"dead-letters/{action}", c.deadLettersAction)
	mux.HandleFunc("GET "+Prefix+"scheduled", c.scheduledPage)
	mux.HandleFunc("POST "+Prefix+"scheduled/cancel", c.scheduledCancel)
	return c.auth.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Nothing but the console's own files, no framing, no caching:
		// pages show dead letters' contents.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			id, _ := c.auth.identity(r)
			if !c.csrf.check(r, id) {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
}

// maxFormBytes bounds a POST: an event pasted into the playground is the
// largest, and a webhook body is at most http.max_body_bytes (1 MiB by
// default).
const maxFormBytes = 2 << 20

// page is what every template gets: its own data, the page's name for
// the navigation, the CSRF token and a notice.
type page struct {
	Nav    string
	CSRF   string
	Notice string
	Data   any
}

// render writes the page name with data.
func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	c.renderStatus(w, r, http.StatusOK, name, data)
}

// renderStatus writes the page name with data and status; on a template
// error, a 500.
func (c *Console) renderStatus(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	id, _ := c.auth.identity(r)
	var buf bytes.Buffer
	p := page{Nav: name, CSRF: c.csrf.token(id), Notice: r.URL.Query().Get("notice"), Data: data}
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.opts.Log.Error().Err(err).Str("page", name).Msg("console: page failed")
		http.Error(w, "the page could not be rendered; the log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// fail shows an error the page ran into, with a status.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	c.renderStatus(w, r, status, "error", err.Error())
}

// redirect sends the browser to path with a notice, after a POST (so a
// reload does not post again).
func redirect(w http.ResponseWriter, r *http.Request, path, notice string) {
	http.Redirect(w, r, path+"?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

func parseSeq(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a sequence number", s)
	}
	return n, nil
}

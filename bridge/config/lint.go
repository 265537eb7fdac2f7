package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// Lint thresholds: below or above them a setting is allowed but weak.
const (
	minSecretBytes = 16
	maxTolerance   = time.Hour
)

// signedHeaders are the request headers each scheme's signature covers
// (lower-case). An id or subject taken from any other header can be
// changed by whoever replays a request.
var signedHeaders = map[string][]string{
	"standard-webhooks": {"webhook-id", "webhook-timestamp", "svix-id", "svix-timestamp"},
}

// Lint returns the settings of a valid configuration that work but leave
// a door open; `bridge validate` prints them and `bridge run` logs them.
func (c *Config) Lint() []FieldError {
	var out []FieldError
	warn := func(path, format string, args ...any) {
		out = append(out, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	for i, s := range c.Sources {
		w := s.Webhook
		if w == nil {
			continue
		}
		p := fmt.Sprintf("sources[%d].webhook", i)
		a := w.Auth
		if a.Scheme == "none" && !IsLoopback(c.HTTP.Listen) {
			warn(p+".auth.scheme", "none accepts a request from anyone who can reach http.listen %q", c.HTTP.Listen)
		}
		for _, secret := range a.AllSecrets() {
			if n := secretBytes(a.Scheme, secret); n < minSecretBytes {
				warn(p+".auth.secret", "a secret of %d bytes is easy to guess: use at least %d random bytes", n, minSecretBytes)
			}
		}
		if a.Tolerance.D() > maxTolerance {
			warn(p+".auth.tolerance", "%s lets a captured request be replayed for that long: keep it at most %s", a.Tolerance, maxTolerance)
		}
		if webhook.Scheme(a.Scheme).SignsTimestamp() && c.NATS.Events.Duplicates < a.Tolerance {
			warn(p+".auth.tolerance", "is longer than nats.events.duplicates (%s): a signed request replayed after that window, within the tolerance, is stored again", c.NATS.Events.Duplicates)
		}
		subject := w.Subject
		if w.presetSubject() {
			subject = "" // the README says which header it reads, and why the id does not
		}
		for _, e := range []struct{ key, src string }{{"id", w.ID}, {"subject", subject}} {
			for _, h := range unsignedHeaders(e.src, a.Scheme) {
				warn(p+"."+e.key, "reads header %s, which scheme %s does not sign: a replayed request with another value is taken as a new event; use the body or a signed header", h, a.Scheme)
			}
		}
	}
	if c.Role == RoleIntake && c.Intercom.Token != "" {
		warn("intercom.token", "role intake never sends: leave the token to the delivery replicas, so that the process senders reach cannot leak it")
	}
	if c.Admin.Listen != "" && !IsLoopback(c.Admin.Listen) && !c.Admin.Auth.IsSet() {
		warn("admin.listen", "%q is not a loopback address and admin.auth is not set: /metrics and /rules are open to whoever reaches it, and the console is off; set admin.auth", c.Admin.Listen)
	}
	for _, s := range []struct{ key, secret string }{{"admin.auth.bearer", c.Admin.Auth.Bearer}, {"admin.auth.basic.password", c.Admin.Auth.Basic.Password}} {
		if s.secret != "" && len(s.secret) < minSecretBytes {
			warn(s.key, "a secret of %d bytes is easy to guess: use at least %d random bytes", len(s.secret), minSecretBytes)
		}
	}
	if c.Admin.PProf && c.Admin.Listen != "" && !IsLoopback(c.Admin.Listen) && !c.Admin.Auth.IsSet() {
		warn("admin.pprof", "lets anyone who can reach admin.listen %q read the process's memory profiles and make it spend CPU profiling", c.Admin.Listen)
	}
	if u, err := url.Parse(c.Intercom.BaseURL); err == nil && u.Scheme == "http" && !IsLoopback(u.Host+portOr(u, "80")) {
		warn("intercom.base_url", "is http: the token and every message cross the network unencrypted; use https")
	}
	return out
}

// portOr gives ":port" for IsLoopback, which wants a host:port.
func portOr(u *url.URL, port string) string {
	if u.Port() != "" {
		return ""
	}
	return ":" + port
}

// secretBytes is the length of the key a secret stands for: the decoded
// bytes of a standard-webhooks secret, the text of the others.
func secretBytes(scheme, secret string) int {
	if scheme == "standard-webhooks" {
		if key, err := decodeWhsec(secret); err == nil {
			return len(key)
		}
	}
	return len(secret)
}

// unsignedHeaders lists the headers an id or subject expression reads
// that scheme does not sign; "a header chosen at run time" stands for an
// index that is not a literal.
func unsignedHeaders(src, scheme string) []string {
	if strings.TrimSpace(src) == "" {
		return nil
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil // Validate reports it
	}
	v := &headerReads{}
	ast.Walk(&tree.Node, v)
	var out []string
	for _, h := range v.names {
		if h == "" {
			h = "chosen at run time"
		} else if slices.Contains(signedHeaders[scheme], h) {
			continue
		} else {
			h = fmt.Sprintf("%q", h)
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// headerReads collects the names of headers["name"] and headers.name; ""
// for an index chosen at run time.
type headerReads struct{ names []string }

func (v *headerReads) Visit(n *ast.Node) {
	m, ok := (*n).(*ast.MemberNode)
	if !ok {
		return
	}
	if id, ok := m.Node.(*ast.IdentifierNode); !ok || id.Value != "headers" {
		return
	}
	if s, ok := m.Property.(*ast.StringNode); ok {
		v.names = append(v.names, strings.ToLower(s.Value))
		return
	}
	v.names = append(v.names, "") // not a literal: any header at all
}

// decodeWhsec decodes a standard-webhooks secret as the webhook package
// does: "whsec_" and base64, padded or not.
func decodeWhsec(s string) ([]byte, error) {
	b64 := strings.TrimPrefix(s, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	return key, err
}

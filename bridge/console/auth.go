package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// Auth is what the admin listener asks of a request: a bearer token, a
// user and password (HTTP basic auth, which a browser prompts for), or
// either when both are set. The zero Auth asks nothing.
type Auth struct {
	Bearer         string
	User, Password string
}

// IsSet reports whether a asks for credentials.
func (a Auth) IsSet() bool { return a.Bearer != "" || a.User != "" }

// identity returns who r authenticates as ("bearer" or "basic:<user>"),
// and whether it does; with no Auth set, everyone is "".
func (a Auth) identity(r *http.Request) (string, bool) {
	if !a.IsSet() {
		return "", true
	}
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && a.Bearer != "" && equal(tok, a.Bearer) {
		return "bearer", true
	}
	if user, pass, ok := r.BasicAuth(); ok && a.User != "" {
		// Both compared, always: which one failed takes no less time.
		u, p := equal(user, a.User), equal(pass, a.Password)
		if u && p {
			return "basic:" + user, true
		}
	}
	return "", false
}

// equal compares in constant time, whatever the lengths: both sides are
// hashed first.
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Wrap answers 401 to a request without the credentials a asks for, and
// passes the others to h.
func (a Auth) Wrap(h http.Handler) http.Handler {
	if !a.IsSet() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := a.identity(r); !ok {
			if a.User != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="intercom-bridge admin", charset="UTF-8"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="intercom-bridge admin"`)
			}
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// csrf makes and checks the tokens that every POST of the console must
// carry. A token is an HMAC, under a key made at start, of who the
// request authenticates as: a page served to one user is of no use to a
// page elsewhere (which cannot read it), nor to another user, nor after a
// restart. The console sets no cookies, so there is no session to ride.
type csrf struct {
	key []byte
}

func newCSRF() *csrf {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &csrf{key: key}
}

// token is the token for requests that authenticate as identity.
func (c *csrf) token(identity string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("console-csrf\x00" + identity))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check reports whether r carries the token for identity, in the form
// field csrf or the header X-CSRF-Token.
func (c *csrf) check(r *http.Request, identity string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && hmac.Equal([]byte(got), []byte(c.token(identity)))
}

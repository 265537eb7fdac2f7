package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
)

// maxRequestID is the longest X-Request-Id echoed and logged; longer ones
// are cut.
const maxRequestID = 128

// SanitizeRequestID makes a client's X-Request-Id safe to echo in a header
// and write to a log: at most maxRequestID bytes, and every byte outside
// letters, digits and -_.:/+=@ replaced by '_'. "" stays "" (the caller
// makes one up).
func SanitizeRequestID(id string) string {
	if len(id) > maxRequestID {
		id = id[:maxRequestID]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("-_.:/+=@", r):
			return r
		}
		return '_'
	}, id)
}

// CheckText refuses a body that is not UTF-8: JSON text is UTF-8 (RFC
// 8259), and a decoder would otherwise replace the bad bytes silently.
func CheckText(body []byte) error {
	if utf8.Valid(body) {
		return nil
	}
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return fmt.Errorf("the body is not UTF-8: invalid byte at offset %d", i)
		}
		i += n
	}
	return errors.New("the body is not UTF-8")
}

// IsObject reports whether JSON text (already checked valid) is an
// object: rules read an event's fields, and nothing else has any.
func IsObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

// maxSubject bounds a subject taken from a payload.
const maxSubject = 256

// CheckSubject refuses a subject that is not a literal NATS subject:
// dot-separated non-empty tokens, without wildcards, white space or
// control characters.
func CheckSubject(s string) error {
	if len(s) > maxSubject {
		return fmt.Errorf("longer than %d bytes", maxSubject)
	}
	if !utf8.ValidString(s) {
		return errors.New("not UTF-8")
	}
	for i, tok := range strings.Split(s, ".") {
		if tok == "" {
			return fmt.Errorf("%q: token %d is empty", s, i+1)
		}
		for _, r := range tok {
			if r <= ' ' || r == 0x7f || r == '*' || r == '>' {
				return fmt.Errorf("%q: token %q holds %q, which a NATS subject token may not", s, tok, r)
			}
		}
	}
	return nil
}

// storeHealth remembers whether the last publish was refused for want of
// space, so that readiness can say so until a publish succeeds again.
type storeHealth struct {
	mu      sync.Mutex
	problem string
	since   time.Time
}

func (h *storeHealth) record(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.problem = ""
	case isStoreFull(err):
		if h.problem == "" {
			h.since = time.Now()
		}
		h.problem = storeReason(err)
	}
}

// StoreProblem says why the events stream refuses webhooks, with since
// when; "" while the last publish was stored.
func (w *Webhooks) StoreProblem() string {
	w.store.mu.Lock()
	defer w.store.mu.Unlock()
	if w.store.problem == "" {
		return ""
	}
	return fmt.Sprintf("%s (since %s)", w.store.problem, w.store.since.UTC().Format(time.RFC3339))
}

// storeFullCodes are JetStream's errors for a store that has no room.
var storeFullCodes = []jetstream.ErrorCode{
	10023, // insufficient resources
	10028, // insufficient memory resources
	10047, // insufficient storage resources
	10077, // the stream's store failed (a write error)
}

func isStoreFull(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		for _, c := range storeFullCodes {
			if apiErr.ErrorCode == c {
				return true
			}
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "insufficient") || strings.Contains(msg, "resources exceeded")
}

// storeReason names a publish error in a few stable words, as the key of
// rate-limited log lines and the reason in /readyz.
func storeReason(err error) string {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("JetStream refused the write: %s (%d)", apiErr.Description, apiErr.ErrorCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no acknowledgement from JetStream in time"
	}
	return err.Error()
}

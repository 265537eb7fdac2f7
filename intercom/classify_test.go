package intercom_test

import (
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
	"github.com/intercom-bridge/bridge/intercom/intercomtest"
)

// secretToken is the token of the classification tests: distinctive, so a
// leak into any error text cannot go unnoticed.
const secretToken = "dG9rOjEyMzQ1Njc4OTA6c2VjcmV0LXRva2Vu"

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		// setup scripts the fake and may change the config or the message.
		setup         func(srv *intercomtest.Server, cfg *intercom.Config, m *intercom.Message)
		class         intercom.Class
		uncertain     bool
		status        int    // of the *intercom.Error; 0 for none
		reason        string // a part of Decision.Reason
		retryAt       bool   // Decision.RetryAt is set
		unauthorized  bool
		wantExcerpt   string
		wantRequestID bool
	}{
		{
			name:  "accepted",
			setup: func(*intercomtest.Server, *intercom.Config, *intercom.Message) {},
			class: intercom.NoError,
		},
		{
			name:  "400 body missing",
			setup: func(_ *intercomtest.Server, _ *intercom.Config, m *intercom.Message) { m.Body = "" },
			class: intercom.Permanent, status: 400, reason: "400 Bad Request: parameter_invalid [body]: Body is required", wantRequestID: true,
		},
		{
			name: "401 wrong token",
			setup: func(_ *intercomtest.Server, cfg *intercom.Config, _ *intercom.Message) {
				cfg.Token = secretToken + "-old"
			},
			class: intercom.Permanent, status: 401, reason: "unauthorized: Access Token Invalid", unauthorized: true,
		},
		{
			name:  "403",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNext(1, 403) },
			class: intercom.Permanent, status: 403, reason: "api_plan_restricted",
		},
		{
			name: "404 unknown user",
			setup: func(_ *intercomtest.Server, _ *intercom.Config, m *intercom.Message) {
				m.To[0].ID = "0000000000000000000000ff"
			},
			class: intercom.RetryLater, status: 404, reason: "not_found [to.id]: User Not Found",
		},
		{
			name:  "406",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNext(1, 406) },
			class: intercom.Permanent, status: 406,
		},
		{
			name:  "409",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNext(1, 409) },
			class: intercom.Permanent, status: 409, reason: "Multiple existing users",
		},
		{
			name:  "422 subject missing",
			setup: func(_ *intercomtest.Server, _ *intercom.Config, m *intercom.Message) { m.Subject = "" },
			class: intercom.Permanent, status: 422, reason: "parameter_not_found [subject]: No subject supplied for email message",
		},
		{
			name: "429",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) {
				srv.SetWindowLimit(0, 200*time.Millisecond)
				srv.FailNext(1, 429)
			},
			class: intercom.RateLimited, status: 429, reason: "rate_limit_exceeded", retryAt: true,
		},
		{
			name:  "500",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNext(1, 500) },
			class: intercom.Retryable, uncertain: false, status: 500, reason: "500 Internal Server Error: server_error",
		},
		{
			name:  "503",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNext(1, 503) },
			class: intercom.Retryable, uncertain: false, status: 503, reason: "service_unavailable",
		},
		{
			name:  "504 HTML page",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.FailNextHTML504(1) },
			class: intercom.Retryable, uncertain: true, status: 504, reason: `504 Gateway Timeout: "504 Gateway Time-out 504 Gateway Time-out"`,
			wantExcerpt: "504 Gateway Time-out 504 Gateway Time-out",
		},
		{
			name:  "connection dropped after the request was read",
			setup: func(srv *intercomtest.Server, _ *intercom.Config, _ *intercom.Message) { srv.DropNext(1) },
			class: intercom.Retryable, uncertain: true, reason: "after the request was sent",
		},
		{
			name: "connection refused",
			setup: func(_ *intercomtest.Server, cfg *intercom.Config, _ *intercom.Message) {
				cfg.BaseURL = "http://" + closedAddr(t)
			},
			class: intercom.Retryable, uncertain: false, reason: "before the request was sent",
		},
		{
			name: "timeout after sending",
			setup: func(srv *intercomtest.Server, cfg *intercom.Config, _ *intercom.Message) {
				srv.SetDelay(time.Minute) // ended early by the client going away
				cfg.Timeout = 100 * time.Millisecond
			},
			class: intercom.Retryable, uncertain: true, reason: "no answer within 100ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFake(t, intercomtest.WithToken(secretToken))
			cfg := intercom.Config{BaseURL: srv.URL(), Token: secretToken}
			m := email()
			tt.setup(srv, &cfg, &m)
			c, err := intercom.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()

			_, err = c.CreateMessage(context.Background(), m)
			d := intercom.Classify(err)
			if d.Class != tt.class || d.Uncertain != tt.uncertain {
				t.Errorf("Classify(%v) = %v, uncertain %v; want %v, uncertain %v", err, d.Class, d.Uncertain, tt.class, tt.uncertain)
			}
			if !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", d.Reason, tt.reason)
			}
			if d.RetryAt.IsZero() == tt.retryAt {
				t.Errorf("RetryAt = %v, want it set: %v", d.RetryAt, tt.retryAt)
			}
			if got := intercom.IsUnauthorized(err); got != tt.unauthorized {
				t.Errorf("IsUnauthorized = %v, want %v", got, tt.unauthorized)
			}
			var ie *intercom.Error
			if errors.As(err, &ie) != (tt.status != 0) {
				t.Fatalf("err = %#v, want an *intercom.Error: %v", err, tt.status != 0)
			}
			if ie != nil {
				if ie.StatusCode != tt.status {
					t.Errorf("StatusCode = %d, want %d", ie.StatusCode, tt.status)
				}
				if ie.Excerpt != tt.wantExcerpt {
					t.Errorf("Excerpt = %q, want %q", ie.Excerpt, tt.wantExcerpt)
				}
				if ie.RequestID == "" {
					t.Errorf("no RequestID in %+v", ie)
				}
			}
			if err != nil {
				for _, s := range []string{err.Error(), d.Reason} {
					if strings.Contains(s, secretToken) {
						t.Errorf("the token leaked into %q", s)
					}
				}
			}
		})
	}
}

// closedAddr returns a local address on which nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestClassifyCancellation(t *testing.T) {
	srv := newFake(t)
	ctx := context.Background()

	t.Run("while waiting for the pacer", func(t *testing.T) {
		srv.SetWindowLimit(1, 10*time.Second)
		defer srv.SetWindowLimit(0, 0)
		c := newClient(t, srv, nil)
		c.CreateMessage(ctx, email()) // spends the window; the next one is up to 10s away
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := c.CreateMessage(ctx, email())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := intercom.Classify(err); d.Class != intercom.Retryable || d.Uncertain {
			t.Errorf("Classify = %+v, want retryable and certain", d)
		}
	})
	t.Run("while waiting for the answer", func(t *testing.T) {
		c := newClient(t, srv, nil)
		srv.SetDelay(time.Minute)
		defer srv.SetDelay(0)
		// Cancel once the request is written, whatever the pacer did before.
		ctx, cancel := context.WithCancel(ctx)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { cancel() },
		})
		_, err := c.CreateMessage(ctx, email())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if d := intercom.Classify(err); d.Class != intercom.Retryable || !d.Uncertain {
			t.Errorf("Classify = %+v, want retryable and uncertain", d)
		}
	})
}

func TestClassifyOtherErrors(t *testing.T) {
	tests := []struct {
		err       error
		class     intercom.Class
		uncertain bool
	}{
		{nil, intercom.NoError, false},
		{errors.New("something else"), intercom.Permanent, false},
		{context.DeadlineExceeded, intercom.Retryable, true},
		{&net.OpError{Op: "read", Err: errors.New("reset")}, intercom.Retryable, true},
		{&intercom.Error{StatusCode: 408}, intercom.Retryable, false},
		{&intercom.Error{StatusCode: 302}, intercom.Permanent, false},
		{&intercom.Error{StatusCode: 502}, intercom.Retryable, false},
		{&intercom.Error{StatusCode: 504}, intercom.Retryable, true},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.err != nil {
			name = tt.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			d := intercom.Classify(tt.err)
			if d.Class != tt.class || d.Uncertain != tt.uncertain {
				t.Errorf("Classify = %+v, want %v, uncertain %v", d, tt.class, tt.uncertain)
			}
		})
	}
}

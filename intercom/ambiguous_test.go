package intercom_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/intercom"
)

// A 2xx answer to POST /messages without a readable message id may or may
// not mean a created message: it is an uncertain, retryable failure.
func TestAmbiguousAnswers(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		stall       bool // send the headers, then nothing
		want        []string
	}{
		{name: "invalid JSON", contentType: "application/json", body: `{"type":"admin_message","id":`, want: []string{"200 OK", "content type application/json", "unexpected end of JSON"}},
		{name: "HTML", contentType: "text/html", body: "<html><title>OK</title></html>", want: []string{"200 OK", "content type text/html", `body "OK"`}},
		{name: "empty", body: "", want: []string{"200 OK", "no content type"}},
		{name: "JSON without an id", contentType: "application/json", body: `{"type":"admin_message"}`, want: []string{"without a message id"}},
		{name: "body stalls past the timeout", contentType: "application/json", stall: true, want: []string{"200 OK", "deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				if tt.stall {
					w.Header().Set("Content-Length", "100")
					w.WriteHeader(http.StatusOK)
					w.(http.Flusher).Flush()
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			defer close(release)
			c, err := intercom.New(intercom.Config{BaseURL: srv.URL, Token: "tok", Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			sent, err := c.CreateMessage(context.Background(), email())
			if err == nil {
				t.Fatalf("CreateMessage = %+v, want an error", sent)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			d := intercom.Classify(err)
			if d.Class != intercom.Retryable || !d.Uncertain || !strings.Contains(d.Reason, "may or may not have been created") {
				t.Errorf("Classify = %+v, want retryable and uncertain", d)
			}
		})
	}
}

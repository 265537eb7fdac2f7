package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/intercom-bridge/bridge/bridge/broker"
	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// benchServer is the webhook handler on the embedded NATS server, over
// real HTTP on loopback.
func benchServer(b *testing.B) (*httptest.Server, *broker.Broker) {
	b.Helper()
	br, err := broker.Open(context.Background(), broker.Options{DataDir: b.TempDir(), ConnectTimeout: 10 * time.Second, MaxStore: 1 << 30}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	if _, err := br.EnsureStream(context.Background(), testTopology.Events); err != nil {
		b.Fatal(err)
	}
	open := []Source{{Name: "open", Kind: KindWebhook, Webhook: WebhookSource{Auth: webhook.AuthConfig{Scheme: "none"}}}}
	hooks, err := NewWebhooks(testTopology, testWebhookOptions, open, br.JS, zerolog.Nop(), nil)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(hooks.Handler())
	b.Cleanup(srv.Close)
	return srv, br
}

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

var seq atomic.Int64

func post(b *testing.B, c *http.Client, url string) {
	body := fmt.Appendf(nil, `{"type":"order.paid","order":%d,"amount":150,"customer":{"id":"u-1"}}`, seq.Add(1))
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// BenchmarkWebhookIntake measures webhooks answered 202, each stored and
// acknowledged by JetStream on the embedded server, from 64 concurrent
// senders (run with -cpu 2: parallelism 32 x GOMAXPROCS).
func BenchmarkWebhookIntake(b *testing.B) {
	srv, _ := benchServer(b)
	c := benchClient()
	b.SetParallelism(64 / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(b, c, srv.URL+"/hooks/open")
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkWebhookLatency sends webhooks at a fixed 1,000 requests/s and
// reports latency percentiles (run with -benchtime=5000x).
func BenchmarkWebhookLatency(b *testing.B) {
	srv, _ := benchServer(b)
	c := benchClient()
	const rate = 1000
	lat := make([]time.Duration, b.N)
	done := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		go func(i int) {
			t := time.Now()
			post(b, c, srv.URL+"/hooks/open")
			lat[i] = time.Since(t)
			done <- struct{}{}
		}(i)
	}
	for range b.N {
		<-done
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/bridge/webhook"
)

// pace waits until event i is due at rate events/s from start (rate 0: at
// once). Open loop: an event that is late goes at once, and is not skipped.
func pace(ctx context.Context, start time.Time, i int, rate float64) bool {
	if rate > 0 {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return false
			}
		}
	}
	return ctx.Err() == nil
}

// maxInFlight bounds the JetStream publishes waiting for their ack.
const maxInFlight = 1024

// driveNATS publishes the phase's events with JetStream, asynchronously,
// with at most maxInFlight unacknowledged; an event is accepted when its
// ack arrives.
func driveNATS(ctx context.Context, p *phase, nc *nats.Conn, subject string, rate float64, rules int) error {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*maxInFlight))
	if err != nil {
		return err
	}
	type pending struct {
		i int
		f jetstream.PubAckFuture
	}
	inFlight := make(chan pending, maxInFlight)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Acks come back in order; wait for each in turn. After the run is
		// cut short, what is still unacknowledged counts as not accepted.
		for pe := range inFlight {
			select {
			case <-pe.f.Ok():
				p.accept(pe.i, time.Now())
			case <-pe.f.Err():
				p.nRejected.Add(1)
			case <-ctx.Done():
				p.nRejected.Add(1)
			}
		}
	})
	for i := range p.matching {
		if !p.pace(ctx, i, rate) {
			break
		}
		data := p.payload(i, rules)
		p.send(i)
		f, err := js.PublishAsync(subject, data)
		if err != nil {
			p.nRejected.Add(1)
			continue
		}
		inFlight <- pending{i, f}
	}
	close(inFlight)
	wg.Wait()
	return nil
}

// webhookDriver posts signed events to a webhook source.
type webhookDriver struct {
	url    string // .../hooks/<source>
	secret string // standard-webhooks secret; empty: unsigned
	runID  string // makes webhook-ids unique across runs
	client *http.Client
}

// drive posts the phase's events from concurrency senders; an event is
// accepted when the answer is a 2xx (the bridge's is 202).
func (d *webhookDriver) drive(ctx context.Context, p *phase, rate float64, concurrency, rules int) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range next {
				if d.post(ctx, p, i, rules) {
					p.accept(i, time.Now())
				} else {
					p.nRejected.Add(1)
				}
			}
		})
	}
	for i := range p.matching {
		if !p.pace(ctx, i, rate) {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
}

// post sends event i, retrying (with the same webhook-id, so the bridge
// stores it once) on 503 and connection errors, as a webhook sender would.
func (d *webhookDriver) post(ctx context.Context, p *phase, i, rules int) bool {
	body := p.payload(i, rules)
	id := d.runID + "-" + strconv.FormatInt(p.base+int64(i), 10)
	p.send(i)
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-time.After(100 * time.Millisecond << attempt):
			case <-ctx.Done():
				return false
			}
		}
		status, err := d.postOnce(ctx, id, body)
		switch {
		case err == nil && status >= 200 && status < 300: // the bridge's 202, another program's 200
			return true
		case err == nil && status != http.StatusServiceUnavailable:
			return false // 4xx: retrying will not help
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return false
		}
	}
	return false
}

func (d *webhookDriver) postOnce(ctx context.Context, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if d.secret != "" {
		now := time.Now()
		sig, err := webhook.SignStandard(d.secret, id, now, body)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Webhook-Id", id)
		req.Header.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
		req.Header.Set("Webhook-Signature", sig)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// newHTTPClient is the load's client. It does not ask for gzip, as webhook
// senders do not: a server that compresses whatever it is allowed to
// (Benthos's http_server does) would spend its time compressing "OK".
func newHTTPClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConns: concurrency * 2, MaxIdleConnsPerHost: concurrency * 2, IdleConnTimeout: time.Minute,
			DisableCompression: true},
	}
}

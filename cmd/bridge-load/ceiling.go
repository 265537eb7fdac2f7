package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intercom-bridge/bridge/intercom"
)

// ceilingOptions are the flags of the hidden subcommand "ceiling".
type ceilingOptions struct {
	natsURL, stream, durable string
	intercomURL, token       string
	inFlight                 int
	ledger                   bool
	listen, subject          string // the ceiling of webhook intake (see serveIntake)
}

// ceiling is the hidden subcommand "ceiling": the least a program can do
// with the stored events and still deliver each matching one at least
// once. It reads the stream with a durable consumer, decodes each event,
// keeps those whose kind is not "none", POSTs an in-app message for each
// to the fake Intercom from -inflight goroutines, and acks the event once
// the POST is answered 200 (else naks it), until it is stopped (SIGTERM).
// No envelope, no rules engine, no outbox, no ledger: what compare
// measures the bridge against.
//
// With -ledger it also keeps the fewest records with which a consumer can
// promise never to send a message twice across a crash: a key created as
// pending in a KV bucket before the POST (an event whose key exists is not
// sent again) and put as sent after it, before the ack. That is the floor
// of the bridge's guarantees, "ceiling + ledger" in compare.
func ceiling(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bridge-load ceiling", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o ceilingOptions
	fs.StringVar(&o.natsURL, "nats", "", "NATS `URL`")
	fs.StringVar(&o.stream, "stream", "", "the stream holding the events")
	fs.StringVar(&o.durable, "durable", "ceiling", "the durable consumer's name")
	fs.StringVar(&o.intercomURL, "intercom", "", "the fake Intercom's base `URL`")
	fs.StringVar(&o.token, "token", "", "its token")
	fs.IntVar(&o.inFlight, "inflight", 32, "messages handled at once")
	fs.StringVar(&o.listen, "listen", "", "serve webhook intake on `host:port` instead: store each POSTed body on -subject, answer 200 once stored")
	fs.StringVar(&o.subject, "subject", "", "with -listen: the subject to store on")
	fs.BoolVar(&o.ledger, "ledger", false, "record each message pending before its POST and sent after it, in the KV bucket <durable>_sent")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if o.listen != "" {
		if o.natsURL == "" || o.subject == "" {
			fmt.Fprintln(stderr, "bridge-load ceiling: -listen needs -nats and -subject")
			return 2
		}
		nc, err := nats.Connect(o.natsURL, nats.Name("bridge-load intake ceiling"))
		if err == nil {
			defer nc.Close()
			err = serveIntake(ctx, nc, o.listen, o.subject)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bridge-load ceiling: %v\n", err)
			return 1
		}
		return 0
	}
	if o.natsURL == "" || o.stream == "" || o.intercomURL == "" || o.inFlight < 1 {
		fmt.Fprintln(stderr, "bridge-load ceiling: need -nats, -stream, -intercom and a positive -inflight")
		return 2
	}
	if err := runCeiling(ctx, o); err != nil {
		fmt.Fprintf(stderr, "bridge-load ceiling: %v\n", err)
		return 1
	}
	return 0
}

func runCeiling(ctx context.Context, o ceilingOptions) error {
	nc, err := nats.Connect(o.natsURL, nats.Name("bridge-load ceiling"))
	if err != nil {
		return fmt.Errorf("nats %s: %w", o.natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, o.stream, jetstream.ConsumerConfig{
		Durable: o.durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 1024,
	})
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", o.durable, o.stream, err)
	}
	c := &ceilingConsumer{url: o.intercomURL + "/messages", authz: "Bearer " + o.token, client: newHTTPClient(o.inFlight)}
	if o.ledger {
		if c.ledger, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: o.durable + "_sent", Storage: jetstream.FileStorage}); err != nil {
			return fmt.Errorf("bucket %s_sent: %w", o.durable, err)
		}
	}
	work := make(chan jetstream.Msg, o.inFlight)
	var wg sync.WaitGroup
	for range o.inFlight {
		wg.Go(func() {
			for m := range work {
				c.handle(ctx, m)
			}
		})
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { work <- m })
	if err != nil {
		return fmt.Errorf("consume %s: %w", o.stream, err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	close(work)
	wg.Wait()
	return nil
}

// ceilingConsumer handles the ceiling's messages.
type ceilingConsumer struct {
	url, authz string
	client     *http.Client
	ledger     jetstream.KeyValue // nil: none
}

// loadEvent is the part of a load event (phase.payload) the ceiling reads.
type loadEvent struct {
	N    int64  `json:"n"`
	Kind string `json:"kind"`
	User string `json:"user"`
}

func (c *ceilingConsumer) handle(ctx context.Context, m jetstream.Msg) {
	var ev loadEvent
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		m.Term() // not a load event: nothing to deliver
		return
	}
	if ev.Kind != "none" {
		if err := c.send(ctx, &ev); err != nil {
			m.NakWithDelay(time.Second)
			return
		}
	}
	m.Ack()
}

// send posts the event's message, between the ledger's two records when
// there is a ledger. A key that exists already is not sent again (a floor:
// the bridge tells a key sent from one whose sender died).
func (c *ceilingConsumer) send(ctx context.Context, ev *loadEvent) error {
	if c.ledger == nil {
		return c.post(ctx, ev)
	}
	key := strconv.FormatInt(ev.N, 10)
	if _, err := c.ledger.Create(ctx, key, []byte("pending")); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil
		}
		return err
	}
	if err := c.post(ctx, ev); err != nil {
		return err
	}
	_, err := c.ledger.Put(ctx, key, []byte("sent"))
	return err
}

// post sends the in-app message the load rules would: the same body
// template, from the same admin, to the user by Intercom id.
func (c *ceilingConsumer) post(ctx context.Context, ev *loadEvent) error {
	body := make([]byte, 0, 160)
	body = append(body, `{"message_type":"inapp","body":`...)
	body = strconv.AppendQuote(body, "Hello "+ev.User+", this is event "+strconv.FormatInt(ev.N, 10)+".")
	body = append(body, `,"from":{"type":"admin","id":`+adminID+`},"to":{"type":"user","id":`...)
	body = strconv.AppendQuote(body, ev.User)
	body = append(body, `}}`...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", c.authz)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Intercom-Version", intercom.DefaultVersion)
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /messages: %s", resp.Status)
	}
	return nil
}

// Command benthos-engine is the Benthos stream engine (github.com/redpanda-data/benthos,
// MIT) with its standard components and a nats_jetstream input and
// output, so that `bridge-load compare -engine bench/benthos.sh` (and
// bench/benthos-intake.sh with -intake) can run the engine people would
// otherwise wire to Intercom by hand against the bridge. Redpanda Connect
// ships nats_jetstream components of its own, but not under a licence this
// project can build on; these take the fields that bench/benthos.yaml and
// bench/benthos-intake.yaml use, named as Connect's are, and work the same
// way. The input: a durable pull consumer, one message per Read, acked
// once the output has it (its POST answered). The output: a JetStream
// publish per message, done once the server has stored it.
//
// It is its own module, so that the bridge's module does not depend on
// Benthos: build it with
//
//	cd bench/benthos-engine && go build -o /tmp/benthos .
package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
)

func main() {
	spec := service.NewConfigSpec().
		Summary("Reads a JetStream stream with a durable pull consumer, acking each message once the output has it.").
		Field(service.NewStringListField("urls")).
		Field(service.NewStringField("stream")).
		Field(service.NewStringField("subject").Default("")).
		Field(service.NewStringField("durable")).
		Field(service.NewStringEnumField("deliver", "all", "new").Default("all")).
		Field(service.NewIntField("max_ack_pending").Default(1024))
	err := service.RegisterInput("nats_jetstream", spec, func(conf *service.ParsedConfig, _ *service.Resources) (service.Input, error) {
		return newInput(conf)
	})
	if err != nil {
		panic(err)
	}
	outSpec := service.NewConfigSpec().
		Summary("Publishes each message to a subject with JetStream, done once it is stored.").
		Field(service.NewStringListField("urls")).
		Field(service.NewStringField("subject")).
		Field(service.NewIntField("max_in_flight").Default(64))
	err = service.RegisterOutput("nats_jetstream", outSpec, func(conf *service.ParsedConfig, _ *service.Resources) (service.Output, int, error) {
		return newOutput(conf)
	})
	if err != nil {
		panic(err)
	}
	service.RunCLI(context.Background())
}

type output struct {
	urls    []string
	subject string

	mu sync.Mutex
	nc *nats.Conn
	js jetstream.JetStream
}

func newOutput(conf *service.ParsedConfig) (*output, int, error) {
	out := &output{}
	var err error
	if out.urls, err = conf.FieldStringList("urls"); err != nil {
		return nil, 0, err
	}
	if out.subject, err = conf.FieldString("subject"); err != nil {
		return nil, 0, err
	}
	inFlight, err := conf.FieldInt("max_in_flight")
	if err != nil {
		return nil, 0, err
	}
	return out, inFlight, nil
}

func (out *output) Connect(ctx context.Context) error {
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.nc != nil {
		return nil
	}
	nc, js, err := connect(out.urls)
	if err != nil {
		return err
	}
	out.nc, out.js = nc, js
	return nil
}

func (out *output) Write(ctx context.Context, m *service.Message) error {
	out.mu.Lock()
	js := out.js
	out.mu.Unlock()
	if js == nil {
		return service.ErrNotConnected
	}
	b, err := m.AsBytes()
	if err != nil {
		return err
	}
	_, err = js.Publish(ctx, out.subject, b)
	return err
}

func (out *output) Close(ctx context.Context) error {
	out.mu.Lock()
	defer out.mu.Unlock()
	if out.nc != nil {
		out.nc.Close()
		out.nc, out.js = nil, nil
	}
	return nil
}

type input struct {
	urls                     []string
	stream, subject, durable string
	deliver                  jetstream.DeliverPolicy
	maxAckPending            int

	mu   sync.Mutex
	nc   *nats.Conn
	msgs jetstream.MessagesContext
}

func newInput(conf *service.ParsedConfig) (*input, error) {
	in := &input{}
	var err error
	if in.urls, err = conf.FieldStringList("urls"); err != nil {
		return nil, err
	}
	if in.stream, err = conf.FieldString("stream"); err != nil {
		return nil, err
	}
	if in.subject, err = conf.FieldString("subject"); err != nil {
		return nil, err
	}
	if in.durable, err = conf.FieldString("durable"); err != nil {
		return nil, err
	}
	deliver, err := conf.FieldString("deliver")
	if err != nil {
		return nil, err
	}
	in.deliver = jetstream.DeliverAllPolicy
	if deliver == "new" {
		in.deliver = jetstream.DeliverNewPolicy
	}
	if in.maxAckPending, err = conf.FieldInt("max_ack_pending"); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *input) Connect(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.msgs != nil {
		return nil
	}
	nc, js, err := connect(in.urls)
	if err != nil {
		return err
	}
	cc := jetstream.ConsumerConfig{Durable: in.durable, AckPolicy: jetstream.AckExplicitPolicy,
		DeliverPolicy: in.deliver, MaxAckPending: in.maxAckPending, AckWait: 30 * time.Second}
	if in.subject != "" {
		cc.FilterSubject = in.subject
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, in.stream, cc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("consumer %s on %s: %w", in.durable, in.stream, err)
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(in.maxAckPending))
	if err != nil {
		nc.Close()
		return err
	}
	in.nc, in.msgs = nc, msgs
	return nil
}

func (in *input) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	in.mu.Lock()
	msgs := in.msgs
	in.mu.Unlock()
	if msgs == nil {
		return nil, nil, service.ErrNotConnected
	}
	m, err := msgs.Next()
	if err != nil {
		return nil, nil, err
	}
	out := service.NewMessage(m.Data())
	out.MetaSetMut("nats_subject", m.Subject())
	return out, func(ctx context.Context, err error) error {
		if err != nil {
			return m.Nak()
		}
		return m.Ack()
	}, nil
}

func (in *input) Close(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.msgs != nil {
		in.msgs.Stop()
		in.nc.Close()
		in.msgs, in.nc = nil, nil
	}
	return nil
}

// connect connects to the servers urls names, with JetStream.
func connect(urls []string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

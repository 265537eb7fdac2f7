// Package natstest starts real NATS servers with JetStream for tests: a temp
// directory, a random port, shut down when the test ends, and clusters of
// them. It is for tests only and imports none of the bridge's packages.
package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a NATS server for one test, which can be restarted on the same
// port and store.
type Server struct {
	*server.Server
	t    testing.TB
	opts server.Options
}

// Start starts a server listening on a random loopback port.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with options changed by set (nil: none), for tests
// of limits such as MaxPayload.
func StartWith(t testing.TB, set func(*server.Options)) *Server {
	t.Helper()
	s := &Server{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	if set != nil {
		set(&s.opts)
	}
	s.start()
	// Keep the port it got, so that a restart comes back on it.
	s.opts.Port = s.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { s.Server.Shutdown(); s.Server.WaitForShutdown() })
	return s
}

func (s *Server) start() {
	s.t.Helper()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(time.Minute) { // a cluster node on a busy machine takes a while
		s.t.Fatal("nats server not ready")
	}
	s.Server = srv
}

// Restart stops the server and starts it again on the same port and store,
// after down has passed.
func (s *Server) Restart(down time.Duration) {
	s.t.Helper()
	s.Down()
	time.Sleep(down)
	s.Up()
}

// Down stops the server; Up starts it again on the same port and store.
func (s *Server) Down() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Up starts a server that Down stopped.
func (s *Server) Up() {
	s.t.Helper()
	s.start()
}

// JetStream starts a server as Start does and returns a JetStream client
// connected to it, closed when the test ends.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return JetStreamWith(t, nil)
}

// JetStreamWith is JetStream on a server started with StartWith(t, set).
func JetStreamWith(t testing.TB, set func(*server.Options)) jetstream.JetStream {
	t.Helper()
	srv := StartWith(t, set)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// StartCluster starts n servers with JetStream clustered over routes on
// loopback, each with its own store, as a NATS cluster of n nodes.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	servers := make([]*Server, n)
	for i := range n {
		servers[i] = StartWith(t, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i+1)
			o.Cluster = server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: ports[i]}
			o.Routes = routes
		})
	}
	return servers
}

// Idle reports whether each consumer, named {stream, consumer}, has nothing
// pending and nothing awaiting an ack: what a test waits for before it
// counts what came out of a pipeline. A consumer it cannot read is not
// idle.
func Idle(ctx context.Context, js jetstream.JetStream, consumers ...[2]string) bool {
	for _, c := range consumers {
		cons, err := js.Consumer(ctx, c[0], c[1])
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 {
			return false
		}
	}
	return true
}

// Msgs returns how many messages stream holds.
func Msgs(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info.State.Msgs
}

// PullRequest is what a pull request asks of a consumer.
type PullRequest struct {
	Batch     int           `json:"batch"`
	Expires   time.Duration `json:"expires"`        // nanoseconds, on the wire
	Heartbeat time.Duration `json:"idle_heartbeat"` // nanoseconds, on the wire
}

// FirstPullRequest runs start and returns the first pull request made to
// the consumer durable of stream after it, as nc's server receives it.
func FirstPullRequest(t testing.TB, nc *nats.Conn, stream, durable string, start func()) PullRequest {
	t.Helper()
	pulls, err := nc.SubscribeSync("$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable)
	if err != nil {
		t.Fatal(err)
	}
	defer pulls.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	start()
	m, err := pulls.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no pull request to %s/%s: %v", stream, durable, err)
	}
	var req PullRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		t.Fatalf("pull request %s: %v", m.Data, err)
	}
	return req
}

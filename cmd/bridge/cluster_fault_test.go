//go:build fault

package main

// Fault tests on a NATS cluster: three nats-servers clustered over routes
// (natstest.StartCluster), the bridge's streams and buckets with three
// replicas each, and two bridge replicas: two processes of the real binary
// with the same config but for their ports, both listing every node in
// nats.url. They start together on a fresh cluster, lose the node that
// leads the outbox, lose one of themselves to SIGKILL, and lose the
// cluster's quorum; nothing may be lost, and the only duplicates allowed
// are the sends whose key was pending in the ledger at a fault.
//
//	go test -tags=fault -race -run TestFaultCluster -v ./cmd/bridge/

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intercom-bridge/bridge/internal/natstest"
	"github.com/intercom-bridge/bridge/internal/poll"
)

// The runs with a fault while events flow: how many events, one every
// how long (well within what two replicas send), and how long each wait
// may take on a slow machine.
const (
	clusterEvents = 1000
	clusterPace   = 10 * time.Millisecond
	clusterWait   = 2 * time.Minute
)

// newE2ECluster is newE2E on a fresh 3-node cluster, with the bridges'
// streams and buckets replicated on all three nodes.
func newE2ECluster(t *testing.T) *e2eEnv {
	t.Helper()
	e := newE2EOn(t, natstest.StartCluster(t, 3)...)
	e.replicas = 3
	return e
}

// startReplicas writes the configs of two bridge replicas and starts both
// processes at the same moment, then waits until both have opened their
// webhook ports, which a bridge does once its start is done.
func (e *e2eEnv) startReplicas() []*e2eBridge {
	e.t.Helper()
	bs := []*e2eBridge{e.newBridge("replica1", "warn", true), e.newBridge("replica2", "warn", true)}
	for _, b := range bs {
		b.launch()
	}
	for _, b := range bs {
		b.waitListening()
	}
	return bs
}

// readyReplicas starts a fresh cluster and two bridge replicas on it, with
// the fake taking delay over each request, and waits until both are ready.
func readyReplicas(t *testing.T, delay time.Duration) (*e2eEnv, []*e2eBridge) {
	t.Helper()
	e := newE2ECluster(t)
	e.ic.SetDelay(delay)
	bs := e.startReplicas()
	waitReady(t, 60*time.Second, bs...)
	return e, bs
}

// waitReady waits until every bridge's /readyz answers 200.
func waitReady(t *testing.T, timeout time.Duration, bs ...*e2eBridge) {
	t.Helper()
	for _, b := range bs {
		b.readyBody(timeout)
	}
}

// leaders names the node that leads each of the bridge's streams, the
// sent ledger's stream and both stages' consumers; "" where none answers
// with a leader (an election under way, or no quorum).
func (e *e2eEnv) leaders() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := map[string]string{}
	for _, name := range []string{e.names.Events.Name, e.names.Outbox.Name, "KV_" + e.names.Sent.Bucket} {
		if s, err := e.js.Stream(ctx, name); err == nil && s.CachedInfo().Cluster != nil {
			out[name] = s.CachedInfo().Cluster.Leader
		} else {
			out[name] = ""
		}
	}
	for _, c := range [][2]string{{e.names.Events.Name, e.names.MatchConsumer}, {e.names.Outbox.Name, e.names.SendConsumer}} {
		if cons, err := e.js.Consumer(ctx, c[0], c[1]); err == nil && cons.CachedInfo().Cluster != nil {
			out[c[1]] = cons.CachedInfo().Cluster.Leader
		} else {
			out[c[1]] = ""
		}
	}
	return out
}

// node returns the cluster node named name.
func (e *e2eEnv) node(name string) *natstest.Server {
	e.t.Helper()
	for _, s := range e.servers {
		if s.Name() == name {
			return s
		}
	}
	e.t.Fatalf("no node is named %q", name)
	return nil
}

// led lists what leaders says name leads, sorted, for logs.
func led(leaders map[string]string, name string) string {
	var out []string
	for what, leader := range leaders {
		if leader == name {
			out = append(out, what)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// arrivals returns, for each event in 0..n-1, when the fake received the
// first request for it that it accepted; zero for an event with none.
func (e *e2eEnv) arrivals(n int) []time.Time {
	at := make([]time.Time, n)
	for _, r := range e.ic.Requests() {
		if r.StatusCode != http.StatusOK || r.Path != "/messages" {
			continue
		}
		if i := faultEventN(r.Body); i >= 0 && i < n && at[i].IsZero() {
			at[i] = r.Time
		}
	}
	return at
}

// sentByEach reads each bridge's count of messages sent, for logs and for
// checking that the work was shared.
func sentByEach(t *testing.T, bs ...*e2eBridge) []int {
	t.Helper()
	out := make([]int, len(bs))
	for i, b := range bs {
		n, err := b.sentMetric()
		if err != nil {
			t.Fatalf("%s: metrics: %v", b.name, err)
		}
		out[i] = n
	}
	return out
}

// checkServing fails t for each bridge that is no longer running, and
// waits until those running are ready again.
func checkServing(t *testing.T, bs ...*e2eBridge) {
	t.Helper()
	for _, b := range bs {
		if !b.running() {
			t.Fatalf("%s exited (%v):\n%s", b.name, b.state, b.tail(30))
		}
	}
	waitReady(t, 60*time.Second, bs...)
}

// TestFaultClusterColdStart: both replicas start at the same moment on a
// cluster that has just started (no JetStream leader yet); both become
// ready, neither exits (before the topology was retried they both gave up
// after nats.connect_timeout, 10 s), and 500 events published over 10 s
// are shared between them and sent once each.
func TestFaultClusterColdStart(t *testing.T) {
	const (
		n    = 500
		pace = 20 * time.Millisecond
	)
	e := newE2ECluster(t)
	e.ic.SetDelay(5 * time.Millisecond)
	launched := time.Now()
	bs := e.startReplicas()
	listening := time.Since(launched)
	waitReady(t, 60*time.Second, bs...)
	t.Logf("both replicas listening %v and ready %v after their launch; leaders: %v",
		listening.Round(time.Millisecond), time.Since(launched).Round(time.Millisecond), e.leaders())

	stop := make(chan struct{})
	defer close(stop)
	pub := e.publish(0, n, pace, stop)
	e.faultWaitPublished(pub, n, 60*time.Second)
	e.waitFor(60*time.Second, e.progress(n), func() bool { return e.allArrived(n) })
	e.settle(60 * time.Second)

	lost, dups, unknown := e.tally(n)
	sent := sentByEach(t, bs...)
	t.Logf("lost=%d duplicated=%d unknown=%d; sent by each replica %v; %v since the launch, past nats.connect_timeout (10s); %d publish retries",
		lost, dups, unknown, sent, time.Since(launched).Round(time.Millisecond), pub.retries.Load())
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d with no fault", lost, dups, unknown)
	}
	if sent[0]+sent[1] != n || sent[0] == 0 || sent[1] == 0 {
		t.Errorf("the replicas say they sent %v, want %d in all and some by each", sent, n)
	}
	checkServing(t, bs...)
}

// TestFaultClusterStreamLeaderKill: while 1,000 events flow, the node that
// leads the outbox stream goes down, and comes back on the same port and
// store later in the run. The other two keep the quorum, a new leader is
// elected, and the bridges connected to the lost node move to another.
// Nothing is lost; a duplicate may come only from a send pending in the
// ledger at the loss.
func TestFaultClusterStreamLeaderKill(t *testing.T) {
	const n, wait = clusterEvents, clusterWait
	e, bs := readyReplicas(t, 5*time.Millisecond) // sends are in flight when the node goes

	var down *natstest.Server
	faults := []fault{{name: "outbox leader down", at: n / 5, inject: func() map[string]string {
		before := e.leaders()
		down = e.node(before[e.names.Outbox.Name])
		// The keys pending just before the loss and just after: a send
		// whose record the loss held up is in one or the other.
		keys := e.pendingAfterFault(wait)
		down.Down()
		lostAt := time.Now()
		poll.For(t, wait, "a new leader of the outbox", func() bool {
			l := e.leaders()[e.names.Outbox.Name]
			return l != "" && l != down.Name()
		})
		t.Logf("%s down: it led %s; a new outbox leader %v later; leaders now %v",
			down.Name(), led(before, down.Name()), time.Since(lostAt).Round(time.Millisecond), e.leaders())
		for k, owner := range e.pendingAfterFault(wait) {
			keys[k] = owner
		}
		return keys
	}}, {name: "node up", at: n * 3 / 4, inject: func() map[string]string {
		down.Up()
		return nil
	}}}
	r := e.runFaults(t, n, clusterPace, faults, wait)
	e.checkFaultRun(t, n, r, bs...)
	t.Logf("sent by each replica %v; leaders at the end %v", sentByEach(t, bs...), e.leaders())
	checkServing(t, bs...)
}

// TestFaultClusterReplicaKill: while 1,000 events flow, one bridge replica
// is SIGKILLed and not restarted; the other takes over the events and
// jobs it held (after stage 1's and the outbox's AckWait) and the keys it
// was sending (after their lease). The failover time is from the kill until every event published
// before it has arrived. Nothing is lost; the duplicates are at most the
// keys pending at the kill.
func TestFaultClusterReplicaKill(t *testing.T) {
	const n, wait = clusterEvents, clusterWait
	// The target is 5 s (both stages' AckWait is 4 s); the bound is what a
	// slow shared machine still meets.
	const failoverBound = 30 * time.Second
	// The fake's delay is long enough for a few sends to be in flight at
	// the kill, short enough for the replicas to keep up with the events:
	// the events in flight at the kill are then the work interrupted, not
	// a backlog.
	e, bs := readyReplicas(t, 10*time.Millisecond)
	var victim, survivor *e2eBridge
	var victimKeys map[string]bool // keys pending under the victim's lease at the kill
	faults := []fault{{name: "kill the replica that sent more", at: n * 3 / 10, inject: func() map[string]string {
		// The one doing more of the work, so that there is work to take
		// over.
		victim, survivor = bs[0], bs[1]
		if sent := sentByEach(t, bs...); sent[1] > sent[0] {
			victim, survivor = bs[1], bs[0]
		}
		pid := victim.cmd.Process.Pid
		victim.kill()
		keys := e.pendingAfterFault(wait)
		victimKeys = map[string]bool{}
		for k, owner := range keys {
			if strings.Contains(owner, fmt.Sprintf("-%d#", pid)) {
				victimKeys[k] = true
			}
		}
		return keys
	}}}
	r := e.runFaults(t, n, clusterPace, faults, wait)
	e.checkFaultRun(t, n, r, bs...)

	// The work in flight at the kill: events published before it that had
	// not arrived. The survivor's own arrive at once; the victim's once
	// JetStream hands them out again, and those whose key it was sending
	// once that key's lease runs out.
	kill, arrived := r.injected[0], e.arrivals(n)
	var held, leased time.Duration
	var inFlight, late int
	for i := range kill.published {
		if arrived[i].Before(kill.at) {
			continue
		}
		inFlight++
		d := arrived[i].Sub(kill.at)
		if d > time.Second {
			late++
		}
		if victimKeys[fmt.Sprintf("%s/%d", e2eRule, i)] {
			leased = max(leased, d)
		} else {
			held = max(held, d)
		}
	}
	t.Logf("failover: %s killed; the work in flight at the kill (%d events, %d of them late by over 1s) was all sent %v after the kill; the %d keys it was sending, %v after it; %s sent %d in all",
		victim.name, inFlight, late, held.Round(time.Millisecond), len(victimKeys), leased.Round(time.Millisecond), survivor.name, sentByEach(t, survivor)[0])
	if held > failoverBound || leased > failoverBound {
		t.Errorf("failover took %v (held jobs) and %v (leased keys), more than %v", held, leased, failoverBound)
	}
	checkServing(t, survivor)
}

// TestFaultClusterQuorumLoss: two of the three nodes go down. Both
// replicas' /readyz turns 503 and names the events stream's problem, and a
// webhook is answered 503 with Retry-After, not left hanging; once the
// nodes are back both are ready again. Every event accepted before the
// loss and after it is sent once: those refused meanwhile are sent again
// by their sender, with the same webhook id, as a 503 asks.
func TestFaultClusterQuorumLoss(t *testing.T) {
	const (
		before = 100 // events sent before the loss
		n      = 200 // all of them
		wait   = 2 * time.Minute
	)
	e, bs := readyReplicas(t, 5*time.Millisecond)

	// accept sends event i as a sender would: through one replica or the
	// other, again until it is accepted.
	accept := func(i int) {
		t.Helper()
		b := bs[i%len(bs)]
		var last string
		if !poll.Until(wait, func() bool {
			resp, body, err := b.webhookAnswer(fmt.Sprintf("q-%d", i), e2eSecret, time.Now(), eventBody(i), 15*time.Second)
			if err != nil {
				last = err.Error()
				return false
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
			return resp.StatusCode == http.StatusAccepted
		}) {
			t.Fatalf("%s: webhook %d not accepted in %v; last answer: %s", b.name, i, wait, last)
		}
	}
	for i := range before {
		accept(i)
	}
	e.waitFor(wait, e.progress(before), func() bool { return e.allArrived(before) })
	e.settle(wait)

	downAt := time.Now()
	for _, s := range e.servers[1:] {
		s.Down()
	}
	for _, b := range bs {
		var code int
		var body string
		if !poll.Until(wait, func() bool {
			code, body = b.readyz()
			return code == http.StatusServiceUnavailable && strings.Contains(body, "jetstream: stream "+e.names.Events.Name)
		}) {
			t.Fatalf("%s: /readyz without a quorum after %v: %d %s", b.name, wait, code, body)
		}
		t.Logf("%s not ready %v after the loss: %s", b.name, time.Since(downAt).Round(time.Millisecond), strings.Join(strings.Fields(body), " "))
	}
	for i, b := range bs {
		id := before + i
		asked := time.Now()
		resp, body, err := b.webhookAnswer(fmt.Sprintf("q-%d", id), e2eSecret, time.Now(), eventBody(id), 15*time.Second)
		if err != nil {
			t.Fatalf("without a quorum: %v", err)
		}
		t.Logf("%s without a quorum: webhook answered %d in %v, Retry-After %q: %s",
			b.name, resp.StatusCode, time.Since(asked).Round(time.Millisecond), resp.Header.Get("Retry-After"), strings.TrimSpace(string(body)))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s without a quorum: webhook answered %d, Retry-After %q; want 503 with Retry-After", b.name, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}

	upAt := time.Now()
	for _, s := range e.servers[1:] {
		s.Up()
	}
	waitReady(t, wait, bs...)
	t.Logf("both ready %v after the nodes came back (%v after the loss)",
		time.Since(upAt).Round(time.Millisecond), time.Since(downAt).Round(time.Millisecond))
	for i := before; i < n; i++ {
		accept(i)
	}
	e.waitFor(wait, e.progress(n), func() bool { return e.allArrived(n) })
	e.settle(wait)
	lost, dups, unknown := e.tally(n)
	t.Logf("lost=%d duplicated=%d unknown=%d; sent by each replica %v", lost, dups, unknown, sentByEach(t, bs...))
	if lost != 0 || dups != 0 || unknown != 0 {
		t.Errorf("lost %d, duplicates %d, unknown %d: with nothing in flight at the loss, none may be lost or sent twice", lost, dups, unknown)
	}
	checkServing(t, bs...)
}

package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry runs op until it succeeds, fails for good, or ctx ends, and
// returns op's last error.
//
// A JetStream cluster that is starting (no meta leader yet, no quorum for a
// new replicated stream), a server slow to answer, or a connection being
// re-established all answer with errors that pass by themselves: op is then
// tried again after a jittered backoff growing from 100 ms to 2 s. Each try
// has at most tryTimeout. Creating or updating a stream, a bucket or a
// consumer is idempotent, so replicas that start together on a fresh
// cluster all get there.
func Retry(ctx context.Context, what string, op func(ctx context.Context) error) error {
	const tryTimeout = 5 * time.Second
	start := time.Now()
	backoff := 100 * time.Millisecond
	for tries := 1; ; tries++ {
		tctx, cancel := context.WithTimeout(ctx, tryTimeout)
		err := op(tctx)
		cancel()
		if err == nil || !Transient(err) {
			return err
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, 2*time.Second)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: gave up after %d tries in %v: %w", what, tries, time.Since(start).Round(time.Millisecond), err)
		case <-time.After(wait):
		}
	}
}

// transientCodes are the JetStream errors of a cluster that is starting,
// electing a leader or missing a quorum; they pass by themselves.
var transientCodes = map[jetstream.ErrorCode]bool{
	10008: true, // JSClusterNotAvailErr: JetStream system temporarily unavailable
	10007: true, // JSClusterNotAssignedErr
	10009: true, // JSClusterNotLeaderErr: JetStream cluster can not handle request
	10118: true, // JSStreamOfflineErr
	10119: true, // JSConsumerOfflineErr
	10194: true, // JSStreamOfflineReasonErrF
	10195: true, // JSConsumerOfflineReasonErrF
	10075: true, // JSPeerRemapErr
	10202: true, // JSClusterServerMemberChangeInflightErr
}

// offlinePeers is JetStream's refusal to place a stream or consumer when
// the only reason is that peers it needs are offline: what a cluster
// answers while its nodes are starting and have not all reported in yet.
// The same code with any other reason (too few servers for the replicas,
// no storage, tags) is a configuration that will not pass.
const offlinePeers = "no suitable peers for placement, peer offline"

// Transient reports whether a JetStream request failed for a reason that
// passes by itself: no answer in time, no server to answer, or one of the
// errors of a cluster that is not ready yet. Any other answer of
// JetStream's (a configuration it will not take, even as a 500) is not.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return transientCodes[apiErr.ErrorCode] || (apiErr.ErrorCode == 0 && apiErr.Code == 503) ||
			(apiErr.ErrorCode == 10005 && strings.HasSuffix(apiErr.Description, offlinePeers)) // JSClusterNoPeersErrF
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

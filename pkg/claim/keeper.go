package claim

import (
	"context"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// keeper renews one lease and tracks how long the lease is provably alive.
//
// etcd's stock keepalive measures a lease's life from the moment a renewal
// reply is received and checks about once a second, so it can report a lease
// alive after the server has expired it. The keeper instead records the send
// time of each renewal that was acknowledged: the server received it later,
// so the lease lives at least until sendTime + TTL on any clock running at the
// server's rate. That instant is expiry().
type keeper struct {
	lease   clientv3.Lease
	id      clientv3.LeaseID
	ttl     time.Duration
	timeout time.Duration

	mu        sync.Mutex
	lastAck   boottime.Instant // send time of the last acknowledged renewal
	roundTrip time.Duration    // send to acknowledgement, of the last acknowledged renewal
	gone      bool             // the server said the lease does not exist
	renewed   chan struct{}    // receives a value after each acknowledged renewal
	lost      chan struct{}    // closed once the lease is known to be gone
}

func newKeeper(lease clientv3.Lease, id clientv3.LeaseID, ttl, timeout time.Duration, granted boottime.Instant) *keeper {
	return &keeper{
		lease: lease, id: id, ttl: ttl, timeout: timeout,
		lastAck: granted,
		renewed: make(chan struct{}, 1),
		lost:    make(chan struct{}),
	}
}

// expiry is the earliest instant at which the server may expire the lease
// (invariant "expiry from send times").
func (k *keeper) expiry() boottime.Instant {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastAck.Add(k.ttl)
}

func (k *keeper) isGone() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gone
}

func (k *keeper) markGone() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.gone {
		k.gone = true
		close(k.lost)
	}
}

// renewOnce sends one renewal and, when it is acknowledged, moves expiry to
// its send time + TTL. The request is bounded by the keeper's timeout and by
// the current expiry: an answer that arrives after the lease could have
// expired proves nothing.
func (k *keeper) renewOnce(ctx context.Context) error {
	// Invariant "expiry from send times": taken before the request leaves.
	sent := boottime.Now()
	bound := min(k.timeout, k.expiry().Sub(sent))
	if bound < 100*time.Millisecond {
		bound = 100 * time.Millisecond
	}
	rctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	_, err := k.lease.KeepAliveOnce(rctx, k.id)
	if err != nil {
		if isLeaseNotFound(err) {
			k.markGone()
		}
		return err
	}
	k.mu.Lock()
	// Invariant "expiry from send times": an acknowledgement moves expiry
	// to its own request's send time, and only forward (overlapping
	// renewals can be acknowledged out of order).
	if sent > k.lastAck {
		k.lastAck = sent
		k.roundTrip = boottime.Now().Sub(sent)
	}
	k.mu.Unlock()
	select {
	case k.renewed <- struct{}{}:
	default:
	}
	return nil
}

// nextRenewal is when the next renewal is due: TTL/10 after the send time
// of the last acknowledged one, brought forward by that renewal's round
// trip so that on a slow link the acknowledgements, not just the requests,
// come every TTL/10.
//
// Why TTL/10 and not the TTL/3 of etcd's own keepalive: run SIGTERMs the
// command 2TTL/3 after the send time of the last acknowledged renewal (see
// runner.EffectiveGrace), so a renewal sent at TTL/3 must be answered within TTL/3.
// On a link with TTL/6 of latency each way it never is in time, and a link
// that slows down suddenly gives no round trip to adapt to beforehand;
// renewing every TTL/10 leaves 2TTL/3 - TTL/10 for the round trip. A
// renewal is one small request that the leader answers from memory (no
// Raft round), so the extra load is small.
func (k *keeper) nextRenewal() boottime.Instant {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastAck.Add(k.ttl/10 - k.roundTrip)
}

// run renews the lease until ctx ends or the lease is gone: when a renewal
// is due (see nextRenewal), and then, for as long as none is acknowledged,
// again every retry interval (TTL/10, 100ms to 1s).
//
// A renewal that goes unanswered is not waited for: the next one is sent
// alongside it, each in its own goroutine and bounded by its own timeout,
// and whichever is acknowledged moves expiry to its own send time + TTL.
// Waiting for each to time out before sending the next would let one hung
// endpoint (a frozen member, a cut link, a follower forwarding to a leader
// that is gone) eat a whole request timeout of the time left before the
// SIGTERM, which with --command-timeout near TTL/3 (1s at TTL 3s) costs the
// claim; the client's balancer sends each new request to the next
// endpoint, so such an endpoint costs one retry interval. Likewise, on a
// link whose round trip exceeds the retry interval, overlapping renewals
// keep acknowledgements coming where one-at-a-time renewals could not.
// The schedule only decides how long a hold survives a fault; safety does
// not depend on it, since expiry only ever moves to the send time of an
// acknowledged renewal.
func (k *keeper) run(ctx context.Context) {
	retry := min(max(k.ttl/10, 100*time.Millisecond), time.Second)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	var lastSent boottime.Instant
	for sent := false; ; {
		next := k.nextRenewal()
		if sent && next.Before(lastSent.Add(retry)) {
			next = lastSent.Add(retry)
		}
		if wait := boottime.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-k.lost:
				t.Stop()
				return
			case <-t.C:
			}
			// An acknowledgement meanwhile may have moved the due time.
			continue
		}
		if ctx.Err() != nil || k.isGone() {
			return
		}
		lastSent, sent = boottime.Now(), true
		inflight.Go(func() { _ = k.renewOnce(ctx) })
	}
}

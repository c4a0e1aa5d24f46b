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

	mu      sync.Mutex
	lastAck boottime.Instant // send time of the last acknowledged renewal
	gone    bool             // the server said the lease does not exist
	renewed chan struct{}    // receives a value after each acknowledged renewal
	lost    chan struct{}    // closed once the lease is known to be gone
}

func newKeeper(lease clientv3.Lease, id clientv3.LeaseID, ttl, timeout time.Duration, granted boottime.Instant) *keeper {
	return &keeper{
		lease: lease, id: id, ttl: ttl, timeout: timeout,
		lastAck: granted,
		renewed: make(chan struct{}, 1),
		lost:    make(chan struct{}),
	}
}

// expiry is the earliest instant at which the server may expire the lease.
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
	if sent > k.lastAck {
		k.lastAck = sent
	}
	k.mu.Unlock()
	select {
	case k.renewed <- struct{}{}:
	default:
	}
	return nil
}

// run renews the lease every TTL/3 until ctx ends or the lease is gone. After
// a failed renewal it retries quickly (the client fails over to another
// endpoint meanwhile) so that a short outage costs no safety margin.
func (k *keeper) run(ctx context.Context) {
	retry := min(max(k.ttl/10, 100*time.Millisecond), time.Second)
	next := k.expiry().Add(-k.ttl).Add(k.ttl / 3)
	for {
		wait := boottime.Until(next)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := k.renewOnce(ctx); err != nil {
			if k.isGone() || ctx.Err() != nil {
				return
			}
			next = boottime.Now().Add(retry)
			continue
		}
		next = k.expiry().Add(-k.ttl).Add(k.ttl / 3)
	}
}

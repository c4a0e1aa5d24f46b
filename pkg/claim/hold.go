package claim

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// Hold is one verified hold of a claim by this process.
type Hold struct {
	c *Client

	Name      string
	Key       string
	Lease     int64
	Revision  int64 // the holder key's create revision: the fencing token
	TTL       time.Duration
	Limit     int
	ClusterID uint64
	Holder    Holder
	// Slot is the hold's slot, from 0 to Limit-1, which no other current
	// holder of the claim has; SlotName is its name when the claim has named
	// slots (AcquireOptions.Slots). A mutex's slot is 0.
	Slot     int
	SlotName string

	keeper *keeper

	// unrecorded is true when the hold was taken after waiting and its
	// acquired_at is not yet in etcd (see RecordAcquired).
	unrecorded bool

	mu       sync.Mutex
	stop     context.CancelFunc
	lost     chan struct{}
	lostErr  error
	released bool
}

// Token returns the token that lets another process renew or release this
// hold.
func (h *Hold) Token() Token {
	return Token{ClusterID: h.ClusterID, Lease: h.Lease, Revision: h.Revision, Prefix: h.c.keys.Prefix(), Name: h.Name}
}

// waited marks a hold that Acquire took after waiting: it was acquired now,
// which is worth recording (see RecordAcquired). Invariant "acquired_at
// means first": it is called only once the hold is proven first (among the
// first Limit for a semaphore), and is the only place that sets AcquiredAt.
func (h *Hold) waited() {
	now := time.Now().UTC().Truncate(time.Millisecond)
	h.Holder.AcquiredAt = &now
	h.unrecorded = true
}

// RecordAcquired writes the acquisition time into the hold's key, if Acquire
// had to wait for the claim (an uncontended hold's queued_at is its
// acquisition time). It is off the handoff's critical path: run calls it once
// the command has run for a second (not at all for a shorter hold, to save
// the write), acquire before printing the token. Besides telling status
// since when the claim is held, the write tells the contender queued right
// behind that nobody is ahead of this hold any more, so that this hold's
// release makes it first with a read of its own key alone (see
// Client.watchAhead); without it, that contender reads its key and the
// newest key older than it, in the same one round trip
// (Client.confirmNoneAhead).
//
// The write is guarded by the key's create revision and lease, so it can
// never touch a later holder's key. If the guard fails, the hold is gone
// (its key removed meanwhile): RecordAcquired reports ErrNotHeld and, if the
// hold is kept, marks it lost. An etcd error proves nothing either way and
// is not reported: the record is informational.
func (h *Hold) RecordAcquired(ctx context.Context) error {
	if !h.unrecorded {
		return nil
	}
	h.unrecorded = false
	c := h.c
	rctx, cancel := c.request(ctx)
	defer cancel()
	// Invariant "acquired_at means first": into this hold's key alone;
	// unguarded, the put would create the key again if it was removed, a
	// younger key claiming an acquisition.
	resp, err := c.etcd.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision),
			clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.LeaseID())).
		Then(clientv3.OpPut(h.Key, h.Holder.encode(), clientv3.WithIgnoreLease())).
		Commit()
	if err != nil || resp.Succeeded {
		return nil
	}
	lost := fmt.Errorf("%w: the claim's key was removed right after it was acquired (released with --force, or its lease revoked)", ErrNotHeld)
	h.markLost(lost)
	return lost
}

// LeaseID returns the hold's lease ID.
func (h *Hold) LeaseID() clientv3.LeaseID { return clientv3.LeaseID(h.Lease) }

// Expiry is the earliest boot-time instant at which etcd may expire the
// lease: the send time of the last acknowledged renewal (or of the grant)
// plus the TTL (invariant "expiry from send times"). Until then no one else
// can be handed this hold's slot, short of an explicit release or --force.
func (h *Hold) Expiry() boottime.Instant { return h.keeper.expiry() }

// Verify proves the hold afresh, with a renewal of its lease that etcd
// acknowledges (which moves Expiry) followed by a read of its key, which
// must still carry the hold's create revision and lease. run calls it
// before continuing a command that was suspended: while everything was
// stopped nothing renewed the lease or watched the key, so a key removed
// meanwhile (release --force) would otherwise be noticed only when the
// watch catches up, after the command had been running again. A hold found
// gone is marked lost and reported as ErrNotHeld; an etcd error proves
// nothing either way and is returned as such.
func (h *Hold) Verify(ctx context.Context) error {
	if err := h.keeper.renewOnce(ctx); err != nil {
		if h.keeper.isGone() {
			lost := fmt.Errorf("%w: etcd reports lease %x no longer exists (expired or revoked)", ErrNotHeld, h.Lease)
			h.markLost(lost)
			return lost
		}
		return h.c.etcdError("renew "+h.Name, err)
	}
	rctx, cancel := h.c.request(ctx)
	defer cancel()
	resp, err := h.c.etcd.Get(rctx, h.Key)
	if err != nil {
		return h.c.etcdError("read "+h.Name, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.Revision || resp.Kvs[0].Lease != h.Lease {
		lost := fmt.Errorf("%w: the claim's key is gone or was replaced (released with --force, or its lease revoked)", ErrNotHeld)
		h.markLost(lost)
		return lost
	}
	return nil
}

// Renewed receives a value after each acknowledged renewal, so a supervisor
// can move its deadline.
func (h *Hold) Renewed() <-chan struct{} { return h.keeper.renewed }

// Keep starts keeping the hold alive: the lease is renewed every TTL/10
// (see keeper.run) and the hold's own key is watched, so that Lost closes
// as soon as the key is deleted or replaced or the lease is gone. It stops
// when ctx ends or the hold is released.
func (h *Hold) Keep(ctx context.Context) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop != nil || h.released {
		return
	}
	ctx, h.stop = context.WithCancel(ctx)
	h.lost = make(chan struct{})
	go h.keeper.run(ctx)
	go h.watchOwnKey(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-h.keeper.lost:
			h.markLost(fmt.Errorf("%w: etcd reports lease %x no longer exists (expired or revoked)", ErrNotHeld, h.Lease))
		}
	}()
}

// Lost is closed when the hold is known to be gone. It is nil (blocks
// forever) until Keep is called.
func (h *Hold) Lost() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lost
}

// LostReason says why Lost closed.
func (h *Hold) LostReason() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lostErr
}

func (h *Hold) markLost(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lostErr == nil && h.lost != nil {
		h.lostErr = err
		close(h.lost)
	}
}

// watchOwnKey watches the hold's key from its creation on. A deletion, or a
// put that changes its create revision or lease, means the hold is gone
// (released with --force, revoked, or tampered with).
func (h *Hold) watchOwnKey(ctx context.Context) {
	c := h.c
	from := h.Revision + 1
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range c.etcd.Watch(wctx, h.Key, clientv3.WithRev(from), clientv3.WithPrevKV()) {
			if wr.CompactRevision != 0 {
				// History was compacted past our start: re-read the key.
				from = h.recheckKey(ctx)
				break
			}
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				switch {
				case ev.Type == clientv3.EventTypeDelete:
					h.markLost(deletedError(ev))
					cancel()
					return
				case ev.Kv.CreateRevision != h.Revision || ev.Kv.Lease != h.Lease:
					h.markLost(fmt.Errorf("%w: the claim's key was replaced at revision %d", ErrNotHeld, ev.Kv.ModRevision))
					cancel()
					return
				}
				from = ev.Kv.ModRevision + 1
			}
			if wr.Header.Revision >= from {
				from = wr.Header.Revision + 1
			}
		}
		cancel()
		if ctx.Err() == nil {
			sleep(ctx, 100*time.Millisecond)
		}
	}
}

// recheckKey reads the key after a compaction and returns the revision to
// watch from, marking the hold lost if the key is gone.
func (h *Hold) recheckKey(ctx context.Context) int64 {
	for ctx.Err() == nil {
		rctx, cancel := h.c.request(ctx)
		resp, err := h.c.etcd.Get(rctx, h.Key)
		cancel()
		if err != nil {
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != h.Revision {
			h.markLost(fmt.Errorf("%w: the claim's key is gone", ErrNotHeld))
		}
		return resp.Header.Revision + 1
	}
	return 0
}

// Release ends the hold by revoking its lease, which deletes its key. This is
// fenced by construction: the lease belongs to this hold alone, so a release
// can never remove a later holder's key (etcd issue 22082). It reports
// ErrNotHeld if the lease was already gone.
func (h *Hold) Release() error {
	h.mu.Lock()
	if h.stop != nil {
		h.stop()
	}
	h.released = true
	h.mu.Unlock()
	ctx, cancel := h.c.cleanup()
	defer cancel()
	if _, err := h.c.etcd.Revoke(ctx, h.LeaseID()); err != nil {
		if isLeaseNotFound(err) {
			return fmt.Errorf("release %s: %w: lease %x had already expired or been revoked", h.Name, ErrNotHeld, h.Lease)
		}
		return h.c.etcdError("release "+h.Name, err)
	}
	return nil
}

// deletedError explains the deletion of a hold's key.
func deletedError(ev *clientv3.Event) error {
	if ev.PrevKv != nil {
		if prev := decodeHolder(ev.PrevKv.Value); prev != nil && prev.ForcedBy != "" {
			return fmt.Errorf("%w: the claim was released with --force by %s at revision %d", ErrNotHeld, prev.ForcedBy, ev.Kv.ModRevision)
		}
	}
	return fmt.Errorf("%w: the claim's key was deleted at revision %d (released with --force, or the lease was revoked)", ErrNotHeld, ev.Kv.ModRevision)
}

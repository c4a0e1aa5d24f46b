package claim

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// Slots.
//
// Every holder of a claim has a slot, a number from 0 to Limit-1 that no
// other current holder has, kept for the whole hold. A mutex holder is
// alone, so its slot is 0 and costs nothing: no key, no request, and the
// etcdctl lock layout is untouched.
//
// A semaphore holder, once it is proven among the first Limit keys, takes
// the lowest slot free in a read of the slot keys that it got with a request
// it sent anyway (the create transaction, the waiter's proving read or its
// re-read), with one transaction that creates SlotKey(name, i) attached to
// its own lease only if that key does not exist. Two holders can therefore
// never share a slot while both leases live, and a slot frees exactly when
// its holder's lease ends (release, crash and expiry, release --force, which
// revokes it). The transaction's other branch reads the slot keys again, so
// a holder that lost a race for a slot tries the next free one with no
// extra read. Slot keys live outside the claim's contender range (see
// Keyspace.SlotPrefix): nothing that counts contenders sees them.
//
// At most Limit-1 other holders exist when a holder takes its slot, so a
// slot is free unless stale slot keys remain: keys of holders whose holder
// key is gone while their lease lives (a release by token that could not
// revoke, a key deleted by hand). Then the holder watches the slot range
// for a deletion, keeping its lease alive, bounded by the caller's context.

// slotView is what a holder knows of its claim's slot keys.
type slotView struct {
	// taken maps each existing slot index to the lease its key is attached
	// to.
	taken map[int]int64
	// rev is the revision the keys were read at.
	rev int64
}

// readSlots is the request for a claim's slot keys, sent within requests
// that acquiring makes anyway. It reads the values too: a keys-only range
// leaves out the leases that tell whose a slot is (etcd 3.7 answers it from
// its index, which does not hold them).
func (c *Client) readSlots(name string) clientv3.Op {
	return clientv3.OpGet(c.keys.SlotPrefix(name), clientv3.WithPrefix())
}

// slotView parses a read of name's slot keys made at revision rev.
func (c *Client) slotView(name string, kvs []*mvccpb.KeyValue, rev int64) *slotView {
	v := &slotView{taken: map[int]int64{}, rev: rev}
	for _, kv := range kvs {
		if n, i, ok := c.keys.ParseSlot(string(kv.Key)); ok && n == name {
			v.taken[i] = kv.Lease
		}
	}
	return v
}

// choose returns the slot to try for the holder with lease: the one already
// attached to its lease (a retried request that took it), else the lowest
// free one below limit, else -1.
func (v *slotView) choose(lease int64, limit int) int {
	for i, l := range v.taken {
		if l == lease && i < limit {
			return i
		}
	}
	for i := range limit {
		if _, taken := v.taken[i]; !taken {
			return i
		}
	}
	return -1
}

// takeSlot gives the proven holder h its slot (see Slots above), starting
// from view, the slot keys read along with the proof (nil for a mutex).
func (c *Client) takeSlot(ctx context.Context, h *Hold, opts AcquireOptions, view *slotView) error {
	if opts.Limit == 1 {
		h.setSlot(0, opts.Slots)
		return nil
	}
	op := "acquire " + opts.Name
	retry := min(max(h.TTL/10, 100*time.Millisecond), time.Second)
	// The lease is kept alive while waiting for a free slot.
	kctx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	waited := false
	for i := view.choose(h.Lease, opts.Limit); ; {
		if i < 0 {
			if opts.NonBlocking {
				return fmt.Errorf("%w: claim %s has no free slot: every one is taken by a holder whose lease outlives its key (released by token without the lease revoked, or its key deleted by hand); it frees when that lease ends",
					ErrBusy, opts.Name)
			}
			if !waited {
				go h.keeper.run(kctx)
			}
			waited = true
			var err error
			if i, err = c.awaitSlot(ctx, h, view.rev); err != nil {
				if ctx.Err() != nil {
					return c.waitError(ctx, op, err, true)
				}
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		if ctx.Err() != nil {
			return c.waitError(ctx, op, ctx.Err(), true)
		}
		slotKey := c.keys.SlotKey(opts.Name, i)
		rctx, cancel := c.request(ctx)
		resp, err := c.etcd.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(slotKey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision),
				clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.LeaseID())).
			Then(clientv3.OpPut(slotKey, h.Key, clientv3.WithLease(h.LeaseID()))).
			Else(c.readSlots(opts.Name), clientv3.OpGet(h.Key)).
			Commit()
		cancel()
		switch {
		case isLeaseNotFound(err):
			h.keeper.markGone()
			return fmt.Errorf("%s: %w", op, h.lostInQueue())
		case err != nil:
			if ctx.Err() != nil || !isUnavailable(err) {
				return c.waitError(ctx, op, err, true)
			}
			// The outcome is unknown: the retry finds the slot taken by
			// this lease if the request went through.
			sleep(ctx, retry)
			continue
		case resp.Succeeded:
			h.setSlot(i, opts.Slots)
			// Invariant "life after wait": waiting for a slot may have
			// used up the life the wait left.
			if waited && boottime.Until(h.keeper.expiry()) <= MinLifeAfterWait(h.TTL) {
				if err := h.keeper.renewOnce(ctx); err != nil {
					if h.keeper.isGone() {
						return fmt.Errorf("%s: %w", op, h.lostInQueue())
					}
					return c.waitError(ctx, op, err, true)
				}
			}
			return nil
		}
		own := resp.Responses[1].GetResponseRange().Kvs
		if len(own) != 1 || own[0].CreateRevision != h.Revision || own[0].Lease != h.Lease {
			h.keeper.markGone()
			return fmt.Errorf("%s: %w", op, h.lostInQueue())
		}
		view = c.slotView(opts.Name, resp.Responses[0].GetResponseRange().Kvs, resp.Header.Revision)
		i = view.choose(h.Lease, opts.Limit)
	}
}

// awaitSlot waits, from revision rev on, until a slot key of h's claim is
// deleted, and returns that slot's index; when the watch breaks it returns
// 0, whose transaction reads the slots again if it is taken. It fails when
// ctx ends or the lease is lost or can no longer be proven alive.
func (c *Client) awaitSlot(ctx context.Context, h *Hold, rev int64) (int, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	events := c.etcd.Watch(wctx, c.keys.SlotPrefix(h.Name), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	for {
		timer := time.NewTimer(max(boottime.Until(h.keeper.expiry()), 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return 0, ctx.Err()
		case <-h.keeper.lost:
		case <-timer.C:
		case <-h.keeper.renewed:
			timer.Stop()
			continue
		case wr, ok := <-events:
			timer.Stop()
			if !ok || wr.Err() != nil {
				return 0, nil
			}
			for _, ev := range wr.Events {
				if _, i, ok := c.keys.ParseSlot(string(ev.Kv.Key)); ok && i < h.Limit {
					return i, nil
				}
			}
			continue
		}
		timer.Stop()
		if err := h.lostInQueue(); err != nil {
			return 0, err
		}
	}
}

// setSlot records the hold's slot and, for named slots, its name.
func (h *Hold) setSlot(index int, names []string) {
	h.Slot = index
	if index < len(names) {
		h.SlotName = names[index]
	}
}

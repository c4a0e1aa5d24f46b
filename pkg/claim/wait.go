package claim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// wait queues h until it is among the first Limit keys, keeping its lease
// alive meanwhile.
//
// A mutex waiter watches only the key just ahead of it: a release wakes the
// next waiter alone. A semaphore waiter
// must notice any of the keys ahead leaving, so it watches the claim's range
// for deletions and counts them locally; the events fan out but no waiter
// sends a request until it may be eligible.
//
// A handoff costs the waiter one request, a read of its own key, when its
// watch proves it eligible (see watchAhead): the keys older than its own form
// a set that can only shrink, so once the waiter has seen every one of them
// deleted it is first, as of the revision of that event. The read proves its
// key still there now (the event may have come late, and the key may have
// been removed meanwhile); its lease is proven alive by the keeper's last
// acknowledged renewal (see keeper.expiry), which must leave more than half
// the TTL. When the watch proves nothing (a contender ahead gave up, a
// foreign contender ahead, the watch broke, the lease's proof is old), the
// waiter re-reads its own key and the keys ahead in one transaction, then
// renews, so that a waiter whose lease expired while it waited never reports
// success (etcd issue 19597).
func (c *Client) wait(ctx context.Context, h *Hold, opts AcquireOptions) error {
	op := "acquire " + opts.Name
	kctx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	go h.keeper.run(kctx)

	claimPrefix := c.keys.ClaimPrefix(opts.Name)
	var last QueueState
	retry := min(max(h.TTL/10, 100*time.Millisecond), time.Second)
	for {
		if ctx.Err() != nil {
			return c.waitError(ctx, op, ctx.Err(), true)
		}
		if err := h.lostInQueue(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		// A semaphore waiter needs the values of the keys ahead (their
		// limits) to check, when its watch proves it eligible, that the
		// holders it joins use its limit; a mutex waiter needs only keys.
		olderOpts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(h.Revision - 1),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
		if opts.Limit == 1 {
			olderOpts = append(olderOpts, clientv3.WithKeysOnly())
		}
		rctx, cancel := c.request(ctx)
		resp, err := c.etcd.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision),
				clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.LeaseID())).
			Then(
				clientv3.OpGet(claimPrefix, olderOpts...),
				clientv3.OpGet(claimPrefix, clientv3.WithPrefix(),
					clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend),
					clientv3.WithLimit(int64(opts.Limit)))).
			Commit()
		cancel()
		if err != nil {
			if ctx.Err() != nil || !isUnavailable(err) {
				return c.waitError(ctx, op, err, true)
			}
			sleep(ctx, retry)
			continue
		}
		if !resp.Succeeded {
			h.keeper.markGone()
			return fmt.Errorf("%s: %w", op, h.lostInQueue())
		}
		older := resp.Responses[0].GetResponseRange().Kvs
		front := c.entries(resp.Responses[1].GetResponseRange().Kvs)
		if err := checkLimit(opts.Name, opts.Limit, front, h.Revision); err != nil {
			return err
		}
		if len(older) < opts.Limit {
			if err := h.keeper.renewOnce(ctx); err != nil {
				if h.keeper.isGone() {
					return fmt.Errorf("%s: %w", op, h.lostInQueue())
				}
				if ctx.Err() != nil || !isUnavailable(err) {
					return c.waitError(ctx, op, err, true)
				}
				sleep(ctx, retry)
				continue
			}
			if ctx.Err() != nil {
				return c.waitError(ctx, op, ctx.Err(), true)
			}
			h.waited()
			return nil
		}
		state := QueueState{Ahead: len(older), Holders: front, Limit: opts.Limit}
		if opts.Progress != nil && !sameQueue(last, state) {
			opts.Progress(state)
		}
		last = state
		ahead, eligible := c.watchAhead(ctx, h, older, resp.Header.Revision, opts.Limit)
		if !eligible || h.lostInQueue() != nil || boottime.Until(h.keeper.expiry()) <= h.TTL/2 {
			continue
		}
		// The watch proved h first (or within the limit) at the revision of
		// an event, which may have reached it late: a read of its own key
		// proves it still queued now, and nothing older can have appeared
		// since. Its key goes only with its lease or by a deliberate
		// removal (release --force, an administrator), which the watch
		// alone could report too late.
		switch intact, err := c.ownKeyIntact(ctx, h); {
		case err != nil:
			continue // the loop re-reads, or reports why it cannot
		case !intact:
			h.keeper.markGone()
			return fmt.Errorf("%s: %w", op, h.lostInQueue())
		}
		// The read shows the key, which outlives an expired lease until
		// etcd revokes it: the lease itself is proven by the keeper, and
		// the read may have taken long enough to wear that proof down.
		if boottime.Until(h.keeper.expiry()) <= h.TTL/2 {
			continue
		}
		if err := checkLimit(opts.Name, opts.Limit, ahead, h.Revision); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return c.waitError(ctx, op, ctx.Err(), true)
		}
		h.waited()
		return nil
	}
}

// ownKeyIntact reads h's key: it is intact if it still has h's create
// revision and lease.
func (c *Client) ownKeyIntact(ctx context.Context, h *Hold) (bool, error) {
	// An answer after the lease's proven expiry proves nothing.
	rctx, cancel := context.WithTimeout(ctx, min(c.timeout, max(boottime.Until(h.keeper.expiry()), 0)))
	defer cancel()
	resp, err := c.etcd.Get(rctx, h.Key)
	if err != nil {
		return false, err
	}
	return len(resp.Kvs) == 1 && resp.Kvs[0].CreateRevision == h.Revision && resp.Kvs[0].Lease == h.Lease, nil
}

// lostInQueue says why a waiter cannot go on, or nil while it can: its lease
// is gone, or it could not be renewed in time to prove it alive.
func (h *Hold) lostInQueue() error {
	if h.keeper.isGone() {
		return fmt.Errorf("%w: lost the place in the queue: its key or its lease was removed while waiting (the lease expired or was revoked, or the key was deleted)", ErrUnavailable)
	}
	if !boottime.Now().Before(h.keeper.expiry()) {
		return fmt.Errorf("%w: lost the place in the queue: the lease could not be renewed for %v while waiting", ErrUnavailable, h.TTL)
	}
	return nil
}

// watchAhead returns when the queue ahead of h may have changed: a key it
// depends on was deleted, its own key was deleted, the watch broke, the lease
// was renewed late enough to need a check, or ctx ended. It reports whether
// the events alone prove h eligible, and then the holders still ahead of it
// (none for a mutex waiter; fewer than limit for a semaphore waiter);
// otherwise the caller re-reads the queue, so returning early is always
// safe.
//
// older is every key older than h's as of revision rev (with values for a
// semaphore waiter). No key older than h's can be created later, so
// deletions are all that can change the set:
//   - a semaphore waiter watches the claim's range and is eligible once
//     fewer than limit of older remain;
//   - a mutex waiter watches the key just ahead. It knows that key to be the
//     last one older than its own when it was the only one in older, or once
//     the key's holder records its acquisition (a put with acquired_at, which
//     a holder writes only after proving itself first; see
//     Hold.RecordAcquired). That key's deletion then makes h first. A
//     deletion of a key ahead that was still waiting proves nothing.
//
// The events prove h first as of their revision, which may reach h late;
// the caller then reads h's own key to prove it still queued now. A mutex
// waiter watches the key ahead alone, so a release wakes one waiter and
// sends it one event. A removal of its own key while it waits is noticed by
// the keeper if its lease goes (the next renewal fails, within TTL/10), and
// otherwise (the key deleted by hand, the lease alive) only by the read when
// the key ahead goes: such a waiter never holds, but keeps its lease until
// then. Watching its own key too would cost every waiter two more watch
// messages (about a quarter more etcd requests per handoff under contention,
// measured) for the sake of a key deleted behind claimctl's back. A
// semaphore waiter's watch on the claim's range sees its own key too, and
// every event of a response is looked at before deciding.
func (c *Client) watchAhead(ctx context.Context, h *Hold, older []*mvccpb.KeyValue, rev int64, limit int) (ahead []Entry, eligible bool) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := clientv3.WithRev(rev + 1)
	next := older[len(older)-1]
	nextIsLast := len(older) == 1
	pending := map[string]*mvccpb.KeyValue{}
	var events clientv3.WatchChan
	if limit == 1 {
		events = c.etcd.Watch(wctx, string(next.Key), from)
	} else {
		for _, kv := range older {
			pending[string(kv.Key)] = kv
		}
		events = c.etcd.Watch(wctx, c.keys.ClaimPrefix(h.Name), clientv3.WithPrefix(), from, clientv3.WithFilterPut())
	}
	for {
		timer := time.NewTimer(max(boottime.Until(h.keeper.expiry()), 0))
		select {
		case <-ctx.Done():
		case <-h.keeper.lost:
		case <-timer.C:
		case <-h.keeper.renewed:
			timer.Stop()
			continue
		case wr, ok := <-events:
			if !ok || wr.Err() != nil {
				break
			}
			timer.Stop()
			for _, ev := range wr.Events {
				key := string(ev.Kv.Key)
				deleted := ev.Type == clientv3.EventTypeDelete
				switch {
				case key == h.Key:
					if deleted {
						return nil, false // the re-read reports why
					}
				case limit > 1:
					if deleted {
						delete(pending, key)
						eligible = eligible || len(pending) < limit
					}
				case key == string(next.Key):
					if deleted {
						if !nextIsLast {
							return nil, false
						}
						eligible = true
					} else if ev.Kv.CreateRevision == next.CreateRevision && recordsAcquisition(ev.Kv.Value) {
						nextIsLast = true
					}
				}
			}
			if !eligible {
				continue
			}
			for _, kv := range pending {
				ahead = append(ahead, c.entry(kv.Key, kv.CreateRevision, kv.Value))
			}
			return ahead, true
		}
		timer.Stop()
		return nil, false
	}
}

// recordsAcquisition reports whether a key's value is a mutex holder's
// claimctl metadata with acquired_at set, which only a holder that proved
// itself first writes.
func recordsAcquisition(value []byte) bool {
	h := decodeHolder(value)
	return h != nil && h.AcquiredAt != nil && h.Limit == 1
}

func sameQueue(a, b QueueState) bool {
	return a.Ahead == b.Ahead && a.Limit == b.Limit &&
		slices.EqualFunc(a.Holders, b.Holders, func(x, y Entry) bool { return x.CreateRevision == y.CreateRevision })
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

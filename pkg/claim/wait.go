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
// A mutex waiter watches only the key just ahead of it (and its own key): a
// release wakes exactly one waiter. A semaphore waiter must notice any of
// the keys ahead leaving, so it watches the claim's range for deletions and
// counts them locally; the events fan out but no waiter sends a request until
// it may be eligible.
//
// Before reporting success the waiter re-reads its own key in the same
// transaction that counts the keys ahead, and then renews its lease: a waiter
// whose lease expired while it waited never reports success (etcd issue 19597).
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
		rctx, cancel := c.request(ctx)
		resp, err := c.etcd.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision)).
			Then(
				clientv3.OpGet(claimPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
					clientv3.WithMaxCreateRev(h.Revision-1),
					clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
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
			return c.markAcquired(ctx, h)
		}
		state := QueueState{Ahead: len(older), Holders: front, Limit: opts.Limit}
		if opts.Progress != nil && !sameQueue(last, state) {
			opts.Progress(state)
		}
		last = state
		c.watchAhead(ctx, h, older, resp.Header.Revision, opts.Limit)
	}
}

// lostInQueue says why a waiter cannot go on, or nil while it can: its lease
// is gone, or it could not be renewed in time to prove it alive.
func (h *Hold) lostInQueue() error {
	if h.keeper.isGone() {
		return fmt.Errorf("%w: lost the place in the queue: the lease expired or was revoked while waiting", ErrUnavailable)
	}
	if !boottime.Now().Before(h.keeper.expiry()) {
		return fmt.Errorf("%w: lost the place in the queue: the lease could not be renewed for %v while waiting", ErrUnavailable, h.TTL)
	}
	return nil
}

// markAcquired records the acquisition time in the holder's metadata. It is
// guarded by the key's create revision, keeps the key's lease, and is best
// effort: the hold is already verified and the metadata is informational.
func (c *Client) markAcquired(ctx context.Context, h *Hold) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	h.Holder.AcquiredAt = &now
	rctx, cancel := c.request(ctx)
	defer cancel()
	_, _ = c.etcd.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision)).
		Then(clientv3.OpPut(h.Key, h.Holder.encode(), clientv3.WithIgnoreLease())).
		Commit()
	return nil
}

// watchAhead returns when the queue ahead of h may have changed: a key it
// depends on was deleted, its own key was deleted, the watch broke, the lease
// was renewed late enough to need a check, or ctx ended. The caller re-reads
// the queue in every case, so returning early is always safe.
func (c *Client) watchAhead(ctx context.Context, h *Hold, older []*mvccpb.KeyValue, rev int64, limit int) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := clientv3.WithRev(rev + 1)
	own := c.etcd.Watch(wctx, h.Key, from, clientv3.WithFilterPut())
	var ahead clientv3.WatchChan
	pending := map[string]bool{}
	if limit == 1 {
		ahead = c.etcd.Watch(wctx, string(older[len(older)-1].Key), from, clientv3.WithFilterPut())
	} else {
		for _, kv := range older {
			pending[string(kv.Key)] = true
		}
		ahead = c.etcd.Watch(wctx, c.keys.ClaimPrefix(h.Name), clientv3.WithPrefix(), from, clientv3.WithFilterPut())
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
		case wr, ok := <-own:
			if ok && wr.Err() == nil && len(wr.Events) == 0 {
				timer.Stop()
				continue
			}
		case wr, ok := <-ahead:
			if ok && wr.Err() == nil && limit > 1 && !deletedEnough(wr.Events, pending, h.Key, limit) {
				timer.Stop()
				continue
			}
			if ok && wr.Err() == nil && limit == 1 && len(wr.Events) == 0 {
				timer.Stop()
				continue
			}
		}
		timer.Stop()
		return
	}
}

// deletedEnough removes deleted keys from pending and reports whether a
// semaphore waiter may now be eligible (fewer than limit keys ahead) or its
// own key went away.
func deletedEnough(events []*clientv3.Event, pending map[string]bool, own string, limit int) bool {
	for _, ev := range events {
		if ev.Type != clientv3.EventTypeDelete {
			continue
		}
		k := string(ev.Kv.Key)
		if k == own {
			return true
		}
		delete(pending, k)
	}
	return len(pending) < limit
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

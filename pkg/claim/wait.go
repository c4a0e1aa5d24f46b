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
// next waiter alone. A semaphore waiter must notice any of the keys ahead
// leaving, so it watches the claim's range for deletions and counts them
// locally; the events fan out but no waiter sends a request until it may be
// eligible.
//
// A handoff costs the waiter one request, a read of its own key, when its
// watch proves it eligible (see watchAhead): the keys older than its own form
// a set that can only shrink, so once the waiter has seen every one of them
// deleted it is first, as of the revision of that event. The read proves its
// key still there now (the event may have come late, and the key may have
// been removed meanwhile); its lease is proven alive by the keeper's last
// acknowledged renewal (see keeper.expiry), which must leave more than
// MinLifeAfterWait. When a mutex waiter's key ahead goes without having
// recorded its acquisition (a short hold, a contender ahead that gave up, a
// foreign contender), the read is of its own key and the newest key older
// than it, in one transaction (confirmNoneAhead). When the watch proves
// nothing (it broke, the lease's proof is old), the waiter re-reads its own
// key and the keys ahead in one transaction, and renews first if its lease
// is not proven alive for more than MinLifeAfterWait, so that a waiter
// whose lease expired while it waited never reports success (etcd issue
// 19597). The package doc
// ("Waiting and handoff") names the invariants this rests on.
//
// A semaphore waiter reads the slot keys with the request that proves its
// turn (the own-key read becomes a transaction that also reads them, the
// re-read gains one range): it returns them for takeSlot, nil for a mutex.
//
// A mutex waiter starts from what its create read (view; nil for a
// semaphore, or when the create's reply did not hold it): the key just
// ahead and how many keys are ahead, at the create's revision, so that it
// watches at once, with no read of its own.
func (c *Client) wait(ctx context.Context, h *Hold, opts AcquireOptions, view *queueView) (*slotView, error) {
	op := "acquire " + opts.Name
	kctx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	go h.keeper.run(kctx)

	claimPrefix := c.keys.ClaimPrefix(opts.Name)
	var last QueueState
	retry := min(max(h.TTL/10, 100*time.Millisecond), time.Second)
	for ; ; view = nil {
		if ctx.Err() != nil {
			return nil, c.waitError(ctx, op, ctx.Err(), true)
		}
		// Invariant "expiry from send times": past its lease's proven
		// expiry the waiter has lost its place, whatever it would read.
		if err := h.lostInQueue(); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if view != nil {
			if verdict, slots, err := c.watchTurn(ctx, h, opts, view, &last); verdict == first || err != nil {
				return slots, err
			}
			continue
		}
		// A semaphore waiter needs the values of the keys ahead (their
		// limits) to check, when its watch proves it eligible, that the
		// holders it joins use its limit; a mutex waiter needs only keys.
		// Invariant "ahead only shrinks": the keys older than its own, read
		// in the same transaction as the check of its own key, at one
		// revision.
		olderOpts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(h.Revision - 1),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)}
		if opts.Limit == 1 {
			olderOpts = append(olderOpts, clientv3.WithKeysOnly())
		}
		reads := []clientv3.Op{
			clientv3.OpGet(claimPrefix, olderOpts...),
			clientv3.OpGet(claimPrefix, clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend),
				clientv3.WithLimit(int64(opts.Limit)))}
		if opts.Limit > 1 {
			reads = append(reads, c.readSlots(opts.Name))
		}
		rctx, cancel := c.request(ctx)
		// Invariant "own key read now": the reads happen only if the
		// waiter's key is still there, with its create revision and lease.
		resp, err := c.etcd.Txn(rctx).
			If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision),
				clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.LeaseID())).
			Then(reads...).
			Commit()
		cancel()
		if err != nil {
			if ctx.Err() != nil || !isUnavailable(err) {
				return nil, c.waitError(ctx, op, err, true)
			}
			sleep(ctx, retry)
			continue
		}
		if !resp.Succeeded {
			h.keeper.markGone()
			return nil, fmt.Errorf("%s: %w", op, h.lostInQueue())
		}
		older := resp.Responses[0].GetResponseRange().Kvs
		front := c.entries(resp.Responses[1].GetResponseRange().Kvs)
		// Invariant "one limit per claim".
		if err := checkLimit(opts, front, h.Revision); err != nil {
			return nil, err
		}
		if len(older) < opts.Limit {
			// Invariant "life after wait": the lease's proof may be old
			// (the watch gave up on it, the keeper could not renew), and
			// then the waiter renews before it holds, and holds with a
			// proof from now. A proof that still leaves more than
			// MinLifeAfterWait is enough as it is, exactly as in
			// confirmTurn: it is checked after the read, and a lease
			// proven alive now was alive at the read (a lease never comes
			// back). That keeps this path at one round trip, like
			// confirmTurn's read.
			if !h.wellProven() {
				if err := h.keeper.renewOnce(ctx); err != nil {
					if h.keeper.isGone() {
						return nil, fmt.Errorf("%s: %w", op, h.lostInQueue())
					}
					if ctx.Err() != nil || !isUnavailable(err) {
						return nil, c.waitError(ctx, op, err, true)
					}
					sleep(ctx, retry)
					continue
				}
			}
			if ctx.Err() != nil {
				return nil, c.waitError(ctx, op, ctx.Err(), true)
			}
			h.waited() // Invariant "acquired_at means first": proven first just now.
			var slots *slotView
			if opts.Limit > 1 {
				slots = c.slotView(opts.Name, resp.Responses[2].GetResponseRange().Kvs, resp.Header.Revision)
			}
			return slots, nil
		}
		view = &queueView{rev: resp.Header.Revision, older: older, ahead: len(older), front: front}
		if verdict, slots, err := c.watchTurn(ctx, h, opts, view, &last); verdict == first || err != nil {
			return slots, err
		}
	}
}

// queueView is what a waiter read of the queue at one revision, in a
// request that found its own key there (invariant "own key read now"): the
// keys older than its own (invariant "ahead only shrinks"), or, read by a
// mutex contender's create, the newest of them alone, and how many there
// are (ahead); and the first Limit keys (front).
type queueView struct {
	rev   int64
	older []*mvccpb.KeyValue
	ahead int
	front []Entry
}

// watchTurn reports the queue's state (Progress), watches the keys ahead
// from view's revision on, and confirms the turn when the watch proves it:
// first, with the slots for a semaphore, when h holds; reread when the
// wait must read the queue again; or an error that ends the wait.
func (c *Client) watchTurn(ctx context.Context, h *Hold, opts AcquireOptions, view *queueView, last *QueueState) (verdict, *slotView, error) {
	state := QueueState{Ahead: view.ahead, Holders: view.front, Limit: opts.Limit}
	if opts.Progress != nil && !sameQueue(*last, state) {
		opts.Progress(state)
	}
	*last = state
	switch watched, joined := c.watchAhead(ctx, h, view, opts.Limit); watched {
	case first:
		return c.confirmTurn(ctx, h, joined, opts)
	case nextGone:
		return c.confirmNoneAhead(ctx, h, opts)
	}
	return reread, nil, nil
}

// MinLifeAfterWait is the proven lease life a waiter must have left to take
// its turn: more than half the TTL. A waiter whose watch proves its turn
// holds only while Hold.Expiry is more than MinLifeAfterWait(TTL) away, both
// before and after the read that confirms it (confirmTurn); otherwise it
// re-reads the queue, and holds if the lease is still proven that long once
// the re-read is answered, or else renews first and holds with its lease
// proven from that renewal's send time. So a hold that Acquire returns after
// waiting is proven alive for more than MinLifeAfterWait(TTL), short of a
// request that took longer than that. It is what a supervisor may rely on:
// runner caps --margin at it, so the deadline (Expiry - margin) of a hold
// handed over by a release is still ahead when its command starts, and a
// correct handoff is never thrown away at the start.
func MinLifeAfterWait(ttl time.Duration) time.Duration { return ttl / 2 }

// confirmTurn finishes a wait that the watch proved eligible at the revision
// of an event, which may have reached h late: a read of its own key proves
// it still queued now (nothing older can have appeared since), and its lease
// must be proven alive for more than MinLifeAfterWait, before and after
// that read, which the key's presence alone does not prove (the key outlives
// an expired lease until etcd revokes it). A semaphore waiter also checks
// the limits of the holders it joins (joined), and reads the slot keys with
// its own key (one transaction, still one request) for takeSlot. It reports
// first when h holds, reread when the wait must read the queue again, and an
// error when the wait must end; never keepWatching.
func (c *Client) confirmTurn(ctx context.Context, h *Hold, joined []Entry, opts AcquireOptions) (verdict, *slotView, error) {
	op := "acquire " + opts.Name
	// Invariant "life after wait": checked before the read and again after
	// it, since the key's presence proves nothing about the lease
	// (invariant "expiry from send times").
	if !h.wellProven() {
		return reread, nil, nil
	}
	// Invariant "own key read now": the event may be late; the read is not.
	switch intact, slots, err := c.ownKeyIntact(ctx, h, opts); {
	case err != nil:
		return reread, nil, nil // the re-read retries, or reports why it cannot
	case !intact:
		h.keeper.markGone()
		return reread, nil, fmt.Errorf("%s: %w", op, h.lostInQueue())
	case !h.wellProven():
		return reread, nil, nil
	default:
		// Invariant "one limit per claim": the holders the watch says it
		// joins.
		if err := checkLimit(opts, joined, h.Revision); err != nil {
			return reread, nil, err
		}
		if ctx.Err() != nil {
			return reread, nil, c.waitError(ctx, op, ctx.Err(), true)
		}
		h.waited() // Invariant "acquired_at means first": proven first just now.
		return first, slots, nil
	}
}

// confirmNoneAhead finishes a mutex wait whose watched key went while other
// keys may have been ahead of it (nextGone): one transaction reads, if the
// waiter's key is still there with its create revision and lease
// (invariant "own key read now"), the newest key older than it, keys only.
// None means the waiter is first at that read (invariant "ahead only
// shrinks"), and it holds if its lease is proven alive for more than
// MinLifeAfterWait once the read is answered (invariant "life after
// wait"). Otherwise the wait reads the queue again, which finds the key to
// watch next, or renews first. It is the wait's re-read with less in it:
// no values and no front of the queue, which a waiter behind a short hold
// (one that never recorded its acquisition) reads on every handoff.
func (c *Client) confirmNoneAhead(ctx context.Context, h *Hold, opts AcquireOptions) (verdict, *slotView, error) {
	op := "acquire " + opts.Name
	if !h.wellProven() {
		return reread, nil, nil
	}
	// Invariant "expiry from send times": an answer after the lease's
	// proven expiry proves nothing.
	rctx, cancel := context.WithTimeout(ctx, min(c.timeout, max(boottime.Until(h.keeper.expiry()), 0)))
	defer cancel()
	resp, err := c.etcd.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", h.Revision),
			clientv3.Compare(clientv3.LeaseValue(h.Key), "=", h.LeaseID())).
		Then(clientv3.OpGet(c.keys.ClaimPrefix(opts.Name), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithMaxCreateRev(h.Revision-1),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(1))).
		Commit()
	switch {
	case err != nil:
		return reread, nil, nil // the re-read retries, or reports why it cannot
	case !resp.Succeeded:
		h.keeper.markGone()
		return reread, nil, fmt.Errorf("%s: %w", op, h.lostInQueue())
	case len(resp.Responses[0].GetResponseRange().Kvs) > 0, !h.wellProven():
		return reread, nil, nil
	case ctx.Err() != nil:
		return reread, nil, c.waitError(ctx, op, ctx.Err(), true)
	}
	h.waited() // Invariant "acquired_at means first": proven first just now.
	return first, nil, nil
}

// ownKeyIntact reads h's key: it is intact if it still has h's create
// revision and lease. A semaphore waiter's read is a transaction that also
// reads the slot keys, which it returns.
func (c *Client) ownKeyIntact(ctx context.Context, h *Hold, opts AcquireOptions) (bool, *slotView, error) {
	// Invariant "expiry from send times": an answer after the lease's
	// proven expiry proves nothing.
	rctx, cancel := context.WithTimeout(ctx, min(c.timeout, max(boottime.Until(h.keeper.expiry()), 0)))
	defer cancel()
	if opts.Limit == 1 {
		resp, err := c.etcd.Get(rctx, h.Key)
		if err != nil {
			return false, nil, err
		}
		return isOwnKey(h, resp.Kvs), nil, nil
	}
	resp, err := c.etcd.Txn(rctx).Then(clientv3.OpGet(h.Key), c.readSlots(opts.Name)).Commit()
	if err != nil {
		return false, nil, err
	}
	slots := c.slotView(opts.Name, resp.Responses[1].GetResponseRange().Kvs, resp.Header.Revision)
	return isOwnKey(h, resp.Responses[0].GetResponseRange().Kvs), slots, nil
}

// isOwnKey reports whether a read of h's key found it with h's create
// revision and lease (invariant "own key read now").
func isOwnKey(h *Hold, kvs []*mvccpb.KeyValue) bool {
	return len(kvs) == 1 && kvs[0].CreateRevision == h.Revision && kvs[0].Lease == h.Lease
}

// wellProven reports whether a waiter's lease is proven alive for more than
// MinLifeAfterWait from now (invariant "life after wait"), enough to take
// its turn without renewing first.
func (h *Hold) wellProven() bool {
	return h.lostInQueue() == nil && boottime.Until(h.keeper.expiry()) > MinLifeAfterWait(h.TTL)
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
// depends on was deleted, the watch broke, the lease's proof ran out (no
// renewal acknowledged for a TTL), or ctx ended. It returns first when the
// events alone prove h eligible (see the observe methods), with the holders
// it would join; nextGone when a mutex waiter's key ahead went and a read
// must tell whether any other is left; otherwise reread, and the caller
// reads the queue again, so returning early is always safe. It never
// returns keepWatching.
//
// A mutex waiter watches the key just ahead alone, so a release wakes one
// waiter and sends it one event. A removal of its own key while it waits is
// noticed by the keeper if its lease goes (the next renewal fails, within
// TTL/10), and otherwise (the key deleted by hand, the lease alive) only by
// confirmTurn's read when the key ahead goes: such a waiter never holds, but
// keeps its lease until then. Watching its own key too would cost every
// waiter two more watch messages (about a quarter more etcd requests per
// handoff under contention, measured) for the sake of a key deleted behind
// claimctl's back. A semaphore waiter watches the claim's range for
// deletions, its own key included.
func (c *Client) watchAhead(ctx context.Context, h *Hold, view *queueView, limit int) (verdict, []Entry) {
	// A watch can go silent without failing: a stream left stuck on a
	// connection that a partition broke mid-frame, while renewals find
	// other endpoints. Nothing would then wake the waiter (TestNemesis found
	// one stuck for minutes), so each watch lives one TTL at most, and the
	// waiter then reads the queue again whatever its watch said. The bound
	// covers a watch whose creation etcd never acknowledges as well, for
	// clientv3's Watch waits for that. It costs a waiter a read per TTL.
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), max(h.TTL, time.Second))
	defer cancel()
	// Invariant "ahead only shrinks": from the revision after the read, so
	// that no deletion is missed, however late the watch is set up.
	from := clientv3.WithRev(view.rev + 1)
	var watched ahead
	var events clientv3.WatchChan
	if limit == 1 {
		m := newMutexAhead(view)
		watched = m
		events = c.etcd.Watch(wctx, string(m.next.Key), from)
	} else {
		watched = newSemaphoreAhead(h.Key, view.older, limit)
		events = c.etcd.Watch(wctx, c.keys.ClaimPrefix(h.Name), clientv3.WithPrefix(), from, clientv3.WithFilterPut())
	}
	proofEnds := time.NewTimer(max(boottime.Until(h.keeper.expiry()), 0))
	defer proofEnds.Stop()
	for {
		select {
		case <-ctx.Done():
			return reread, nil
		case <-h.keeper.lost:
			return reread, nil
		case <-proofEnds.C:
			return reread, nil
		case <-h.keeper.renewed:
			proofEnds.Reset(max(boottime.Until(h.keeper.expiry()), 0))
		case wr, ok := <-events:
			if !ok || wr.Err() != nil {
				// Invariant "ahead only shrinks": the watch broke
				// (compacted, cancelled, no leader) or lived its TTL, so
				// the events that follow, if any, would not be all of them.
				return reread, nil
			}
			switch v := watched.observe(wr.Events); v {
			case first:
				return first, watched.holders(c)
			case reread, nextGone:
				return v, nil
			}
		}
	}
}

// verdict is what a waiter's watch events prove, as of their revision.
type verdict int

const (
	// keepWatching: nothing is proven yet; wait for more events.
	keepWatching verdict = iota
	// reread: the events show a change they cannot follow (the waiter's own
	// key gone, the watch broken), or a confirmation failed; read the queue
	// again.
	reread
	// first: the waiter's turn, among the first Limit keys (the first key,
	// for a mutex); confirmTurn then proves it still holds now.
	first
	// nextGone: a mutex waiter's key just ahead was deleted while other
	// keys may remain ahead of it (its holder had not recorded its
	// acquisition); confirmNoneAhead then reads whether any does.
	nextGone
)

// ahead is what a waiter knows of the keys older than its own. That set was
// read exactly at one revision, and it can only shrink: no key older than
// the waiter's can be created later.
type ahead interface {
	// observe applies one watch response, all of its events in order.
	observe(events []*clientv3.Event) verdict
	// holders are the keys still ahead once observe returned first: none
	// for a mutex waiter, fewer than Limit for a semaphore waiter.
	holders(c *Client) []Entry
}

// mutexAhead is a mutex waiter's view: it watches only the key just ahead
// (next). It knows next to be the last key ahead when it was the only one at
// the read, or once next's holder records its acquisition (a put with
// acquired_at, which a holder writes only after proving itself first:
// invariant "acquired_at means first").
type mutexAhead struct {
	next       *mvccpb.KeyValue
	nextIsLast bool
}

func newMutexAhead(view *queueView) *mutexAhead {
	return &mutexAhead{next: view.older[len(view.older)-1], nextIsLast: view.ahead == 1}
}

// observe returns first when next, known to be the last key ahead, is
// deleted; nextGone when next is deleted while others may remain ahead of
// it; keepWatching otherwise. Events for other keys (the watch is on next alone)
// prove nothing.
func (a *mutexAhead) observe(events []*clientv3.Event) verdict {
	for _, ev := range events {
		switch {
		case string(ev.Kv.Key) != string(a.next.Key):
		case ev.Type == clientv3.EventTypeDelete && a.nextIsLast:
			return first // Invariant "ahead only shrinks": the last key ahead is gone.
		case ev.Type == clientv3.EventTypeDelete:
			return nextGone
		case ev.Kv.CreateRevision == a.next.CreateRevision && recordsAcquisition(ev.Kv.Value):
			// Invariant "acquired_at means first": next was first when it
			// wrote this, so no key is ahead of it; a put with another
			// create revision is a younger key under next's name
			// (invariant "ahead only shrinks") and proves nothing.
			a.nextIsLast = true
		}
	}
	return keepWatching
}

func (a *mutexAhead) holders(*Client) []Entry { return nil }

// semaphoreAhead is a semaphore waiter's view: it tracks every key ahead
// not yet seen deleted (pending), and its own key.
type semaphoreAhead struct {
	own     string
	limit   int
	pending map[string]*mvccpb.KeyValue
}

func newSemaphoreAhead(own string, older []*mvccpb.KeyValue, limit int) *semaphoreAhead {
	a := &semaphoreAhead{own: own, limit: limit, pending: make(map[string]*mvccpb.KeyValue, len(older))}
	for _, kv := range older {
		a.pending[string(kv.Key)] = kv
	}
	return a
}

// observe returns reread when the waiter's own key is deleted, first when
// fewer than limit keys are left ahead, keepWatching otherwise. Puts (the
// watch filters them out) prove nothing.
func (a *semaphoreAhead) observe(events []*clientv3.Event) verdict {
	for _, ev := range events {
		if ev.Type != clientv3.EventTypeDelete {
			continue
		}
		key := string(ev.Kv.Key)
		if key == a.own {
			return reread
		}
		delete(a.pending, key) // Invariant "ahead only shrinks": it never comes back.
	}
	if len(a.pending) < a.limit {
		return first
	}
	return keepWatching
}

func (a *semaphoreAhead) holders(c *Client) []Entry {
	out := make([]Entry, 0, len(a.pending))
	for _, kv := range a.pending {
		out = append(out, c.entry(kv.Key, kv.CreateRevision, kv.Value))
	}
	return out
}

// recordsAcquisition reports whether a key's value is a mutex holder's
// claimctl metadata with acquired_at set, which only a holder that proved
// itself first writes.
func recordsAcquisition(value []byte) bool {
	h := decodeHolder(value)
	// Invariant "acquired_at means first": only in limit-1 metadata; a
	// semaphore holder's means among the first Limit.
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

package claim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/boottime"
)

// AcquireOptions says which claim to take and how.
type AcquireOptions struct {
	Name string
	// TTL is the lease TTL asked for; etcd may grant more (never less).
	TTL time.Duration
	// Limit is the number of holders allowed at once: 1 is a mutex.
	Limit int
	// Slots, if set, names the claim's slots in order (Limit must be their
	// number): the hold's SlotName is Slots[Slot]. All clients of a claim
	// must use the same names, like the same Limit.
	Slots []string
	// NonBlocking makes Acquire fail with ErrBusy instead of waiting.
	NonBlocking bool
	// Holder is the metadata stored with the key; QueuedAt, AcquiredAt,
	// TTLSeconds and Limit are filled in by Acquire.
	Holder Holder
	// Progress, if set, is called from Acquire's goroutine when waiting
	// starts and whenever the queue ahead changes.
	Progress func(QueueState)
}

// QueueState describes a waiting contender's view of the claim.
type QueueState struct {
	// Ahead is the number of contenders before this one (holders included).
	Ahead int
	// Holders are the current holders, oldest first.
	Holders []Entry
	// Limit is the claim's slot limit.
	Limit int
}

// Acquire takes claim opts.Name, waiting in FIFO order unless NonBlocking.
// Waiting ends when ctx ends (ErrWaitTimeout, wrapping the context's error).
//
// A Hold is returned only after the hold is verified: the contender's key,
// with the returned create revision, was among the first Limit keys at a
// revision etcd reported, and the lease is proven alive until Hold.Expiry,
// which after a wait leaves more than MinLifeAfterWait(TTL). On every
// failure after the lease was granted, the lease is revoked before
// returning, so neither a key nor a lease is left behind.
//
// The lease is not kept alive after Acquire returns; call Hold.Keep for that,
// or let a later process renew it with the token. A hold taken after waiting
// should be recorded with Hold.RecordAcquired.
func (c *Client) Acquire(ctx context.Context, opts AcquireOptions) (*Hold, error) {
	if err := ValidateName(opts.Name); err != nil {
		return nil, err
	}
	if err := ValidateTTL(opts.TTL); err != nil {
		return nil, err
	}
	if err := ValidateLimit(opts.Limit); err != nil {
		return nil, err
	}
	if opts.Slots != nil {
		if err := ValidateSlots(opts.Slots); err != nil {
			return nil, err
		}
		if len(opts.Slots) != opts.Limit {
			return nil, fmt.Errorf("%w: %d slot names for a limit of %d; the limit must be the number of slots", ErrInvalidSlots, len(opts.Slots), opts.Limit)
		}
	}
	op := "acquire " + opts.Name
	if opts.NonBlocking {
		if err := c.busyAlready(ctx, opts); err != nil {
			return nil, err
		}
	}

	// Invariant "expiry from send times": the grant's send time, not its
	// reply's, starts the lease's proof.
	sent := boottime.Now()
	rctx, cancel := c.request(ctx)
	grant, err := c.etcd.Grant(rctx, int64(opts.TTL/time.Second))
	cancel()
	if err != nil {
		return nil, c.waitError(ctx, op, err, false)
	}
	ttl := time.Duration(grant.TTL) * time.Second
	h := &Hold{
		c:         c,
		Name:      opts.Name,
		Lease:     int64(grant.ID),
		Key:       c.keys.Key(opts.Name, int64(grant.ID)),
		TTL:       ttl,
		Limit:     opts.Limit,
		ClusterID: grant.ClusterId,
		keeper:    newKeeper(c.etcd.Lease, grant.ID, ttl, c.timeout, sent),
	}
	h.Holder = opts.Holder
	// Invariant "acquired_at means first": whatever the caller passed (a
	// Holder copied from a status entry, say), the key is created with no
	// acquired_at and no forced_by. The waiter queued right behind this key
	// takes a put to it carrying acquired_at as proof that nothing else is
	// ahead, and then holds when the key goes, without reading the queue;
	// it cannot tell who wrote the value, and release --force re-puts a
	// holder's value as stored. So no value stored may claim an acquisition
	// that was not proven, or two contenders could hold a mutex at once. A
	// caller's forced_by would make this hold report, when its key goes, a
	// release --force that never happened.
	h.Holder.AcquiredAt, h.Holder.ForcedBy = nil, ""
	h.Holder.QueuedAt = time.Now().UTC().Truncate(time.Millisecond)
	h.Holder.TTLSeconds = grant.TTL
	h.Holder.Limit = opts.Limit
	h.Holder.Slots = opts.Slots

	if err := c.acquire(ctx, h, opts); err != nil {
		if rerr := c.revoke(grant.ID); rerr != nil {
			err = fmt.Errorf("%w (the lease could not be revoked either, so it expires within %v: %v)", err, ttl, rerr)
		}
		return nil, err
	}
	return h, nil
}

// waitError turns an error seen while acquiring into the right class. The
// caller's cancellation (a signal) ends the wait. The caller's deadline ends
// the wait only once the contender is queued: before that, etcd has not
// answered at all, so whether the claim is busy is unknown, and that is an
// etcd error, not "busy".
func (c *Client) waitError(ctx context.Context, op string, err error, queued bool) error {
	if ctx.Err() != nil && (queued || ctx.Err() == context.Canceled) {
		return fmt.Errorf("%s: %w: %w", op, ErrWaitTimeout, context.Cause(ctx))
	}
	return c.etcdError(op, err)
}

func (c *Client) acquire(ctx context.Context, h *Hold, opts AcquireOptions) error {
	op := "acquire " + opts.Name
	claimPrefix := c.keys.ClaimPrefix(opts.Name)
	heads := clientv3.OpGet(claimPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(opts.Limit)))

	// One transaction creates our key and reads the first Limit keys: if ours
	// is among them we hold the claim, at two round trips from start. A
	// semaphore's also reads the slot keys, to take a slot with one more.
	ops := []clientv3.Op{clientv3.OpPut(h.Key, h.Holder.encode(), clientv3.WithLease(clientv3.LeaseID(h.Lease))), heads}
	if opts.Limit > 1 {
		ops = append(ops, c.readSlots(opts.Name))
	}
	rctx, cancel := c.request(ctx)
	// Invariant "own key read now": the key is created by this transaction,
	// so its revision (h.Revision) is the create revision that names this
	// contender's key and no other.
	resp, err := c.etcd.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", 0)).
		Then(ops...).
		Commit()
	cancel()
	if err != nil {
		return c.waitError(ctx, op, err, false)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: key %s exists already under a lease granted just now", op, h.Key)
	}
	h.Revision = resp.Header.Revision
	front := c.entries(resp.Responses[1].GetResponseRange().Kvs)
	// Invariant "one limit per claim".
	if err := checkLimit(opts, front, h.Revision); err != nil {
		return err
	}
	if containsRevision(front, h.Revision) {
		var slots *slotView
		if opts.Limit > 1 {
			slots = c.slotView(opts.Name, resp.Responses[2].GetResponseRange().Kvs, resp.Header.Revision)
		}
		return c.takeSlot(ctx, h, opts, slots)
	}
	if opts.NonBlocking {
		return &BusyError{Name: opts.Name, Holders: front, Limit: opts.Limit}
	}
	slots, err := c.wait(ctx, h, opts)
	if err != nil {
		return err
	}
	return c.takeSlot(ctx, h, opts, slots)
}

// busyAlready is the non-blocking acquire's first step: one linearizable
// read of the claim's first Limit keys, before any lease is granted. If
// there are Limit of them, every slot is taken (the holders are by
// definition the Limit oldest keys), so the claim is busy at the revision
// the read reports: ErrBusy, with no etcd write at all. A cron line that
// fires on every host of a fleet at once, where all but one run skip, then
// costs the cluster one read per skipped host instead of a grant, a create
// and a revoke. Fewer keys mean the claim looks free; the full path (grant,
// create and read in one transaction) then decides, exactly as without
// this read, so the safety argument is unchanged: the read only ever
// answers busy, and only when the claim was busy.
func (c *Client) busyAlready(ctx context.Context, opts AcquireOptions) error {
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Get(rctx, c.keys.ClaimPrefix(opts.Name), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(opts.Limit)))
	cancel()
	if err != nil {
		return c.waitError(ctx, "acquire "+opts.Name, err, false)
	}
	front := c.entries(resp.Kvs)
	if err := checkLimit(opts, front, 0); err != nil {
		return err
	}
	if len(front) >= opts.Limit {
		return &BusyError{Name: opts.Name, Holders: front, Limit: opts.Limit}
	}
	return nil
}

func containsRevision(entries []Entry, rev int64) bool {
	for _, e := range entries {
		if e.CreateRevision == rev {
			return true
		}
	}
	return false
}

func (c *Client) entries(kvs []*mvccKV) []Entry {
	out := make([]Entry, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, c.entry(kv.Key, kv.CreateRevision, kv.Value))
	}
	return out
}

// checkLimit refuses to join a claim whose holders use another limit, or
// other slot names: mixing limits would admit more holders than some of them
// allow, and mixing names (or their order) would give two holders one name.
// Foreign contenders (etcdctl lock) are mutex users without slot names.
func checkLimit(opts AcquireOptions, front []Entry, own int64) error {
	for _, e := range front {
		if e.CreateRevision == own {
			continue
		}
		l, named := e.limit(), e.slots()
		switch {
		case len(opts.Slots) == 0 && len(named) == 0 && l != opts.Limit:
			return fmt.Errorf("%w: claim %s is held with --limit %d by %s, but this request uses --limit %d; all clients of a claim must use the same limit",
				ErrLimitMismatch, opts.Name, l, e.OwnerString(), opts.Limit)
		case e.Holder == nil && l == opts.Limit:
		case l != opts.Limit || !slices.Equal(named, opts.Slots):
			return fmt.Errorf("%w: claim %s is held with %s by %s, but this request uses %s; all clients of a claim must use the same --slots, in the same order",
				ErrSlotsMismatch, opts.Name, slotsFlag(l, named), e.OwnerString(), slotsFlag(opts.Limit, opts.Slots))
		}
	}
	return nil
}

// slotsFlag describes a contender's slots as the flag that gives them.
func slotsFlag(limit int, names []string) string {
	if len(names) == 0 {
		return fmt.Sprintf("--limit %d (numbered slots)", limit)
	}
	return "--slots " + strings.Join(names, ",")
}

// BusyError is returned by a non-blocking Acquire when the claim is held. It
// wraps ErrBusy and carries the holders for the message.
type BusyError struct {
	Name    string
	Holders []Entry
	Limit   int
}

func (e *BusyError) Error() string {
	msg := fmt.Sprintf("claim %s is busy", e.Name)
	if len(e.Holders) > 0 {
		h := e.Holders[0]
		msg += ": held by " + h.OwnerString()
		if h.Holder != nil && h.Holder.AcquiredAt != nil {
			msg += " since " + h.Holder.AcquiredAt.Local().Format(time.DateTime)
		} else if h.Holder != nil && !h.Holder.QueuedAt.IsZero() {
			msg += " since " + h.Holder.QueuedAt.Local().Format(time.DateTime)
		}
		if len(e.Holders) > 1 {
			msg += fmt.Sprintf(" and %d more", len(e.Holders)-1)
		}
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

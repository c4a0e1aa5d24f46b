package claim

import (
	"context"
	"fmt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

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
	if opts.NonBlocking {
		if err := c.busyAlready(ctx, opts); err != nil {
			return nil, err
		}
	}

	h, created, err := c.grantAndCreate(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := c.queued(ctx, h, opts, created); err != nil {
		return nil, c.revokeAfter(h.LeaseID(), h.TTL, err)
	}
	return h, nil
}

// newHold is the hold a contender is about to create: its lease (lease, of
// ttl asked for, sent at sent), its key and the metadata stored there.
func (c *Client) newHold(opts AcquireOptions, lease clientv3.LeaseID, ttl time.Duration, sent boottime.Instant) *Hold {
	h := &Hold{
		c:      c,
		Name:   opts.Name,
		Lease:  int64(lease),
		Key:    c.keys.Key(opts.Name, int64(lease)),
		TTL:    ttl,
		Limit:  opts.Limit,
		keeper: newKeeper(c.etcd.Lease, lease, ttl, c.timeout, sent),
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
	h.Holder.TTLSeconds = int64(ttl / time.Second)
	h.Holder.Limit = opts.Limit
	h.Holder.Slots = opts.Slots
	return h
}

// newLeaseID picks the ID of a contender's lease: random, positive and
// non-zero (0 asks etcd to choose). A variable, so that a test can force
// a collision.
var newLeaseID = func() clientv3.LeaseID {
	return clientv3.LeaseID(rand.Int64N(math.MaxInt64-1) + 1)
}

// grantAndCreate grants the contender's lease and creates its key in one
// round trip instead of two: the lease's ID is chosen here, so the create
// transaction, which attaches the key to that lease, need not wait for the
// grant's reply, and both requests are sent at once. etcd applies them in
// the order its leader proposes them, which is usually the order they were
// sent; when the create comes first, the lease does not exist yet, etcd
// refuses the whole transaction (lease not found), nothing is written, and
// the create is sent again once the grant is known to be applied: the two
// round trips of the sequential path, never more.
//
// If the ID is taken already (another lease has it: 1 in 2^63 per live
// lease), the grant fails and a create that went through attached the key
// to that other lease; the key is deleted (guarded by its create revision)
// and everything starts again with a new ID. Nothing was proven held
// meanwhile, so nothing acted on the key. On any other failure the lease is
// revoked, whether or not the grant was applied, so neither a key nor a
// lease is left behind.
func (c *Client) grantAndCreate(ctx context.Context, opts AcquireOptions) (*Hold, *clientv3.TxnResponse, error) {
	op := "acquire " + opts.Name
	for attempt := 0; ; attempt++ {
		// One request timeout covers connecting, the grant and the first
		// create, as it covered connecting and the grant alone before.
		rctx, cancel := c.request(ctx)
		defer cancel()
		c.awaitConnection(rctx)
		id := newLeaseID()
		// Invariant "expiry from send times": the grant's send time, not
		// its reply's, starts the lease's proof.
		sent := boottime.Now()
		h := c.newHold(opts, id, opts.TTL, sent)
		granted := make(chan grantResult, 1)
		sending := make(chan struct{})
		go func() {
			close(sending)
			resp, err := c.leases.LeaseGrant(rctx, &etcdserverpb.LeaseGrantRequest{TTL: int64(opts.TTL / time.Second), ID: int64(id)}, grpc.WaitForReady(true))
			granted <- grantResult{resp, toErr(rctx, err)}
		}()
		// Give the grant a head start (see grantHeadStart).
		<-sending
		time.Sleep(grantHeadStart)
		resp, err := c.create(rctx, h, opts)
		g := <-granted
		if g.err == nil && isLeaseNotFound(err) {
			// The create overtook the grant: send it again.
			cctx, cancel := c.request(ctx)
			resp, err = c.create(cctx, h, opts)
			cancel()
		}
		switch {
		case isLeaseExists(g.err) && attempt < 3:
			if err == nil && resp.Succeeded {
				if derr := c.deleteKey(ctx, h.Key, resp.Header.Revision); derr != nil {
					return nil, nil, c.waitError(ctx, op, derr, false)
				}
			}
			continue
		case g.err != nil && (err != nil || !resp.Succeeded):
			// No key was created; a grant whose reply was lost leaves a
			// bare lease that expires by itself, as a lost grant always did.
			return nil, nil, c.waitError(ctx, op, g.err, false)
		case g.err != nil || err != nil:
			// A key or a lease exists: revoke, whether or not the grant's
			// outcome is known.
			if g.err != nil {
				err = g.err
			}
			return nil, nil, c.revokeAfter(id, h.TTL, c.waitError(ctx, op, err, false))
		case !resp.Succeeded:
			return nil, nil, c.revokeAfter(id, h.TTL, fmt.Errorf("%s: key %s exists already under a lease granted just now", op, h.Key))
		}
		if granted := time.Duration(g.resp.TTL) * time.Second; granted != h.TTL {
			// etcd raised a TTL below its minimum: the hold lasts the
			// granted TTL (the stored ttl_seconds says what was asked).
			h.TTL, h.Holder.TTLSeconds = granted, g.resp.TTL
			h.keeper = newKeeper(c.etcd.Lease, id, granted, c.timeout, sent)
		}
		h.ClusterID = g.resp.Header.ClusterId
		h.Revision = resp.Header.Revision
		return h, resp, nil
	}
}

// grantHeadStart is how long the create waits after the grant was handed
// to gRPC. Sent at the same instant, the create reaches etcd's leader first
// most of the time (each request is its own HTTP/2 stream, handled by its
// own goroutine on both sides), and a create that overtakes the grant is
// refused and costs a wasted Raft entry and a round trip. Measured here: a
// head start of 20us left 12% of creates overtaking against one in-process
// member, 100us 0.3%; against a 3-member cluster of processes on two busy
// cores, 10% through one endpoint and 16% through three (the client sends
// each request to the next endpoint, and followers forward both to the
// leader). 100us is a small part of even a loopback round trip with fsync,
// and it is only a matter of speed: correctness does not depend on the
// order (see grantAndCreate).
const grantHeadStart = 100 * time.Microsecond

// awaitConnection waits until etcd's connection is ready, as the first
// request would anyway. Requests sent
// while it is still being made all wait for it and then leave in no
// particular order, which would send the create ahead of the grant nearly
// every time on a fresh connection (claimctl's first request is the grant).
//
// Only a connection being made is waited for: one that failed
// (TRANSIENT_FAILURE) is left to the requests, whose errors say why (a TLS
// handshake refused, say), and ctx bounds the wait.
func (c *Client) awaitConnection(ctx context.Context) {
	conn := c.etcd.ActiveConnection()
	if conn == nil {
		return
	}
	for {
		switch st := conn.GetState(); st {
		case connectivity.Idle:
			conn.Connect()
			fallthrough
		case connectivity.Connecting:
			if !conn.WaitForStateChange(ctx, st) {
				return
			}
		default:
			return
		}
	}
}

// revokeAfter revokes lease after a failed acquire, whether or not its
// grant was applied (its reply may be what got lost), and returns err,
// saying so if the lease could not be revoked and so lives on for its TTL.
func (c *Client) revokeAfter(lease clientv3.LeaseID, ttl time.Duration, err error) error {
	if rerr := c.revoke(lease); rerr != nil {
		return fmt.Errorf("%w (the lease could not be revoked either, so it expires within %v: %v)", err, ttl, rerr)
	}
	return err
}

type grantResult struct {
	resp *etcdserverpb.LeaseGrantResponse
	err  error
}

// toErr turns a gRPC status from the raw lease client into the errors
// clientv3's own calls return: rpctypes values, and the context's error
// when the context ended the call.
func toErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	err = rpctypes.Error(err)
	if _, ok := err.(rpctypes.EtcdError); ok {
		return err
	}
	if c := status.Code(err); (c == codes.DeadlineExceeded || c == codes.Canceled) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// deleteKey deletes key if it still has create revision rev.
func (c *Client) deleteKey(ctx context.Context, key string, rev int64) error {
	rctx, cancel := c.request(ctx)
	defer cancel()
	_, err := c.etcd.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
	return err
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

// create sends the transaction that creates the contender's key and reads
// the first Limit keys (and a semaphore's slot keys) at the same revision:
// if the key is among them the claim is held, at one round trip from start
// (see grantAndCreate). A mutex contender also reads the two newest keys
// and the number of keys: its own, just created, and the one just ahead of
// it, which it watches if it must wait (see queued). ctx bounds the request.
func (c *Client) create(ctx context.Context, h *Hold, opts AcquireOptions) (*clientv3.TxnResponse, error) {
	claimPrefix := c.keys.ClaimPrefix(opts.Name)
	heads := clientv3.OpGet(claimPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(int64(opts.Limit)))
	ops := []clientv3.Op{clientv3.OpPut(h.Key, h.Holder.encode(), clientv3.WithLease(h.LeaseID())), heads}
	if opts.Limit > 1 {
		ops = append(ops, c.readSlots(opts.Name))
	} else {
		ops = append(ops, clientv3.OpGet(claimPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(2)))
	}
	// Invariant "own key read now": the key is created by this transaction,
	// so its revision (h.Revision) is the create revision that names this
	// contender's key and no other.
	return c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(h.Key), "=", 0)).
		Then(ops...).
		Commit()
}

// queued decides, from what the create read, whether the contender holds
// the claim, is busy (-n) or waits in line.
func (c *Client) queued(ctx context.Context, h *Hold, opts AcquireOptions, resp *clientv3.TxnResponse) error {
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
	slots, err := c.wait(ctx, h, opts, c.createView(h, opts, resp, front))
	if err != nil {
		return err
	}
	return c.takeSlot(ctx, h, opts, slots)
}

// createView is what a mutex contender's create read of the keys ahead of
// its own, for wait to watch from at once: the newest two keys, its own
// (created by that transaction, so the newest) and the one just ahead, and
// how many keys there are. Invariant "ahead only shrinks": all at the
// create's revision, at which its own key was there by construction
// (invariant "own key read now"). The count is etcd's: a sorted range
// reads every key of the range and reports how many there are, whatever
// the limit, and More says that some were left out; a reply in which the
// two disagree is not trusted (the order is the server's sort, which every
// etcd release applies to the whole range before the limit). nil for a
// semaphore, or if the read is not what a create implies, and wait then
// reads the queue itself.
func (c *Client) createView(h *Hold, opts AcquireOptions, resp *clientv3.TxnResponse, front []Entry) *queueView {
	if opts.Limit != 1 || len(resp.Responses) < 3 {
		return nil
	}
	r := resp.Responses[2].GetResponseRange()
	if r == nil || len(r.Kvs) != 2 || r.Count < 2 || r.More != (r.Count > 2) ||
		r.Kvs[0].CreateRevision != h.Revision || r.Kvs[1].CreateRevision >= h.Revision {
		return nil
	}
	return &queueView{rev: resp.Header.Revision, older: r.Kvs[1:], ahead: int(r.Count) - 1, front: front}
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

func (c *Client) entries(kvs []*mvccpb.KeyValue) []Entry {
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

// Package claim is the claim protocol on etcd: names and keys, tokens, and
// acquire, renew, release and inspection of claims. It has no command-line
// code in it; cmd/ wires it to Cobra.
//
// # Keys
//
// A contender for claim NAME writes the key
//
//	<prefix><escaped NAME>/<lease ID in hex>
//
// attached to its own lease, with JSON holder metadata as the value. The
// holders are the Limit keys with the lowest create revisions; everyone else
// waits in create-revision order (FIFO). For Limit 1 this is the layout of
// etcd's concurrency.Mutex, so `etcdctl lock <prefix>NAME` and claimctl
// exclude each other.
//
// Names are escaped so that they contain no '/', which keeps one claim's key
// range from ever containing another's ("a" and "a/b" are unrelated claims).
//
// # Taking a claim
//
// Acquire grants the contender's lease and creates its key in one round
// trip: the lease ID is chosen by the client (random, positive), so the
// transaction that creates the key attached to that lease and reads the
// first Limit keys is sent together with the grant, with a head start of
// 100us for the grant (grantAndCreate). A create that reaches etcd before
// the grant is refused whole (its lease does not exist yet) and sent again;
// an ID already taken by another lease has the key deleted and a new ID
// picked. Neither path lets a contender act on a key it has not proven
// held, and a failure after the key may exist revokes the lease.
//
// A non-blocking acquire (-n) first reads the first Limit keys (busyAlready):
// if every slot is taken, the claim is busy at that revision and nothing is
// written at all, which is what a cron fleet's skipped runs cost. Otherwise
// the full path decides.
//
// # Waiting and handoff
//
// A contender whose key is not among the first Limit waits (Client.wait):
// it reads the keys older than its own (a mutex contender, only the one just
// ahead and how many there are, in its create), watches them go, and holds
// once fewer than Limit are left, so a handoff costs the waiter one
// request: a read of its own key when its watch proved the turn, or of its
// own key and the queue, in one transaction, when it did not (the hold
// ahead ended before recording its acquisition). The proof that it then
// holds rests on the invariants below. Each has a short name, and
// every line that enforces one cites it by name, in a comment that starts
// Invariant "name".
//
// "ahead only shrinks": the keys older than a waiter's own, read at one
// revision, can only go away. etcd revisions only grow, so no key created
// later is older, and a key created again under the same name is a new,
// younger key, with another create revision. The waiter reads them in one
// transaction with the check of its own key (for a mutex contender's first
// read, the create that made its key) and watches from the next revision,
// so it misses no deletion; a broken watch sends it back to read the queue.
//
// "acquired_at means first": the metadata of a mutex contender (limit 1)
// carries acquired_at only once that contender has been proven first. A
// mutex waiter watches the key just ahead alone; it knows that key to be
// the last one ahead when it was alone at the read, or when a put to it,
// with its create revision, carries limit-1 metadata with acquired_at, and
// then its deletion makes the waiter first. The waiter cannot tell who
// wrote a value, so every value stored must keep this true: the create put
// never carries a caller's acquired_at (nor forced_by, which tells a holder
// that release --force removed it); Hold.waited sets it only at the end of
// a proven wait; RecordAcquired writes it guarded by the key's create
// revision and lease; release --force re-puts a holder's value as stored,
// guarded by its create revision. A semaphore holder's acquired_at means
// among the first Limit, not first, and proves nothing to a mutex waiter.
//
// "own key read now": a watch event can reach the waiter late, and its key
// can be removed meanwhile (release --force, a revoked lease). Before it
// reports a hold, the waiter proves its key still there, with its create
// revision and lease, by a read sent after the event (or by the guard of
// the transaction that re-reads the queue). Nothing older can have appeared
// since ("ahead only shrinks"), so it is first at that read.
//
// "expiry from send times": a lease is proven alive until the send time of
// its last acknowledged renewal (or of its grant) plus the TTL, on the
// boot-time clock: etcd received the request later. Nothing else moves
// that expiry. A key's presence proves nothing about its lease (an expired
// lease's keys stay until etcd revokes it), and a read answered after the
// expiry proves nothing at all: a waiter past its expiry has lost its
// place, whatever it reads (etcd issue 19597).
//
// "life after wait": a waiter takes its turn only while its lease is proven
// alive for more than MinLifeAfterWait(TTL) when the read that proves its
// turn (of its own key, or of the queue with its key) has been answered,
// and before the read of its own key as well; otherwise it reads the queue
// again and renews first. runner
// caps --margin at the same value, so a hold that was handed over still has
// its deadline ahead when its command starts.
//
// "one limit per claim": a contender joins only holders that use its limit
// and slot names. A semaphore waiter counts deletions, which say how many
// keys are left ahead but not whose, so it checks the holders it joins:
// behind two limit-2 holders, a foreign etcdctl lock owns the lock once
// they go, and a limit-2 waiter must not join it.
//
// # Fencing
//
// The holder key's create revision is the fencing token: etcd revisions are
// cluster-wide and strictly increasing, so each successive holder of a claim
// has a larger one. A lease cannot stop a paused process from acting after
// its lease ended; a resource that rejects writes carrying a token lower than
// one it has seen can.
package claim

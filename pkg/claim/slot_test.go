package claim_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/claim"
)

func semOpts(name string, limit int) claim.AcquireOptions {
	o := opts(name)
	o.Limit = limit
	return o
}

// slotsOf returns the holders' slots as status reports them, by fencing
// token.
func slotsOf(t *testing.T, cl *claim.Client, name string) map[int64]int {
	t.Helper()
	st, err := cl.Status(ctxT(t, 5*time.Second), name)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int{}
	for _, h := range st.Holders {
		out[h.CreateRevision] = h.Slot
	}
	return out
}

// slotKeyLease returns the lease attached to a slot key, 0 if it is absent.
func (c *cluster) slotKeyLease(key string) int64 {
	c.t.Helper()
	resp, err := c.admin.Get(ctxT(c.t, 5*time.Second), key)
	if err != nil {
		c.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Lease
}

// TestSlotsAreUniqueAndLowestFree: semaphore holders get slots 0, 1, 2 in
// turn, each a key attached to the holder's lease; a released slot is the
// next one handed out, to a new holder and to a waiter alike; status and
// list report each holder's slot.
func TestSlotsAreUniqueAndLowestFree(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	ks := cl.Keyspace()
	o := semOpts("pool", 3)
	var holds []*claim.Hold
	for i := range 3 {
		h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
		if err != nil {
			t.Fatal(err)
		}
		if h.Slot != i || h.SlotName != "" {
			t.Fatalf("holder %d got slot %d (%q), want %d", i, h.Slot, h.SlotName, i)
		}
		if l := c.slotKeyLease(ks.SlotKey("pool", i)); l != h.Lease {
			t.Fatalf("slot key %d has lease %x, want the holder's %x", i, l, h.Lease)
		}
		holds = append(holds, h)
	}
	got := slotsOf(t, cl, "pool")
	for _, h := range holds {
		if got[h.Revision] != h.Slot {
			t.Fatalf("status slots %v, want %d for fencing token %d", got, h.Slot, h.Revision)
		}
	}
	list, err := cl.List(ctxT(t, 5*time.Second), "")
	if err != nil || len(list) != 1 || len(list[0].Holders) != 3 {
		t.Fatalf("List = %+v, %v; want one claim with 3 holders (slot keys are no claims)", list, err)
	}
	for _, e := range list[0].Holders {
		if e.Slot != got[e.CreateRevision] {
			t.Fatalf("list slot %d for fencing token %d, status says %d", e.Slot, e.CreateRevision, got[e.CreateRevision])
		}
	}

	// A freed slot goes to the next holder.
	if err := holds[1].Release(); err != nil {
		t.Fatal(err)
	}
	if l := c.slotKeyLease(ks.SlotKey("pool", 1)); l != 0 {
		t.Fatalf("slot key 1 outlives its holder's release (lease %x)", l)
	}
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil || h.Slot != 1 {
		t.Fatalf("acquire after slot 1 was freed: slot %v, %v; want 1", h, err)
	}
	holds[1] = h

	// And to a waiter, through the handoff.
	w := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	if err := holds[0].Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, w, "the semaphore waiter")
	if r.err != nil || r.hold.Slot != 0 {
		t.Fatalf("waiter: %+v, %v; want slot 0", r.hold, r.err)
	}
	got = slotsOf(t, cl, "pool")
	if len(got) != 3 || got[r.hold.Revision] != 0 || got[holds[1].Revision] != 1 || got[holds[2].Revision] != 2 {
		t.Fatalf("status slots %v after the handoff", got)
	}
}

// TestMutexSlotIsZeroWithoutAKey: a mutex holder's slot is 0 (or its one
// named slot) and it writes nothing but its holder key.
func TestMutexSlotIsZeroWithoutAKey(t *testing.T) {
	c := newCluster(t)
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("solo"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Slot != 0 || h.SlotName != "" {
		t.Fatalf("mutex slot %d %q, want 0", h.Slot, h.SlotName)
	}
	if k := c.keys(); len(k) != 1 || k[0] != h.Key {
		t.Fatalf("keys of a mutex hold: %v, want only %s", k, h.Key)
	}
	if got := slotsOf(t, c.claims(nil), "solo"); got[h.Revision] != 0 {
		t.Fatalf("status slots %v", got)
	}
	o := opts("named")
	o.Slots = []string{"only"}
	h, err = c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil || h.Slot != 0 || h.SlotName != "only" {
		t.Fatalf("single named slot: %+v, %v; want slot 0 named only", h, err)
	}
	if k := c.keys(); len(k) != 2 {
		t.Fatalf("keys: %v, want two holder keys and no slot key", k)
	}
}

// TestSlotIsStableAcrossTheHold: a kept hold keeps its slot key, with the
// same create revision, for as long as it lasts.
func TestSlotIsStableAcrossTheHold(t *testing.T) {
	c := newCluster(t)
	o := semOpts("stable", 2)
	o.TTL = 2 * time.Second
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	key := c.claims(nil).Keyspace().SlotKey("stable", h.Slot)
	before, err := c.admin.Get(ctxT(t, 5*time.Second), key)
	if err != nil || len(before.Kvs) != 1 {
		t.Fatalf("slot key: %v, %v", before, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.Keep(ctx)
	// Let two TTLs pass on purpose: the slot key must outlive the TTL.
	time.Sleep(2*h.TTL + 500*time.Millisecond)
	after, err := c.admin.Get(ctxT(t, 5*time.Second), key)
	if err != nil || len(after.Kvs) != 1 || after.Kvs[0].CreateRevision != before.Kvs[0].CreateRevision || after.Kvs[0].Lease != h.Lease {
		t.Fatalf("after 2 TTLs the slot key is %v (%v); want it unchanged", after.Kvs, err)
	}
	if got := slotsOf(t, c.claims(nil), "stable"); got[h.Revision] != h.Slot {
		t.Fatalf("status slots %v, want %d", got, h.Slot)
	}
}

// TestSlotFreesWithTheLease: a holder whose lease is revoked out of band
// (release --force does this) or expires (a crash) loses its slot key with
// it, and the slot is handed out again.
func TestSlotFreesWithTheLease(t *testing.T) {
	c := newCluster(t)
	o := semOpts("crash", 2)
	o.TTL = 2 * time.Second
	ks := c.claims(nil).Keyspace()
	revoked, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	expiring, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil || revoked.Slot != 0 || expiring.Slot != 1 {
		t.Fatalf("slots %d, %d (%v); want 0, 1", revoked.Slot, expiring.Slot, err)
	}
	if _, err := c.admin.Revoke(ctxT(t, 5*time.Second), revoked.LeaseID()); err != nil {
		t.Fatal(err)
	}
	if l := c.slotKeyLease(ks.SlotKey("crash", 0)); l != 0 {
		t.Fatal("slot key 0 outlives its revoked lease")
	}
	o.TTL = 10 * time.Second
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil || h.Slot != 0 {
		t.Fatalf("after the revoke: slot %+v, %v; want 0", h, err)
	}
	// The unkept hold's lease expires, as a crashed holder's does.
	w := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	r := recv(t, w, "the waiter behind an expiring holder")
	if r.err != nil || r.hold.Slot != 1 {
		t.Fatalf("after the expiry: %+v, %v; want slot 1", r.hold, r.err)
	}
	if l := c.slotKeyLease(ks.SlotKey("crash", 1)); l != r.hold.Lease {
		t.Fatalf("slot key 1 has lease %x, want the new holder's %x", l, r.hold.Lease)
	}
}

// raceSlots returns a claim client that, just before each slot
// transaction, lets the test take that very slot with another lease: the
// holder then loses the race for a slot that its read showed free.
func (c *cluster) raceSlots(steal func(slotKey string)) *claim.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if txn, ok := req.(*etcdserverpb.TxnRequest); ok && len(txn.Compare) > 0 && strings.Contains(string(txn.Compare[0].Key), "%slot/") {
					steal(string(txn.Compare[0].Key))
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			})}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	cl, err := claim.New(cli, claim.Options{Prefix: "test/", RequestTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// TestSlotCollisionTakesTheNextFreeSlot: a holder whose slot is taken
// between its read and its transaction never shares it: it takes the next
// free slot, from the read the failed transaction returned.
func TestSlotCollisionTakesTheNextFreeSlot(t *testing.T) {
	c := newCluster(t)
	other, err := c.admin.Grant(ctxT(t, 5*time.Second), 30)
	if err != nil {
		t.Fatal(err)
	}
	var tried []string
	var mu sync.Mutex
	cl := c.raceSlots(func(key string) {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, key)
		if len(tried) == 1 {
			if _, err := c.admin.Put(context.Background(), key, "someone else", clientv3.WithLease(other.ID)); err != nil {
				t.Error(err)
			}
		}
	})
	h, err := cl.Acquire(ctxT(t, 10*time.Second), semOpts("race", 3))
	if err != nil {
		t.Fatal(err)
	}
	ks := cl.Keyspace()
	want := []string{ks.SlotKey("race", 0), ks.SlotKey("race", 1)}
	if h.Slot != 1 || !slices.Equal(tried, want) {
		t.Fatalf("slot %d after trying %v; want slot 1 after trying %v", h.Slot, tried, want)
	}
	if l := c.slotKeyLease(want[0]); l != int64(other.ID) {
		t.Fatalf("slot key 0 has lease %x, want the other lease %x: it was overwritten", l, other.ID)
	}
}

// TestStaleSlotKeysAreWaitedFor: when every slot key is taken by a lease
// whose holder key is gone (the holder was released by token but its lease
// could not be revoked), a new holder waits for one to go, within its
// context; -n fails busy, and a wait that times out leaves nothing behind.
func TestStaleSlotKeysAreWaitedFor(t *testing.T) {
	c := newCluster(t)
	ks := c.claims(nil).Keyspace()
	stale, err := c.admin.Grant(ctxT(t, 5*time.Second), 30)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.admin.Put(ctxT(t, 5*time.Second), ks.SlotKey("stale", i), "gone", clientv3.WithLease(stale.ID)); err != nil {
			t.Fatal(err)
		}
	}
	o := semOpts("stale", 2)
	o.NonBlocking = true
	if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o); !errors.Is(err, claim.ErrBusy) || !strings.Contains(err.Error(), "no free slot") {
		t.Fatalf("-n with every slot stale: %v, want ErrBusy: no free slot", err)
	}
	o.NonBlocking = false
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := c.claims(nil).Acquire(short, o); !errors.Is(err, claim.ErrWaitTimeout) {
		t.Fatalf("a bounded wait for a stale slot: %v, want ErrWaitTimeout", err)
	}
	if k := c.keys(); len(k) != 2 {
		t.Fatalf("keys after the refusals: %v, want the two stale slot keys alone", k)
	}
	done := make(chan result, 1)
	go func() {
		h, err := c.claims(nil).Acquire(ctxT(t, 20*time.Second), o)
		done <- result{h, err}
	}()
	// Its key exists once its create transaction read the slots, all taken:
	// it waits for a slot key's deletion from that revision on.
	c.awaitContenders("stale", 1)
	select {
	case r := <-done:
		t.Fatalf("acquired (%+v, %v) while every slot key was taken", r.hold, r.err)
	default:
	}
	if _, err := c.admin.Revoke(ctxT(t, 5*time.Second), stale.ID); err != nil {
		t.Fatal(err)
	}
	r := recv(t, done, "the holder waiting for a slot")
	if r.err != nil || (r.hold.Slot != 0 && r.hold.Slot != 1) {
		t.Fatalf("after the stale lease went: %+v, %v", r.hold, r.err)
	}
	if l := c.slotKeyLease(ks.SlotKey("stale", r.hold.Slot)); l != r.hold.Lease {
		t.Fatalf("slot key %d has lease %x, want the holder's %x", r.hold.Slot, l, r.hold.Lease)
	}
}

// TestNamedSlots: --slots names the slots in order; a holder's SlotName is
// the name of its slot; clients with other names, the same names in
// another order, or numbered slots are refused and leave nothing behind.
func TestNamedSlots(t *testing.T) {
	c := newCluster(t)
	names := []string{"db-1", "db-2", "db-3"}
	o := semOpts("db", 3)
	o.Slots = names
	for i := range 2 {
		h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
		if err != nil || h.Slot != i || h.SlotName != names[i] {
			t.Fatalf("holder %d: %+v, %v; want slot %d named %s", i, h, err, i, names[i])
		}
	}
	st, err := c.claims(nil).Status(ctxT(t, 5*time.Second), "db")
	if err != nil || len(st.Holders) != 2 || st.Holders[1].SlotName != "db-2" || st.Holders[1].Slot != 1 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	keys := c.keys()
	for _, tc := range []struct {
		slots []string
		limit int
		want  string
	}{
		{[]string{"db-1", "db-2", "db-4"}, 3, "held with --slots db-1,db-2,db-3 by test, but this request uses --slots db-1,db-2,db-4"},
		{[]string{"db-2", "db-1", "db-3"}, 3, "but this request uses --slots db-2,db-1,db-3"},
		{nil, 3, "but this request uses --limit 3 (numbered slots)"},
		{[]string{"db-1", "db-2"}, 2, "but this request uses --slots db-1,db-2"},
	} {
		bad := semOpts("db", tc.limit)
		bad.Slots = tc.slots
		_, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), bad)
		if !errors.Is(err, claim.ErrSlotsMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("slots %v: err = %v; want ErrSlotsMismatch containing %q", tc.slots, err, tc.want)
		}
		if k := c.keys(); !slices.Equal(k, keys) {
			t.Fatalf("keys after a refused mismatch: %v, want %v", k, keys)
		}
	}
	// The holders of a numbered claim refuse named slots likewise.
	if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), semOpts("numbered", 2)); err != nil {
		t.Fatal(err)
	}
	bad := semOpts("numbered", 2)
	bad.Slots = []string{"a", "b"}
	if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), bad); !errors.Is(err, claim.ErrSlotsMismatch) {
		t.Fatalf("named slots on a numbered claim: %v, want ErrSlotsMismatch", err)
	}
	// Bad names and a limit that is not their number never reach etcd.
	for _, slots := range [][]string{{"a", "a"}, {"a", ""}, {"a b"}, {}} {
		bad := semOpts("bad", max(len(slots), 1))
		bad.Slots = slots
		if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), bad); !errors.Is(err, claim.ErrInvalidSlots) {
			t.Fatalf("slots %q: %v, want ErrInvalidSlots", slots, err)
		}
	}
	bad = semOpts("bad", 3)
	bad.Slots = []string{"a", "b"}
	if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), bad); !errors.Is(err, claim.ErrInvalidSlots) {
		t.Fatalf("2 slots with limit 3: %v, want ErrInvalidSlots", err)
	}
}

// TestConcurrentHoldersNeverShareASlot: many contenders on a limit-3
// semaphore, each holding briefly; at every moment the live holders' slots
// are distinct (checked from inside each hold against the others').
func TestConcurrentHoldersNeverShareASlot(t *testing.T) {
	c := newCluster(t)
	o := semOpts("busy", 3)
	var mu sync.Mutex
	inUse := map[int]int64{}
	var wg sync.WaitGroup
	for p := range 8 {
		wg.Go(func() {
			cl := c.claims(nil)
			for range 5 {
				h, err := cl.Acquire(ctxT(t, 30*time.Second), o)
				if err != nil {
					t.Errorf("contender %d: %v", p, err)
					return
				}
				mu.Lock()
				if other, ok := inUse[h.Slot]; ok || h.Slot < 0 || h.Slot > 2 {
					t.Errorf("slot %d given to fencing token %d while fencing token %d holds it", h.Slot, h.Revision, other)
				}
				inUse[h.Slot] = h.Revision
				mu.Unlock()
				time.Sleep(5 * time.Millisecond) // hold for a while, so holds overlap
				mu.Lock()
				delete(inUse, h.Slot)
				mu.Unlock()
				if err := h.Release(); err != nil {
					t.Errorf("release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if k := c.keys(); len(k) != 0 {
		t.Fatalf("keys left: %v", k)
	}
}

package claim_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// cluster is one embedded etcd member shared by a test's clients.
type cluster struct {
	t         *testing.T
	endpoints []string
	admin     *clientv3.Client
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	m := etcdtest.Start(t)
	c := &cluster{t: t, endpoints: m.Endpoints()}
	c.admin = c.etcd(nil)
	return c
}

// etcd returns a new etcd client; counter, if not nil, counts its unary
// requests (Grant, Txn, Range, ...) so tests can check who talked to etcd.
func (c *cluster) etcd(counter *atomic.Int64) *clientv3.Client {
	c.t.Helper()
	cfg := clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if counter != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				counter.Add(1)
				return invoker(ctx, method, req, reply, cc, opts...)
			})}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// claims returns a claim client with its own etcd connection.
func (c *cluster) claims(counter *atomic.Int64) *claim.Client {
	c.t.Helper()
	cl, err := claim.New(c.etcd(counter), claim.Options{Prefix: "test/", RequestTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

func opts(name string) claim.AcquireOptions {
	return claim.AcquireOptions{Name: name, TTL: 10 * time.Second, Limit: 1, Holder: claim.Holder{Owner: "test"}}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// keys returns every key under the test prefix.
func (c *cluster) keys() []string {
	c.t.Helper()
	resp, err := c.admin.Get(ctxT(c.t, 5*time.Second), "test/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, string(kv.Key))
	}
	return out
}

// awaitContenders returns once claim name has at least n contender keys
// (holders and waiters, claimctl's or foreign), watching for their creation
// rather than polling.
func (c *cluster) awaitContenders(name string, n int) {
	c.t.Helper()
	ks, err := claim.NewKeyspace("test/")
	if err != nil {
		c.t.Fatal(err)
	}
	ctx := ctxT(c.t, 10*time.Second)
	prefix := ks.ClaimPrefix(name)
	resp, err := c.admin.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	count := resp.Count
	if count >= int64(n) {
		return
	}
	for wr := range c.admin.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			c.t.Fatalf("watch %s: %v", prefix, err)
		}
		for _, ev := range wr.Events {
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				count--
			case ev.IsCreate():
				count++
			}
		}
		if count >= int64(n) {
			return
		}
	}
	c.t.Fatalf("claim %s has %d contenders after 10s; want %d", name, count, n)
}

// leaseAlive reports whether a lease still exists on the server.
func (c *cluster) leaseAlive(id int64) bool {
	c.t.Helper()
	resp, err := c.admin.Leases(ctxT(c.t, 5*time.Second))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range resp.Leases {
		if int64(l.ID) == id {
			return true
		}
	}
	return false
}

// waitQueued starts Acquire in a goroutine and returns once it is waiting
// in line, with a channel that delivers the result.
type result struct {
	hold *claim.Hold
	err  error
}

func acquireAsync(t *testing.T, ctx context.Context, c *claim.Client, o claim.AcquireOptions) <-chan result {
	t.Helper()
	queued := make(chan struct{})
	var once sync.Once
	o.Progress = func(claim.QueueState) { once.Do(func() { close(queued) }) }
	out := make(chan result, 1)
	go func() {
		h, err := c.Acquire(ctx, o)
		once.Do(func() { close(queued) })
		out <- result{h, err}
	}()
	select {
	case <-queued:
	case <-time.After(10 * time.Second):
		t.Fatalf("acquire %s did not start waiting within 10s", o.Name)
	}
	return out
}

func recv(t *testing.T, ch <-chan result, what string) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no result within 15s", what)
	}
	return result{}
}

func TestAcquireReleaseUncontended(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	h, err := cl.Acquire(ctxT(t, 10*time.Second), opts("deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if h.Revision <= 0 || h.Lease == 0 || h.TTL != 10*time.Second {
		t.Fatalf("hold = %+v; want positive revision, a lease and TTL 10s", h)
	}
	st, err := cl.Status(ctxT(t, 5*time.Second), "deploy")
	if err != nil || len(st.Holders) != 1 || st.Holders[0].CreateRevision != h.Revision || st.Holders[0].Holder.Owner != "test" {
		t.Fatalf("status = %+v, %v; want one holder with fencing token %d owned by test", st, err, h.Revision)
	}
	if r := st.Holders[0].Remaining; r <= 0 || r > 10*time.Second {
		t.Fatalf("remaining TTL %v, want in (0, 10s]", r)
	}
	if err := cl.Release(ctxT(t, 5*time.Second), h.Token()); err != nil {
		t.Fatal(err)
	}
	if k := c.keys(); len(k) != 0 {
		t.Fatalf("keys after release: %v", k)
	}
	if c.leaseAlive(h.Lease) {
		t.Fatal("lease still alive after release")
	}
}

func TestGrantedTTLIsReported(t *testing.T) {
	c := newCluster(t)
	o := opts("short")
	o.TTL = time.Second // below the test server's minimum TTL
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := c.admin.TimeToLive(ctxT(t, 5*time.Second), h.LeaseID())
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(ttl.GrantedTTL) * time.Second; got != h.TTL || h.TTL < time.Second {
		t.Fatalf("hold reports TTL %v, server granted %v", h.TTL, got)
	}
	t.Logf("asked for 1s, granted %v", h.TTL)
}

func TestFIFOOrderAndRisingFencingTokens(t *testing.T) {
	c := newCluster(t)
	first, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("q"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	var counters [n]atomic.Int64
	var waiting [n]<-chan result
	for i := range n {
		waiting[i] = acquireAsync(t, ctxT(t, 60*time.Second), c.claims(&counters[i]), opts("q"))
	}
	prev := first
	for i := range n {
		before := make([]int64, n)
		for j := range n {
			before[j] = counters[j].Load()
		}
		if err := prev.Release(); err != nil {
			t.Fatalf("release of holder %d: %v", i, err)
		}
		r := recv(t, waiting[i], fmt.Sprintf("waiter %d", i))
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		if r.hold.Revision <= prev.Revision {
			t.Fatalf("waiter %d got fencing token %d, not above the previous holder's %d", i, r.hold.Revision, prev.Revision)
		}
		// Each release wakes exactly one waiter: the others sent nothing.
		// The sleep is a quiet period, not an ordering: a waiter woken by
		// mistake would send a request within it.
		time.Sleep(200 * time.Millisecond)
		for j := i + 1; j < n; j++ {
			if d := counters[j].Load() - before[j]; d != 0 {
				t.Fatalf("release %d woke waiter %d (%d requests); only waiter %d should wake", i, j, d, i)
			}
		}
		prev = r.hold
	}
	if err := prev.Release(); err != nil {
		t.Fatal(err)
	}
	if k := c.keys(); len(k) != 0 {
		t.Fatalf("keys left: %v", k)
	}
}

func TestNamesDoNotNest(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	for _, name := range []string{"a", "a/b", "a/b/c", "a%2Fb"} {
		o := opts(name)
		o.NonBlocking = true
		if _, err := cl.Acquire(ctxT(t, 10*time.Second), o); err != nil {
			t.Fatalf("acquire %q while the others are held: %v", name, err)
		}
	}
	st, err := cl.Status(ctxT(t, 5*time.Second), "a")
	if err != nil || len(st.Holders) != 1 || len(st.Waiters) != 0 {
		t.Fatalf("status a = %+v, %v; want exactly its own holder", st, err)
	}
}

func TestNonBlockingBusyLeavesNothing(t *testing.T) {
	c := newCluster(t)
	held, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("busy"))
	if err != nil {
		t.Fatal(err)
	}
	o := opts("busy")
	o.NonBlocking = true
	_, err = c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	var be *claim.BusyError
	if !errors.Is(err, claim.ErrBusy) || !errors.As(err, &be) || len(be.Holders) != 1 || !strings.Contains(err.Error(), "held by test") {
		t.Fatalf("err = %v; want ErrBusy naming the holder", err)
	}
	if k := c.keys(); len(k) != 1 || k[0] != held.Key {
		t.Fatalf("keys = %v; want only the holder's %s", k, held.Key)
	}
	leases, _ := c.admin.Leases(ctxT(t, 5*time.Second))
	if len(leases.Leases) != 1 {
		t.Fatalf("%d leases exist; want only the holder's", len(leases.Leases))
	}
}

func TestWaiterThatGivesUpLeavesNothing(t *testing.T) {
	c := newCluster(t)
	held, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("w"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(t, ctx, c.claims(nil), opts("w"))
	if k := c.keys(); len(k) != 2 {
		t.Fatalf("keys while waiting = %v, want holder and waiter", k)
	}
	cancel()
	r := recv(t, ch, "cancelled waiter")
	if !errors.Is(r.err, claim.ErrWaitTimeout) {
		t.Fatalf("cancelled waiter: err = %v, want ErrWaitTimeout", r.err)
	}
	if k := c.keys(); len(k) != 1 || k[0] != held.Key {
		t.Fatalf("keys after the waiter gave up = %v; want only %s", k, held.Key)
	}
	leases, _ := c.admin.Leases(ctxT(t, 5*time.Second))
	if len(leases.Leases) != 1 {
		t.Fatalf("%d leases after the waiter gave up; want 1", len(leases.Leases))
	}
}

func TestWaiterWhoseLeaseIsGoneNeverSucceeds(t *testing.T) {
	c := newCluster(t)
	held, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("lapse"))
	if err != nil {
		t.Fatal(err)
	}
	ch := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), opts("lapse"))
	st, _ := c.claims(nil).Status(ctxT(t, 5*time.Second), "lapse")
	if len(st.Waiters) != 1 {
		t.Fatalf("status: %+v, want one waiter", st)
	}
	// The waiter's lease ends out of band (as if it expired), then the
	// holder releases: the waiter must not report success.
	if _, err := c.admin.Revoke(ctxT(t, 5*time.Second), clientv3.LeaseID(st.Waiters[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, ch, "waiter with a revoked lease")
	if r.err == nil {
		t.Fatalf("a waiter whose lease was revoked reported holding the claim (fencing token %d)", r.hold.Revision)
	}
	if !errors.Is(r.err, claim.ErrUnavailable) || !strings.Contains(r.err.Error(), "lease") {
		t.Fatalf("err = %v; want ErrUnavailable about the lost lease", r.err)
	}
}

func TestStaleTokenNeverTouchesNewHolder(t *testing.T) {
	c := newCluster(t)
	cl := c.claims(nil)
	old, err := cl.Acquire(ctxT(t, 10*time.Second), opts("stale"))
	if err != nil {
		t.Fatal(err)
	}
	oldTok := old.Token()
	if err := cl.Release(ctxT(t, 5*time.Second), oldTok); err != nil {
		t.Fatal(err)
	}
	cur, err := cl.Acquire(ctxT(t, 10*time.Second), opts("stale"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Release(ctxT(t, 5*time.Second), oldTok); !errors.Is(err, claim.ErrNotHeld) {
		t.Fatalf("replayed release: %v, want ErrNotHeld", err)
	}
	if _, err := cl.Renew(ctxT(t, 5*time.Second), oldTok); !errors.Is(err, claim.ErrNotHeld) {
		t.Fatalf("renew with a released token: %v, want ErrNotHeld", err)
	}
	// A forged token: the current holder's lease with another revision.
	forged := cur.Token()
	forged.Revision--
	if err := cl.Release(ctxT(t, 5*time.Second), forged); !errors.Is(err, claim.ErrNotHeld) {
		t.Fatalf("release with the right lease but wrong revision: %v, want ErrNotHeld", err)
	}
	// Another cluster's token.
	foreign := cur.Token()
	foreign.ClusterID++
	if err := cl.Release(ctxT(t, 5*time.Second), foreign); !errors.Is(err, claim.ErrNotHeld) || !strings.Contains(err.Error(), "cluster") {
		t.Fatalf("release with another cluster's token: %v, want ErrNotHeld naming the cluster", err)
	}
	st, err := cl.Status(ctxT(t, 5*time.Second), "stale")
	if err != nil || len(st.Holders) != 1 || st.Holders[0].CreateRevision != cur.Revision {
		t.Fatalf("the new holder did not survive stale tokens: %+v, %v", st, err)
	}
	res, err := cl.Renew(ctxT(t, 5*time.Second), cur.Token())
	if err != nil || res.TTL != cur.TTL {
		t.Fatalf("renew of the current token: %+v, %v", res, err)
	}
}

func TestConcurrentReleaseOfOneTokenSucceedsOnce(t *testing.T) {
	c := newCluster(t)
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("twice"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for range n {
		cl := c.claims(nil)
		go func() {
			start.Wait()
			errs <- cl.Release(context.Background(), h.Token())
		}()
	}
	start.Done()
	ok := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, claim.ErrNotHeld):
			t.Fatalf("concurrent release: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent releases of one token succeeded; want exactly 1", ok, n)
	}
}

func TestSemaphore(t *testing.T) {
	c := newCluster(t)
	o := opts("pool")
	o.Limit = 3
	o.NonBlocking = true
	var holds []*claim.Hold
	for i := range 3 {
		h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
		if err != nil {
			t.Fatalf("holder %d of 3: %v", i, err)
		}
		holds = append(holds, h)
	}
	if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o); !errors.Is(err, claim.ErrBusy) {
		t.Fatalf("4th holder of a limit-3 claim: %v, want ErrBusy", err)
	}
	o.NonBlocking = false
	w1 := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	w2 := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	// Releasing the middle holder frees a slot for the first waiter only.
	if err := holds[1].Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, w1, "first semaphore waiter")
	if r.err != nil {
		t.Fatal(r.err)
	}
	select {
	case r2 := <-w2:
		t.Fatalf("second waiter acquired with 3 holders in place: %+v", r2)
	case <-time.After(300 * time.Millisecond):
	}
	st, _ := c.claims(nil).Status(ctxT(t, 5*time.Second), "pool")
	if len(st.Holders) != 3 || len(st.Waiters) != 1 || st.Limit != 3 {
		t.Fatalf("status = %d holders, %d waiters, limit %d; want 3, 1, 3", len(st.Holders), len(st.Waiters), st.Limit)
	}
	if err := holds[0].Release(); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, w2, "second semaphore waiter"); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestLimitMismatchIsRefused(t *testing.T) {
	c := newCluster(t)
	held, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("mix"))
	if err != nil {
		t.Fatal(err)
	}
	o := opts("mix")
	o.Limit = 2
	_, err = c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if !errors.Is(err, claim.ErrLimitMismatch) || !strings.Contains(err.Error(), "--limit 1") {
		t.Fatalf("err = %v; want ErrLimitMismatch naming --limit 1", err)
	}
	if k := c.keys(); len(k) != 1 || k[0] != held.Key {
		t.Fatalf("keys after a refused mismatch = %v", k)
	}
}

func TestInteropWithConcurrencyMutex(t *testing.T) {
	c := newCluster(t)
	sess, err := concurrency.NewSession(c.etcd(nil), concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	mu := concurrency.NewMutex(sess, "test/shared")
	if err := mu.Lock(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	o := opts("shared")
	o.NonBlocking = true
	_, err = c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if !errors.Is(err, claim.ErrBusy) || !strings.Contains(err.Error(), "etcdctl lock") {
		t.Fatalf("acquire while a concurrency.Mutex holds the lock: %v, want ErrBusy", err)
	}
	ch := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), opts("shared"))
	if err := mu.Unlock(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	r := recv(t, ch, "claimctl waiting behind a Mutex")
	if r.err != nil {
		t.Fatal(r.err)
	}
	// And the other way round: the Mutex cannot take it from claimctl.
	if err := mu.TryLock(ctxT(t, 5*time.Second)); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("Mutex.TryLock while claimctl holds the claim: %v, want ErrLocked", err)
	}
}

func TestKeepRenewsAndForceReleaseIsReported(t *testing.T) {
	c := newCluster(t)
	o := opts("kept")
	o.TTL = 2 * time.Second
	h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.Keep(ctx)
	first := h.Expiry()
	// Let two TTLs pass on purpose: the hold must outlive its lease's TTL.
	time.Sleep(2*h.TTL + 500*time.Millisecond)
	if !first.Before(h.Expiry()) {
		t.Fatal("Expiry did not move forward while the hold was kept")
	}
	if k := c.keys(); len(k) != 1 {
		t.Fatalf("the kept hold's key is gone after 2 TTLs: %v", k)
	}
	removed, err := c.claims(nil).ForceRelease(ctxT(t, 5*time.Second), "kept", "admin@test")
	if err != nil || len(removed) != 1 || removed[0].CreateRevision != h.Revision {
		t.Fatalf("ForceRelease = %+v, %v", removed, err)
	}
	select {
	case <-h.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not notice the forced release within 5s")
	}
	if err := h.LostReason(); !errors.Is(err, claim.ErrNotHeld) || !strings.Contains(err.Error(), "admin@test") {
		t.Fatalf("LostReason = %v; want ErrNotHeld naming admin@test", err)
	}
}

func TestListGroupsClaims(t *testing.T) {
	c := newCluster(t)
	for _, n := range []string{"jobs/a", "jobs/b", "other"} {
		if _, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts(n)); err != nil {
			t.Fatal(err)
		}
	}
	acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), opts("jobs/a"))
	all, err := c.claims(nil).List(ctxT(t, 5*time.Second), "")
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %+v, %v; want 3 claims", all, err)
	}
	jobs, err := c.claims(nil).List(ctxT(t, 5*time.Second), "jobs/")
	if err != nil || len(jobs) != 2 || jobs[0].Name != "jobs/a" || jobs[0].Waiting != 1 || len(jobs[0].Holders) != 1 {
		t.Fatalf("List(jobs/) = %+v, %v; want jobs/a (1 holder, 1 waiting) and jobs/b", jobs, err)
	}
}

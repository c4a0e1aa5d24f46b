package claim_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestSemaphoreWaiterChecksTheHoldersItJoins: a semaphore waiter that its
// watch proves eligible still refuses to join holders that use another
// limit. Here a foreign concurrency.Mutex (etcdctl lock) queues behind two
// limit-2 holders and a limit-2 waiter behind it; when both holders leave,
// the mutex owns the lock, and the waiter must not hold alongside it.
func TestSemaphoreWaiterChecksTheHoldersItJoins(t *testing.T) {
	c := newCluster(t)
	o := opts("sem")
	o.Limit = 2
	var holders []*claim.Hold
	for range 2 {
		h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
		if err != nil {
			t.Fatal(err)
		}
		holders = append(holders, h)
	}
	sess, err := concurrency.NewSession(c.etcd(nil), concurrency.WithTTL(10))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	m := concurrency.NewMutex(sess, "test/sem") // the key layout of etcdctl lock test/sem
	locked := make(chan error, 1)
	go func() { locked <- m.Lock(ctxT(t, 30*time.Second)) }()
	c.awaitContenders("sem", 3) // the foreign mutex queued behind the holders
	waiter := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	for _, h := range holders {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-locked; err != nil {
		t.Fatalf("foreign mutex: %v", err)
	}
	r := recv(t, waiter, "the semaphore waiter")
	if r.err == nil {
		t.Fatalf("a limit-2 waiter holds (fencing token %d) alongside a foreign mutex holder", r.hold.Revision)
	}
	if !errors.Is(r.err, claim.ErrLimitMismatch) {
		t.Fatalf("err = %v; want ErrLimitMismatch", r.err)
	}
}

// TestWaiterWithALateWatchNeverHoldsARemovedKey: the watch event that makes
// a waiter first can reach it late. Here W waits behind A through a stalled
// link; A releases, W's lease is revoked out of band, and V (behind W) takes
// the claim. When the link recovers, W sees A's release, which alone would
// prove W first: W must find its key gone and fail, never report a hold.
func TestWaiterWithALateWatchNeverHoldsARemovedKey(t *testing.T) {
	m := etcdtest.Start(t)
	p := etcdtest.NewProxy(t, m.Endpoints()[0])
	client := func(endpoint string) *claim.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		cl, err := claim.New(cli, claim.Options{Prefix: "test/", RequestTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	admin := etcdtest.NewClient(t, m.Endpoints()...)
	direct := client(m.Endpoints()[0])
	o := opts("late")
	o.TTL = 20 * time.Second
	a, err := direct.Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	w := acquireAsync(t, ctxT(t, 60*time.Second), client(p.Endpoint()), o)
	v := acquireAsync(t, ctxT(t, 60*time.Second), client(m.Endpoints()[0]), o)
	st, err := direct.Status(ctxT(t, 5*time.Second), "late")
	if err != nil || len(st.Waiters) != 2 {
		t.Fatalf("status: %+v, %v; want two waiters", st, err)
	}
	// acquireAsync returned once W read the queue: W's watch starts at the
	// revision after that read, so it gets every later event, however late
	// the watch itself is set up.

	p.Pause()
	if err := a.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Revoke(ctxT(t, 5*time.Second), clientv3.LeaseID(st.Waiters[0].Lease)); err != nil {
		t.Fatal(err)
	}
	rv := recv(t, v, "V")
	if rv.err != nil {
		t.Fatalf("V: %v", rv.err)
	}
	p.Unpause()
	rw := recv(t, w, "W")
	if rw.err == nil {
		t.Fatalf("W reports a hold (fencing token %d) on a revoked lease while V holds (fencing token %d)", rw.hold.Revision, rv.hold.Revision)
	}
	if !errors.Is(rw.err, claim.ErrUnavailable) {
		t.Fatalf("W: err = %v; want ErrUnavailable (lost its place in the queue)", rw.err)
	}
}

// TestWaiterWhoseKeyIsDeletedNeverHolds: a mutex waiter whose key is
// deleted out of band (its lease still alive) never reports a hold when the
// holder ahead leaves; it says it lost its place, and the claim is free.
func TestWaiterWhoseKeyIsDeletedNeverHolds(t *testing.T) {
	c := newCluster(t)
	held, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), opts("deleted"))
	if err != nil {
		t.Fatal(err)
	}
	w := acquireAsync(t, ctxT(t, 60*time.Second), c.claims(nil), opts("deleted"))
	st, err := c.claims(nil).Status(ctxT(t, 5*time.Second), "deleted")
	if err != nil || len(st.Waiters) != 1 {
		t.Fatalf("status: %+v, %v; want one waiter", st, err)
	}
	// acquireAsync returned once the waiter read the queue, and its watch
	// starts at the revision after that read: it sees what follows.
	if _, err := c.admin.Delete(ctxT(t, 5*time.Second), st.Waiters[0].Key); err != nil {
		t.Fatal(err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, w, "the waiter whose key was deleted")
	if r.err == nil {
		t.Fatalf("the waiter whose key was deleted reports a hold (fencing token %d)", r.hold.Revision)
	}
	if !errors.Is(r.err, claim.ErrUnavailable) || !strings.Contains(r.err.Error(), "lost the place in the queue") {
		t.Fatalf("err = %v; want ErrUnavailable: lost the place in the queue", r.err)
	}
	if k := c.keys(); len(k) != 0 {
		t.Fatalf("keys left: %v", k)
	}
}

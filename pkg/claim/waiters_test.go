package claim_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/claim"
)

// handoffs queues n waiters behind a holder of claim name, each with its own
// etcd connection and request counter, then releases holder after holder.
// It checks that each release wakes exactly one waiter, the next in line
// (only the releasing client and that waiter send requests), and returns the
// number of etcd requests each handoff took, summed over all clients.
//
// The counters count unary requests (Grant, Txn, Range, Revoke, ...): those
// are what a woken herd would send. Watches and lease renewals ride on
// streams and are not counted; a renewal never makes a waiter send a request.
func handoffs(t *testing.T, c *cluster, name string, n int) []int64 {
	t.Helper()
	o := opts(name)
	o.TTL = 60 * time.Second // no renewal falls due while the test runs
	counters := make([]atomic.Int64, n+1)
	holder, err := c.claims(&counters[0]).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make([]<-chan result, n)
	for i := range n {
		waiting[i] = acquireAsync(t, ctxT(t, 120*time.Second), c.claims(&counters[i+1]), o)
	}
	snapshot := func() []int64 {
		s := make([]int64, len(counters))
		for i := range counters {
			s[i] = counters[i].Load()
		}
		return s
	}
	// settle waits until no client has sent a request for 30ms (at most
	// 2s), so that a waiter woken by mistake has had time to show itself.
	// Its sleeps are quiet periods, not an ordering: nothing signals that a
	// waiter was not woken.
	settle := func() []int64 {
		last, stable := snapshot(), 0
		for i := 0; i < 200 && stable < 3; i++ {
			time.Sleep(10 * time.Millisecond)
			now := snapshot()
			if fmt.Sprint(now) == fmt.Sprint(last) {
				stable++
			} else {
				stable, last = 0, now
			}
		}
		return last
	}

	per := make([]int64, n)
	prev, prevClient := holder, 0
	before := settle()
	for i := range n {
		if err := prev.Release(); err != nil {
			t.Fatalf("n=%d: release by holder %d: %v", n, prevClient, err)
		}
		r := recv(t, waiting[i], fmt.Sprintf("n=%d: waiter %d", n, i))
		if r.err != nil {
			t.Fatalf("n=%d: waiter %d: %v", n, i, r.err)
		}
		if r.hold.Revision <= prev.Revision {
			t.Fatalf("n=%d: waiter %d got fencing token %d, not above %d", n, i, r.hold.Revision, prev.Revision)
		}
		r.hold.RecordAcquired(ctxT(t, 5*time.Second)) // as run does once its command runs
		after := settle()
		for j := range counters {
			d := after[j] - before[j]
			per[i] += d
			if d != 0 && j != prevClient && j != i+1 {
				t.Fatalf("n=%d: release %d woke client %d (%d requests); only waiter %d (client %d) should wake", n, i, j, d, i, i+1)
			}
		}
		before, prev, prevClient = after, r.hold, i+1
	}
	if err := prev.Release(); err != nil {
		t.Fatal(err)
	}
	return per
}

// TestHandoffCostDoesNotGrowWithTheQueue: with 10 and with 100 waiters on
// one claim, every release wakes exactly one waiter, and a handoff costs the
// same number of etcd requests (summed over every client) however long the
// queue is: no herd, no per-waiter polling.
func TestHandoffCostDoesNotGrowWithTheQueue(t *testing.T) {
	c := newCluster(t)
	stats := func(per []int64) (lo, hi int64, mean float64) {
		lo, hi = per[0], per[0]
		var sum int64
		for _, p := range per {
			lo, hi, sum = min(lo, p), max(hi, p), sum+p
		}
		return lo, hi, float64(sum) / float64(len(per))
	}
	lo10, hi10, mean10 := stats(handoffs(t, c, "herd-10", 10))
	lo100, hi100, mean100 := stats(handoffs(t, c, "herd-100", 100))
	t.Logf("requests per handoff: 10 waiters: %d..%d (mean %.2f); 100 waiters: %d..%d (mean %.2f)",
		lo10, hi10, mean10, lo100, hi100, mean100)
	if hi100 > hi10+1 || lo100 < lo10-1 || mean100 > mean10+0.5 {
		t.Fatalf("a handoff costs %d..%d requests (mean %.2f) with 100 waiters but %d..%d (mean %.2f) with 10; want the same within 1",
			lo100, hi100, mean100, lo10, hi10, mean10)
	}
	if k := c.keys(); len(k) != 0 {
		t.Fatalf("keys left: %v", k)
	}
}

// TestWaiterBehindOneThatGaveUpKeepsWaiting: a waiter learns that it is
// first from its watch alone only when every key older than its own is gone.
// When the contender just ahead of it gives up while the claim is still
// held, its deletion proves nothing: the waiter must go on waiting (a mutex
// waiter then watches the holder; a semaphore waiter still counts the
// holders), and get the claim only when a holder leaves. The same holds when
// the one ahead had recorded an acquisition of a claim that it then left.
func TestWaiterBehindOneThatGaveUpKeepsWaiting(t *testing.T) {
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			c := newCluster(t)
			o := opts("gave-up")
			o.Limit = limit
			var holders []*claim.Hold
			for i := range limit {
				h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
				if err != nil {
					t.Fatalf("holder %d: %v", i, err)
				}
				holders = append(holders, h)
			}
			ctx, giveUp := context.WithCancel(context.Background())
			defer giveUp()
			ahead := acquireAsync(t, ctx, c.claims(nil), o)
			behind := acquireAsync(t, ctxT(t, 60*time.Second), c.claims(nil), o)

			giveUp()
			if r := recv(t, ahead, "the waiter that gave up"); !errors.Is(r.err, claim.ErrWaitTimeout) {
				t.Fatalf("the waiter that gave up: %v, want ErrWaitTimeout", r.err)
			}
			select {
			case r := <-behind:
				t.Fatalf("the waiter behind took the claim while %d holder(s) of %d still held it: %+v", limit, limit, r)
			case <-time.After(500 * time.Millisecond):
			}
			if err := holders[0].Release(); err != nil {
				t.Fatal(err)
			}
			r := recv(t, behind, "the waiter behind")
			if r.err != nil {
				t.Fatalf("the waiter behind, after a holder left: %v", r.err)
			}
			if r.hold.Revision <= holders[len(holders)-1].Revision {
				t.Fatalf("fencing token %d not above the holders' %d", r.hold.Revision, holders[len(holders)-1].Revision)
			}
		})
	}
}

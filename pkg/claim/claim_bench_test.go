package claim_test

import (
	"fmt"
	"testing"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// Benchmarks of the claim protocol against a real embedded member
// (etcdtest.Start: loopback, fsync off), timing one operation per iteration
// and reporting its etcd round trips (roundtrips/op; see roundtrip_test.go
// for what counts and for each operation's minimum) and the watch messages
// sent meanwhile (watchmsgs/op). Set-up outside the operation is not timed.
//
//	go test -run '^$' -bench . -benchtime 200x ./pkg/claim/
//
// The handoff benchmark re-queues a waiter before every iteration and waits
// for its watches to settle, so use a fixed -benchtime count there.

// rtReport reports the average requests per operation.
func rtReport(b *testing.B, total rtCount) {
	b.ReportMetric(float64(total.roundTrips())/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(total["Watch"])/float64(b.N), "watchmsgs/op")
}

// BenchmarkAcquireUncontended times Acquire of a free claim (minimum 2 round
// trips: LeaseGrant + Txn).
func BenchmarkAcquireUncontended(b *testing.B) {
	m := etcdtest.Start(b)
	c := rtNewClient(b, m)
	var total rtCount
	b.ResetTimer()
	for i := range b.N {
		h, n := rtAcquire(b, c, fmt.Sprintf("acq-%d", i))
		total = total.add(n)
		b.StopTimer()
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	rtReport(b, total)
}

// BenchmarkReleaseRun times the release `claimctl run` makes when its child
// is gone (minimum 1 round trip: LeaseRevoke).
func BenchmarkReleaseRun(b *testing.B) {
	m := etcdtest.Start(b)
	c := rtNewClient(b, m)
	var total rtCount
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h, _ := rtAcquire(b, c, fmt.Sprintf("rel-%d", i))
		h.Keep(rtCtx(b))
		c.n.settle(rtQuiet)
		b.StartTimer()
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
		total = total.add(c.n.take())
	}
	rtReport(b, total)
}

// BenchmarkRenewByToken times `claimctl renew TOKEN` (2 round trips: Range +
// LeaseKeepAlive).
func BenchmarkRenewByToken(b *testing.B) {
	m := etcdtest.Start(b)
	c := rtNewClient(b, m)
	h, _ := rtAcquire(b, c, "renew")
	tok := h.Token()
	var total rtCount
	b.ResetTimer()
	for range b.N {
		total = total.add(rtRenewToken(b, c, tok))
	}
	rtReport(b, total)
}

// BenchmarkReleaseByToken times `claimctl release TOKEN` (3 round trips:
// Range + Txn + LeaseRevoke).
func BenchmarkReleaseByToken(b *testing.B) {
	m := etcdtest.Start(b)
	c := rtNewClient(b, m)
	var total rtCount
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h, _ := rtAcquire(b, c, fmt.Sprintf("reltok-%d", i))
		b.StartTimer()
		total = total.add(rtReleaseToken(b, c, h.Token()))
	}
	rtReport(b, total)
}

// BenchmarkHandoff times a handoff from the holder's release to the queued
// waiter holding the claim (4 round trips today; the protocol's minimum is
// 3). Two clients take turns: each iteration's new holder is the next
// iteration's releaser, and the old holder queues again, untimed.
func BenchmarkHandoff(b *testing.B) {
	m := etcdtest.Start(b)
	a, w := rtNewClient(b, m), rtNewClient(b, m)
	h, _ := rtAcquire(b, a, "handoff")
	var total rtCount
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		next := rtQueue(b, w, "handoff")
		a.n.settle(rtQuiet)
		b.StartTimer()
		var n rtCount
		h, n = rtHandoff(b, a, w, h, next)
		total = total.add(n)
		a, w = w, a
	}
	b.StopTimer()
	if err := h.Release(); err != nil {
		b.Fatal(err)
	}
	rtReport(b, total)
}

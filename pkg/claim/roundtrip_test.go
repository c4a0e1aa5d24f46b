package claim_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// Round trips: what each claim operation costs in etcd requests.
//
// A round trip here is one request the client waits for: a unary call
// (LeaseGrant, Txn, Range, LeaseRevoke, ...) or a message on the
// LeaseKeepAlive stream (KeepAliveOnce sends one and waits for the reply).
// Watch stream messages (creates and cancels) are counted apart: nothing
// waits for them on an operation's path, and they are sent asynchronously.
//
// The minimum the protocol allows, and what the code does today:
//
//	uncontended acquire   LeaseGrant + Txn (create the key, read the head)     = 2 (minimum),
//	                      sent together: one round trip of latency (the
//	                      lease's ID is chosen by the client); when the Txn
//	                      overtakes the grant, etcd refuses it and it is
//	                      sent again                                           (+1 Txn)
//	queue behind a holder LeaseGrant + Txn (create, read the head, and the
//	                      key just ahead with the number of keys, which a
//	                      mutex waiter then watches without reading again)     = 2 (minimum)
//	run's release         LeaseRevoke (deletes the key with the lease)         = 1 (minimum)
//	release by token      Range (cluster and key check) + Txn (delete if the
//	                      key still has the token's revision and lease)
//	                      + LeaseRevoke                                        = 3
//	renew by token        Range (the key still has the token's revision and
//	                      lease) + LeaseKeepAlive                              = 2
//	handoff               holder: LeaseRevoke; waiter, woken by its watch:
//	                      Range (its own key, still there now), when the
//	                      watch proves it first, or Txn (its own key and
//	                      the queue) when it does not                          = 2 (minimum)
//	semaphore acquire     LeaseGrant + Txn (create, read the head and the
//	                      slot keys) + Txn (create the lowest free slot key)   = 3
//	semaphore handoff     holder: LeaseRevoke; waiter: Txn (its own key and
//	                      the slot keys) + Txn (create a free slot key)        = 3
//	-n on a busy claim    Range (the first Limit keys: all slots taken)        = 1, and no write
//	-n on a free claim    Range + LeaseGrant + Txn                             = 3
//
// The waiter's watch proves it first when every key older than its own is
// seen deleted: the next in line knows the holder is the only key ahead when
// it queued behind it, or when the holder recorded its acquisition
// (Hold.RecordAcquired, which run sends once the command has run for a
// second, off the handoff's path); a semaphore waiter counts the deletions
// of all the keys ahead. The event may reach the waiter late, so one read of
// its own key proves it still queued now; its lease is proven alive by its
// last acknowledged renewal. When the watch proves nothing (the hold ahead
// ended before recording), the waiter re-reads its own key and the queue
// (a Txn) instead, and renews only if its lease's proof has grown old. A semaphore holder takes its slot
// (see pkg/claim/slot.go) with one more request, whose read it piggybacks
// on the request before; a mutex's slot is 0 and costs nothing. Every
// operation is at its minimum; TestRoundTripBudget fails if a change adds a
// round trip to any of them.

// rtBudget is the most round trips each operation may take.
var rtBudget = map[string]int{
	"acquire (uncontended)":                       2,
	"release (run: revoke)":                       1,
	"release by token":                            3,
	"renew by token":                              2,
	"queue behind a holder":                       2,
	"handoff (next in line)":                      2,
	"handoff (behind a holder that waited)":       2,
	"handoff (behind a hold that left no record)": 2,
	"acquire (semaphore, uncontended)":            3,
	"handoff (semaphore)":                         3,
	"acquire -n (busy)":                           1,
	"acquire -n (free)":                           3,
}

// rtWrites are the requests that write to etcd (a Raft proposal each) on
// the acquire paths; reads are Range and read-only Txns (Status).
var rtWrites = []string{"LeaseGrant", "LeaseRevoke", "Put", "DeleteRange"}

// writes counts n's write requests; every Txn of an acquire creates a key.
func (n rtCount) writes() int {
	total := n["Txn"]
	for _, m := range rtWrites {
		total += n[m]
	}
	return total
}

// rtCount is requests sent, by gRPC method name ("Txn", "LeaseGrant", ...).
type rtCount map[string]int

// roundTrips is every request except watch messages.
func (n rtCount) roundTrips() int {
	total := 0
	for m, v := range n {
		if m != "Watch" {
			total += v
		}
	}
	return total
}

func (n rtCount) add(o rtCount) rtCount {
	out := maps.Clone(n)
	if out == nil {
		out = rtCount{}
	}
	for m, v := range o {
		out[m] += v
	}
	return out
}

func (n rtCount) String() string {
	var parts []string
	for _, m := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", m, n[m]))
	}
	return strings.Join(parts, " + ")
}

// rtCounter counts the requests one etcd client sends, with a unary and a
// stream client interceptor, and how many unary requests were in flight at
// once before the first reply came back (waves).
type rtCounter struct {
	mu       sync.Mutex
	sent     rtCount
	inflight int
	waves    rtWaves
}

// rtWaves describes how unary requests overlapped: first is how many were
// sent before the first reply arrived.
type rtWaves struct {
	first   int
	replied bool
}

func (c *rtCounter) unaryStart() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight++
	if !c.waves.replied {
		c.waves.first++
	}
}

func (c *rtCounter) unaryDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	c.waves.replied = true
}

// takeWaves returns the overlap seen since the last call and starts again.
func (c *rtCounter) takeWaves() rtWaves {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waves
	c.waves = rtWaves{}
	return w
}

func (c *rtCounter) record(fullMethod string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent == nil {
		c.sent = rtCount{}
	}
	c.sent[path.Base(fullMethod)]++
}

// take returns the counts so far and starts again from zero.
func (c *rtCounter) take() rtCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.sent
	c.sent = rtCount{}
	return n
}

// settle waits until the client has sent nothing for quiet (watches are
// set up and torn down asynchronously), at most 5s, and discards what it
// sent.
func (c *rtCounter) settle(quiet time.Duration) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(quiet)
		if len(c.take()) == 0 {
			return
		}
	}
}

func (c *rtCounter) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			c.record(method)
			c.unaryStart()
			defer c.unaryDone()
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return &rtStream{ClientStream: s, c: c, method: method}, nil
		}),
	}
}

// rtStream counts each message sent on a stream.
type rtStream struct {
	grpc.ClientStream
	c      *rtCounter
	method string
}

func (s *rtStream) SendMsg(m any) error {
	s.c.record(s.method)
	return s.ClientStream.SendMsg(m)
}

// rtClient is a claim client whose etcd requests are counted.
type rtClient struct {
	*claim.Client
	n *rtCounter
}

func rtNewClient(tb testing.TB, m *etcdtest.Member) rtClient {
	tb.Helper()
	n := &rtCounter{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   m.Endpoints(),
		DialTimeout: etcdtest.DialTimeout,
		Logger:      zap.NewNop(),
		DialOptions: n.dialOptions(),
	})
	if err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	c, err := claim.New(cli, claim.Options{Prefix: "rt/", RequestTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	// Connect now, so that the first measured operation is not also the
	// one that dials.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "rt/warm-up"); err != nil {
		tb.Fatalf("etcd client: %v", err)
	}
	n.take()
	return rtClient{Client: c, n: n}
}

// rtQuiet is how long a client must send nothing to count as settled.
const rtQuiet = 30 * time.Millisecond

func rtOpts(name string) claim.AcquireOptions {
	return claim.AcquireOptions{Name: name, TTL: 30 * time.Second, Limit: 1, Holder: claim.Holder{Owner: "rt"}}
}

func rtCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// rtAcquire takes name uncontended and returns the hold and what it cost.
func rtAcquire(tb testing.TB, c rtClient, name string) (*claim.Hold, rtCount) {
	tb.Helper()
	c.n.take()
	c.n.takeWaves()
	h, err := c.Acquire(rtCtx(tb), rtOpts(name))
	if err != nil {
		tb.Fatalf("acquire %s: %v", name, err)
	}
	return h, c.n.take()
}

// rtBestOf measures acquire(i) for i = 0, 1, ... until one stays within
// op's budget, at most 5 times, and returns that hold (the others are
// released) and the fewest requests seen. The grant and the create are sent
// together, and now and then the create overtakes the grant and is sent
// again (TestAcquireCreateOvertakingTheGrant): the budget is the path's
// own, so the best attempt counts.
func rtBestOf(tb testing.TB, c rtClient, op string, acquire func(i int) (*claim.Hold, error)) (*claim.Hold, rtCount) {
	tb.Helper()
	var best rtCount
	var kept *claim.Hold
	for i := range 5 {
		c.n.take()
		h, err := acquire(i)
		if err != nil {
			tb.Fatalf("%s: %v", op, err)
		}
		n := c.n.take()
		if kept == nil || n.roundTrips() < best.roundTrips() {
			if kept != nil {
				_ = kept.Release()
			}
			kept, best = h, n
		} else {
			_ = h.Release()
		}
		if best.roundTrips() <= rtBudget[op] {
			break
		}
	}
	return kept, best
}

// rtRunRelease is what `claimctl run` does once the child is gone: the hold
// was kept (renewals, a watch on its own key) and is released by revoking
// its lease.
func rtRunRelease(tb testing.TB, c rtClient, h *claim.Hold) rtCount {
	tb.Helper()
	h.Keep(rtCtx(tb))
	c.n.settle(rtQuiet)
	if err := h.Release(); err != nil {
		tb.Fatalf("release: %v", err)
	}
	return c.n.take()
}

// rtRenewToken renews a hold by its token, as `claimctl renew` does.
func rtRenewToken(tb testing.TB, c rtClient, t claim.Token) rtCount {
	tb.Helper()
	c.n.take()
	if _, err := c.Renew(rtCtx(tb), t); err != nil {
		tb.Fatalf("renew: %v", err)
	}
	return c.n.take()
}

// rtReleaseToken releases a hold by its token, as `claimctl release` does.
func rtReleaseToken(tb testing.TB, c rtClient, t claim.Token) rtCount {
	tb.Helper()
	c.n.take()
	if err := c.Release(rtCtx(tb), t); err != nil {
		tb.Fatalf("release by token: %v", err)
	}
	return c.n.take()
}

// rtQueue starts waiter's Acquire of name behind a holder and returns once
// it waits in line with its watches set up, with a channel for the hold.
func rtQueue(tb testing.TB, waiter rtClient, name string) <-chan *claim.Hold {
	tb.Helper()
	return rtQueueOpts(tb, waiter, rtOpts(name))
}

// rtQueueCounted is rtQueue that also returns the requests the waiter
// sent until it waited in line (Progress), and for rtQuiet after.
func rtQueueCounted(tb testing.TB, waiter rtClient, name string) (<-chan *claim.Hold, rtCount) {
	tb.Helper()
	return rtQueueCountedOpts(tb, waiter, rtOpts(name))
}

// rtQueueOpts is rtQueue with other acquire options.
func rtQueueOpts(tb testing.TB, waiter rtClient, o claim.AcquireOptions) <-chan *claim.Hold {
	tb.Helper()
	out, _ := rtQueueCountedOpts(tb, waiter, o)
	return out
}

// rtQueueCountedOpts starts waiter's Acquire with o, returns once it waits
// in line with its watches set up, and counts what it sent until then.
func rtQueueCountedOpts(tb testing.TB, waiter rtClient, o claim.AcquireOptions) (<-chan *claim.Hold, rtCount) {
	tb.Helper()
	queued := make(chan struct{})
	var once sync.Once
	o.Progress = func(claim.QueueState) { once.Do(func() { close(queued) }) }
	out := make(chan *claim.Hold, 1)
	ctx := rtCtx(tb)
	go func() {
		h, err := waiter.Acquire(ctx, o)
		once.Do(func() { close(queued) })
		if err != nil {
			h = nil
		}
		out <- h
	}()
	select {
	case <-queued:
	case <-time.After(10 * time.Second):
		tb.Fatalf("waiter on %s not queued within 10s", o.Name)
	}
	time.Sleep(rtQuiet)
	n := waiter.n.take()
	waiter.n.settle(rtQuiet)
	return out, n
}

// rtHandoff releases the holder's hold (as run does) and waits until the
// queued waiter holds the claim; it returns the waiter's hold and the
// requests both sides sent from the release to the waiter's success.
func rtHandoff(tb testing.TB, holder, waiter rtClient, h *claim.Hold, next <-chan *claim.Hold) (*claim.Hold, rtCount) {
	tb.Helper()
	holder.n.take()
	waiter.n.take()
	if err := h.Release(); err != nil {
		tb.Fatalf("holder release: %v", err)
	}
	var got *claim.Hold
	select {
	case got = <-next:
	case <-time.After(15 * time.Second):
		tb.Fatal("the waiter did not get the claim within 15s of the release")
	}
	if got == nil {
		tb.Fatal("the waiter's acquire failed")
	}
	return got, holder.n.take().add(waiter.n.take())
}

// TestRoundTripBudget measures each operation's etcd round trips against a
// real member and fails if any exceeds rtBudget: the hot path must stay at
// the fewest round trips the protocol allows (STYLE.md). A count below the
// budget is reported so that the budget can be tightened.
func TestRoundTripBudget(t *testing.T) {
	m := etcdtest.Start(t)
	a, b := rtNewClient(t, m), rtNewClient(t, m)
	got := map[string]rtCount{}

	// The grant and the create go together; now and then the create
	// reaches etcd first and is sent again (TestAcquireCreateOvertakingTheGrant
	// covers that path): the budget is the path's, so the best of a few
	// acquires counts, and each is checked to send both before waiting.
	// A grant answered within the create's head start leaves one request in
	// flight at a time; that is allowed now and then, not every time.
	var h *claim.Hold
	together := 0
	for i := range 8 {
		if h != nil {
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
		}
		var n rtCount
		h, n = rtAcquire(t, a, fmt.Sprintf("budget-%d", i))
		if w := a.n.takeWaves(); w.first >= 2 {
			together++
		}
		if best, ok := got["acquire (uncontended)"]; !ok || n.roundTrips() < best.roundTrips() {
			got["acquire (uncontended)"] = n
		}
		if together > 0 && got["acquire (uncontended)"].roundTrips() <= rtBudget["acquire (uncontended)"] {
			break
		}
	}
	if together == 0 {
		t.Errorf("acquire (uncontended): in 8 acquires the create never left before the grant's reply; the grant and the create must be sent together")
	}
	got["release (run: revoke)"] = rtRunRelease(t, a, h)

	h, _ = rtAcquire(t, a, "by-token")
	got["renew by token"] = rtRenewToken(t, b, h.Token())
	got["release by token"] = rtReleaseToken(t, b, h.Token())

	// Queueing behind a holder: the create reads which key to watch and
	// how many are ahead, so a mutex waiter sends nothing more before it
	// watches. The best of a few, as for the uncontended acquire (a create
	// that overtakes its grant is sent again).
	for i := range 4 {
		qh, _ := rtAcquire(t, a, fmt.Sprintf("queue-%d", i))
		b.n.take()
		qnext, n := rtQueueCounted(t, b, fmt.Sprintf("queue-%d", i))
		if best, ok := got["queue behind a holder"]; !ok || n.roundTrips() < best.roundTrips() {
			got["queue behind a holder"] = n
		}
		qh2, _ := rtHandoff(t, a, b, qh, qnext)
		if err := qh2.Release(); err != nil {
			t.Fatal(err)
		}
		if got["queue behind a holder"].roundTrips() <= rtBudget["queue behind a holder"] {
			break
		}
	}

	h, _ = rtAcquire(t, a, "handoff")
	next := rtQueue(t, b, "handoff")
	h2, n := rtHandoff(t, a, b, h, next)
	got["handoff (next in line)"] = n
	if err := h2.Release(); err != nil {
		t.Fatal(err)
	}

	// Third in line: the waiter queued while the one ahead of it was still
	// waiting, and learns that it holds the claim from its acquisition
	// record, as when run is the holder.
	c := rtNewClient(t, m)
	h, _ = rtAcquire(t, a, "queue")
	next = rtQueue(t, b, "queue")
	third := rtQueue(t, c, "queue")
	h2, _ = rtHandoff(t, a, b, h, next)
	h2.RecordAcquired(rtCtx(t))
	b.n.settle(rtQuiet)
	c.n.settle(rtQuiet)
	h3, n := rtHandoff(t, b, c, h2, third)
	got["handoff (behind a holder that waited)"] = n
	if err := h3.Release(); err != nil {
		t.Fatal(err)
	}

	// The same, but the hold ahead ended before recording its acquisition
	// (run records it only once its command has run a second): the watch
	// cannot prove the turn, so the waiter re-reads its own key and the
	// queue in one Txn, and renews only when its lease's proof is old,
	// which it is not. Still one request.
	h, _ = rtAcquire(t, a, "unrecorded")
	next = rtQueue(t, b, "unrecorded")
	third = rtQueue(t, c, "unrecorded")
	h2, _ = rtHandoff(t, a, b, h, next)
	b.n.settle(rtQuiet)
	c.n.settle(rtQuiet)
	h3, n = rtHandoff(t, b, c, h2, third)
	got["handoff (behind a hold that left no record)"] = n
	if err := h3.Release(); err != nil {
		t.Fatal(err)
	}

	// A semaphore waiter counts the deletions of the keys ahead.
	o := rtOpts("sem")
	o.Limit = 2
	s1, n := rtBestOf(t, a, "acquire (semaphore, uncontended)", func(i int) (*claim.Hold, error) {
		if i > 0 {
			o.Name = fmt.Sprintf("sem-%d", i)
		}
		return a.Acquire(rtCtx(t), o)
	})
	got["acquire (semaphore, uncontended)"] = n
	s2, err := c.Acquire(rtCtx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	next = rtQueueOpts(t, b, o)
	h4, n := rtHandoff(t, a, b, s1, next)
	got["handoff (semaphore)"] = n
	for _, h := range []*claim.Hold{s2, h4} {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}

	// -n: on a busy claim one read and no write at all (a skipped cron
	// run); on a free one the read, then the full path.
	nb := rtOpts("nonblock")
	nb.NonBlocking = true
	hn, n := rtBestOf(t, a, "acquire -n (free)", func(i int) (*claim.Hold, error) {
		nb.Name = fmt.Sprintf("nonblock-%d", i)
		return a.Acquire(rtCtx(t), nb)
	})
	got["acquire -n (free)"] = n
	b.n.take()
	if _, err := b.Acquire(rtCtx(t), nb); !errors.Is(err, claim.ErrBusy) {
		t.Fatalf("acquire -n of a held claim: %v, want ErrBusy", err)
	}
	got["acquire -n (busy)"] = b.n.take()
	if w := got["acquire -n (busy)"].writes(); w != 0 {
		t.Errorf("acquire -n of a busy claim wrote to etcd %d times (%s); a skipped run must not write", w, got["acquire -n (busy)"])
	}
	if err := hn.Release(); err != nil {
		t.Fatal(err)
	}

	for _, op := range slices.Sorted(maps.Keys(rtBudget)) {
		n, limit := got[op], rtBudget[op]
		switch rt := n.roundTrips(); {
		case rt > limit:
			t.Errorf("%s: %d round trips (%s), budget %d: a change added a request to this path", op, rt, n, limit)
		case rt < limit:
			t.Logf("%s: %d round trips (%s), below the budget of %d: lower rtBudget", op, rt, n, limit)
		default:
			t.Logf("%s: %d round trips (%s)", op, rt, n)
		}
	}
}

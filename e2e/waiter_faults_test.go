//go:build linux

package e2e

import (
	"encoding/binary"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestWaiterCutOffLongerThanItsTTLNeverSucceeds: a waiter whose connection
// to etcd is cut (a proxy drops everything) for longer than its TTL loses
// its place: its lease expires on the server and its key is gone. The claim
// is freed while it is cut off, but it never reports success for the key
// it no longer has: it exits 69 saying it lost its place, prints no token,
// and leaves nothing behind.
func TestWaiterCutOffLongerThanItsTTLNeverSucceeds(t *testing.T) {
	m := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, m.Endpoints()[0])
	direct := m.Endpoints()
	cli := etcdClient(t, direct)

	holder := strings.TrimSpace(inExpect(t, 0, direct, nil, "acquire", "--ttl", "30s", "cutoff").stdout)
	w := startClaimctl(t, []string{proxy.Endpoint()}, nil, "acquire", "--ttl", "2s", "cutoff")
	wout := w.stdout
	waitFor(t, 10*time.Second, "the waiter to queue", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 2 })
	resp, err := cli.Get(ctx(t), "claimctl/cutoff/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil || len(resp.Kvs) != 2 {
		t.Fatalf("reading the queue: %v", err)
	}
	waiterLease := clientv3.LeaseID(resp.Kvs[1].Lease)
	ttl, err := cli.TimeToLive(ctx(t), waiterLease)
	if err != nil {
		t.Fatal(err)
	}
	granted := time.Duration(ttl.GrantedTTL) * time.Second

	cut := time.Now()
	proxy.Blackhole()
	// The claim is free from now on, but the waiter cannot see it.
	inExpect(t, 0, direct, nil, "release", holder)
	// The server expires the waiter's lease, and its key with it.
	waitFor(t, granted+5*time.Second, "the waiter's key to expire", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 0 })
	expired := time.Since(cut)

	// The waiter gives up on its own, at the latest when its lease could
	// have expired, plus one request timeout to try to revoke it.
	code := w.wait(granted + 10*time.Second)
	took := time.Since(cut)
	proxy.Unblackhole()
	if code != 69 {
		t.Fatalf("the cut-off waiter exited %d, want 69; stdout %q; stderr:\n%s", code, wout, w.stderr)
	}
	if wout.String() != "" {
		t.Fatalf("the cut-off waiter printed a token for a key it no longer has: %q", wout)
	}
	if !strings.Contains(w.stderr.String(), "\nclaimctl: acquire cutoff: etcd unavailable: lost the place in the queue: ") {
		t.Fatalf("stderr does not say the waiter lost its place:\n%s", w.stderr)
	}
	if took > granted+3*time.Second {
		t.Fatalf("the waiter gave up %v after the cut; want within TTL %v + the request timeout", took, granted)
	}
	t.Logf("cut→key expired %v; cut→waiter exited %v", expired, took)
	if _, err := cli.TimeToLive(ctx(t), waiterLease); err != nil && err != rpctypes.ErrLeaseNotFound {
		t.Fatal(err)
	}
	if keys, leases := leftovers(t, cli); len(keys) != 0 || leases != 0 {
		t.Fatalf("left behind: keys %v, %d leases", keys, leases)
	}
}

// TestWaitersSurviveCompaction: etcd's history is compacted while two
// waiters queue (one acquire, one run): both still get the claim, in order
// and with rising fencing tokens, as the holders release; run's own-key
// watch, which starts below the compacted revision, does not mistake the
// compaction for a lost claim.
func TestWaitersSurviveCompaction(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	cli := etcdClient(t, endpoints)
	holder := strings.TrimSpace(inExpect(t, 0, endpoints, nil, "acquire", "compacted").stdout)
	w1 := startClaimctl(t, endpoints, nil, "acquire", "compacted")
	w1out := w1.stdout
	waitFor(t, 10*time.Second, "the first waiter to queue", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 2 })
	w2 := startClaimctl(t, endpoints, nil, "run", "compacted", "--", "sh", "-c", `echo "$CLAIMCTL_FENCING_TOKEN"; sleep 1`)
	w2out := w2.stdout
	waitFor(t, 10*time.Second, "the second waiter to queue", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 3 })

	for i := range 5 {
		if _, err := cli.Put(ctx(t), "other/history", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	get, err := cli.Get(ctx(t), "other/history")
	if err != nil {
		t.Fatal(err)
	}
	rev := get.Header.Revision
	if _, err := cli.Compact(ctx(t), rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx(t), "other/history", clientv3.WithRev(rev-1)); err != rpctypes.ErrCompacted {
		t.Fatalf("reading below the compacted revision: %v, want ErrCompacted", err)
	}

	inExpect(t, 0, endpoints, nil, "release", holder)
	if code := w1.wait(10 * time.Second); code != 0 {
		t.Fatalf("first waiter: exit %d; stderr:\n%s", code, w1.stderr)
	}
	first := strings.TrimSpace(w1out.String())
	st := statusJSON(t, endpoints, "compacted")
	if w2.exited() || !strings.Contains(st, `"waiters": [`+"\n") {
		t.Fatalf("the second waiter did not stay queued behind the first (exited %v):\n%s", w2.exited(), st)
	}
	inExpect(t, 0, endpoints, nil, "release", first)
	if code := w2.wait(15 * time.Second); code != 0 {
		t.Fatalf("second waiter (run): exit %d; stderr:\n%s", code, w2.stderr)
	}
	fences := []int64{fence(t, holder), fence(t, first)}
	second, err := strconv.ParseInt(strings.TrimSpace(w2out.String()), 10, 64)
	if err != nil {
		t.Fatalf("run's command printed %q, not its fencing token", w2out)
	}
	fences = append(fences, second)
	if !(fences[0] < fences[1] && fences[1] < fences[2]) {
		t.Fatalf("fencing tokens holder, first, second = %v; want strictly rising", fences)
	}
	if fences[1] > rev || fences[2] > rev {
		t.Fatalf("fencing tokens %v: the waiters' keys should predate the compaction at %d", fences, rev)
	}
	if keys, leases := leftovers(t, cli); len(keys) != 0 || leases != 0 {
		t.Fatalf("left behind: keys %v, %d leases", keys, leases)
	}
}

func fence(t *testing.T, token string) int64 {
	t.Helper()
	tok, err := claim.ParseToken(token)
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	return tok.Revision
}

// h2ReplyFilter passes the replies of only the first gRPC call on a client
// connection and drops every later reply, while connection-level frames
// (settings, pings) still flow: requests keep reaching etcd and being
// carried out, but their answers are lost. It reads the HTTP/2 frame
// headers in the server-to-client byte stream, across chunk boundaries.
type h2ReplyFilter struct {
	mu      sync.Mutex
	hdr     []byte // a frame header read in part
	left    int    // payload bytes left in the current frame
	keep    bool   // the current frame is passed on
	first   uint32 // the first stream (call) seen
	dropped int    // frames dropped so far
}

func (f *h2ReplyFilter) modify(data []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []byte
	for len(data) > 0 {
		if f.left == 0 && len(f.hdr) < 9 {
			n := min(9-len(f.hdr), len(data))
			f.hdr, data = append(f.hdr, data[:n]...), data[n:]
			if len(f.hdr) < 9 {
				break
			}
			length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			stream := binary.BigEndian.Uint32(f.hdr[5:9]) & 0x7fffffff
			if stream != 0 && f.first == 0 {
				f.first = stream
			}
			f.keep = stream == 0 || stream == f.first
			if f.keep {
				out = append(out, f.hdr...)
			} else {
				f.dropped++
			}
			f.hdr, f.left = f.hdr[:0], length
			continue
		}
		n := min(f.left, len(data))
		if f.keep {
			out = append(out, data[:n]...)
		}
		f.left, data = f.left-n, data[n:]
	}
	return out
}

func (f *h2ReplyFilter) droppedFrames() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

// TestAcquireWhoseReplyIsLost: claimctl's lease grant is answered, but the
// answer to the transaction that creates its key is lost on the way back
// (and so is every later answer): the key exists on etcd, yet claimctl
// cannot know it holds the claim. It must print no token and exit 69. Its
// revoke still reaches etcd if requests do, and the lease and key go at
// once; if requests are cut too, the lease expires within its TTL. Either
// way a waiter connected directly is not blocked longer than TTL + 1s.
func TestAcquireWhoseReplyIsLost(t *testing.T) {
	t.Run("revoke reaches etcd", func(t *testing.T) { testAcquireWhoseReplyIsLost(t, false) })
	t.Run("revoke is lost too", func(t *testing.T) { testAcquireWhoseReplyIsLost(t, true) })
}

func testAcquireWhoseReplyIsLost(t *testing.T, cutRequests bool) {
	m := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, m.Endpoints()[0])
	direct := m.Endpoints()
	cli := etcdClient(t, direct)
	filter := &h2ReplyFilter{}
	proxy.Server().ModifyRx(filter.modify)
	t.Cleanup(proxy.Server().UnmodifyRx)

	const ttl = 3 * time.Second
	start, err := cli.Get(ctx(t), "claimctl/")
	if err != nil {
		t.Fatal(err)
	}
	watch := cli.Watch(ctx(t), "claimctl/lost/", clientv3.WithPrefix(), clientv3.WithRev(start.Header.Revision+1))
	lost := startClaimctl(t, []string{proxy.Endpoint()}, nil, "acquire", "--ttl", "3s", "lost")
	lostOut := lost.stdout

	// The request reached etcd: the key appears.
	var created time.Time
	select {
	case wr := <-watch:
		if len(wr.Events) == 0 || wr.Events[0].Type != clientv3.EventTypePut {
			t.Fatalf("first event on the claim: %+v (err %v), want the key's creation", wr.Events, wr.Err())
		}
		created = time.Now()
	case <-time.After(3 * time.Second):
		// claimctl sends the grant and the create together; when the
		// create reaches etcd first it is refused (no lease yet), its
		// refusal is the reply the filter lets through, and the grant's
		// reply is the one lost. Then no key exists, and claimctl must
		// still print no token, exit 69 and leave nothing behind once the
		// lease it never saw granted has gone (revoked, or expired).
		if code := lost.wait(15 * time.Second); code != 69 || lostOut.String() != "" {
			t.Fatalf("claimctl whose grant reply was lost exited %d (want 69), stdout %q; stderr:\n%s", code, lostOut, lost.stderr)
		}
		waitFor(t, ttl+3*time.Second, "the lease of the lost grant to go", func() bool {
			keys, leases := leftovers(t, cli)
			return len(keys) == 0 && leases == 0
		})
		t.Logf("the create overtook the grant, and the grant's reply was lost: %s", strings.TrimSpace(lost.stderr.String()))
		return
	}
	if cutRequests {
		// claimctl tries to revoke after its 1s request timeout: cut
		// everything long before that.
		proxy.Server().BlackholeTx()
		t.Cleanup(proxy.Server().UnblackholeTx)
	}
	waiter := startClaimctl(t, direct, nil, "acquire", "--ttl", "3s", "lost")
	waiterOut := waiter.stdout
	if code := waiter.wait(ttl + 5*time.Second); code != 0 {
		t.Fatalf("the direct waiter exited %d; stderr:\n%s", code, waiter.stderr)
	}
	blocked := time.Since(created)
	t.Logf("key created→waiter acquired %v", blocked)
	if blocked > ttl+time.Second {
		t.Fatalf("the direct waiter was blocked %v by a lost acquire; want at most TTL %v + 1s", blocked, ttl)
	}
	if !cutRequests && blocked > 2*time.Second {
		t.Fatalf("the direct waiter was blocked %v, though claimctl's revoke reached etcd after its 1s request timeout", blocked)
	}

	code := lost.wait(15 * time.Second)
	if code != 69 {
		t.Fatalf("claimctl whose reply was lost exited %d, want 69; stdout %q; stderr:\n%s", code, lostOut, lost.stderr)
	}
	if lostOut.String() != "" {
		t.Fatalf("claimctl printed a token it never saw confirmed: %q", lostOut)
	}
	t.Logf("claimctl: %s", strings.TrimSpace(lost.stderr.String()))
	want := "claimctl: acquire lost: etcd unavailable at " + proxy.Endpoint() + ": no answer in time " +
		"(the lease could not be revoked either, so it expires within 3s: "
	if !strings.HasPrefix(lost.stderr.String(), want) {
		t.Fatalf("stderr does not say the lease may live on:\n%s", lost.stderr)
	}
	if filter.droppedFrames() == 0 {
		t.Fatal("no reply was dropped: the fault was not injected")
	}
	if keys, leases := leftovers(t, cli); len(keys) != 1 || leases != 1 {
		t.Fatalf("after the lost acquire: keys %v, %d leases; want only the waiter's", keys, leases)
	}
	inExpect(t, 0, direct, nil, "release", strings.TrimSpace(waiterOut.String()))
}

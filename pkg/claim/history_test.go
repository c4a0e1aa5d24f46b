package claim_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/claimctl/claimctl/pkg/claim"
)

// histWant is what History must report of one contender.
type histWant struct {
	token    int64
	owner    string // "" for a contender without claimctl metadata
	note     string
	end      claim.End
	proof    claim.Proof
	forcedBy string
	waited   bool // it took the claim after waiting
	recorded bool // ...and recorded acquired_at
	slot     int
}

// histSeq drives a sequence of holds on one claim and records what History
// must report of each.
type histSeq struct {
	t    *testing.T
	cl   *claim.Client
	name string
	want []histWant
	n    int
}

func (s *histSeq) opts(ttl time.Duration) claim.AcquireOptions {
	s.n++
	o := opts(s.name)
	o.TTL = ttl
	o.Holder = claim.Holder{Owner: fmt.Sprintf("o%d", s.n), Note: fmt.Sprintf("note %d", s.n)}
	return o
}

// acquire takes the claim uncontended.
func (s *histSeq) acquire(ttl time.Duration) *claim.Hold {
	s.t.Helper()
	h, err := s.cl.Acquire(ctxT(s.t, 10*time.Second), s.opts(ttl))
	if err != nil {
		s.t.Fatal(err)
	}
	return h
}

// handoff queues a contender behind prev, ends prev with end, and returns
// the new hold (recording its acquisition if record).
func (s *histSeq) handoff(prev *claim.Hold, end func(*claim.Hold), ttl time.Duration, record bool) *claim.Hold {
	s.t.Helper()
	ch := acquireAsync(s.t, ctxT(s.t, 30*time.Second), s.cl, s.opts(ttl))
	end(prev)
	r := recv(s.t, ch, "waiter")
	if r.err != nil {
		s.t.Fatal(r.err)
	}
	if record {
		if err := r.hold.RecordAcquired(ctxT(s.t, 5*time.Second)); err != nil {
			s.t.Fatal(err)
		}
	}
	return r.hold
}

func (s *histSeq) expect(h *claim.Hold, end claim.End, proof claim.Proof, waited, recorded bool) {
	s.want = append(s.want, histWant{token: h.Revision, owner: h.Holder.Owner, note: h.Holder.Note, end: end, proof: proof, waited: waited, recorded: recorded, slot: h.Slot})
}

func (s *histSeq) revoke(h *claim.Hold) {
	s.t.Helper()
	if err := h.Release(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *histSeq) releaseToken(h *claim.Hold) {
	s.t.Helper()
	if err := s.cl.Release(ctxT(s.t, 5*time.Second), h.Token()); err != nil {
		s.t.Fatal(err)
	}
}

// expire leaves h's lease to run out (h must have a short TTL): a hold
// that nothing keeps is not renewed.
func (s *histSeq) expire(*claim.Hold) {}

// readHistory reads claim name's history, skipping the test on a server
// History refuses (an old etcd: see HistoryUnsupported; scripts/compat.sh
// runs these tests on etcd 3.4.23, where they skip).
func readHistory(t *testing.T, cl *claim.Client, name string) *claim.History {
	t.Helper()
	hist, err := cl.History(ctxT(t, 10*time.Second), name)
	if err != nil && strings.Contains(err.Error(), "etcd issue 15220") {
		t.Skipf("this etcd cannot serve history: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return hist
}

func checkHistory(t *testing.T, hist *claim.History, want []histWant) {
	t.Helper()
	if len(hist.Holds) != len(want) {
		for _, h := range hist.Holds {
			t.Logf("%d %s %s", h.CreateRevision, h.OwnerString(), h.End)
		}
		t.Fatalf("history has %d contenders, want %d", len(hist.Holds), len(want))
	}
	for i, w := range want {
		h := hist.Holds[i]
		what := fmt.Sprintf("contender %d (token %d, %s)", i, h.CreateRevision, h.OwnerString())
		owner, note := "", ""
		if h.Holder != nil {
			owner, note = h.Holder.Owner, h.Holder.Note
		}
		if h.CreateRevision != w.token || owner != w.owner || note != w.note {
			t.Errorf("%s: token %d owner %q note %q; want %d %q %q", what, h.CreateRevision, owner, note, w.token, w.owner, w.note)
		}
		if h.End != w.end || h.Proof != w.proof || h.ForcedBy != w.forcedBy {
			t.Errorf("%s: end %s (%s) forced by %q; want %s (%s) forced by %q", what, h.End, h.Proof, h.ForcedBy, w.end, w.proof, w.forcedBy)
		}
		held := w.end != claim.EndGaveUp && w.end != claim.EndWaiting
		if h.Held != held {
			t.Errorf("%s: held %v, want %v", what, h.Held, held)
		}
		if (h.EndRevision == 0) != (w.end == claim.EndHolding || w.end == claim.EndWaiting) {
			t.Errorf("%s: end revision %d with end %s", what, h.EndRevision, w.end)
		}
		if h.EndRevision > 0 && (h.Ended.By.IsZero() || h.Ended.By.After(hist.ReadAt) || h.Holder != nil && h.Ended.After.Before(h.Holder.QueuedAt)) {
			t.Errorf("%s: ended %+v; want a span after queued_at and by the read time %v", what, h.Ended, hist.ReadAt)
		}
		if !held {
			if h.TakenRevision != 0 || !h.TakenAt.IsZero() || h.Slot != -1 {
				t.Errorf("%s: a waiter was taken at revision %d, %v, slot %d", what, h.TakenRevision, h.TakenAt, h.Slot)
			}
			continue
		}
		if h.Slot != w.slot {
			t.Errorf("%s: slot %d, want %d", what, h.Slot, w.slot)
		}
		switch {
		case h.Holder == nil:
			if !h.TakenAt.IsZero() || h.Waited != -1 || h.Taken.By.IsZero() {
				t.Errorf("%s: foreign hold taken at %v (%+v), waited %v; want a span, wait unknown", what, h.TakenAt, h.Taken, h.Waited)
			}
		case !w.waited && h.BeforeHistory && h.Holder.AcquiredAt == nil:
			// Taken before the history starts, with no record of a wait,
			// which a short run does not leave: unknown whether it waited.
			if h.TakenRevision != 0 || !h.TakenAt.IsZero() || h.Waited != -1 {
				t.Errorf("%s: a hold from before the history, with no acquired_at, taken at revision %d %v, waited %v; want all unknown", what, h.TakenRevision, h.TakenAt, h.Waited)
			}
		case !w.waited:
			if h.TakenRevision != h.CreateRevision || !h.TakenAt.Equal(h.Holder.QueuedAt) || h.Waited != 0 {
				t.Errorf("%s: uncontended hold taken at revision %d %v, waited %v; want its create revision, queued_at, 0", what, h.TakenRevision, h.TakenAt, h.Waited)
			}
		case w.recorded:
			if h.TakenRevision <= h.CreateRevision || h.Holder.AcquiredAt == nil || !h.TakenAt.Equal(*h.Holder.AcquiredAt) ||
				h.Waited != h.Holder.AcquiredAt.Sub(h.Holder.QueuedAt) || h.Waited < 0 {
				t.Errorf("%s: waited hold taken at revision %d %v, waited %v (queued %v, acquired %v); want after its creation, acquired_at, acquired_at - queued_at", what, h.TakenRevision, h.TakenAt, h.Waited, h.Holder.QueuedAt, h.Holder.AcquiredAt)
			}
		default:
			if h.TakenRevision <= h.CreateRevision || !h.TakenAt.IsZero() || h.Waited != -1 || h.Taken.By.IsZero() || h.Taken.By.Before(h.Holder.QueuedAt) {
				t.Errorf("%s: unrecorded waited hold taken at revision %d %v (%+v), waited %v; want a span, wait unknown", what, h.TakenRevision, h.TakenAt, h.Taken, h.Waited)
			}
		}
	}
	// Each hold taken after waiting was handed over exactly when the hold
	// ahead of it ended.
	var prevEnd int64
	for _, h := range hist.Holds {
		if !h.Held {
			continue
		}
		if h.TakenRevision > h.CreateRevision && h.TakenRevision != prevEnd {
			t.Errorf("token %d taken at revision %d; the hold before it ended at %d", h.CreateRevision, h.TakenRevision, prevEnd)
		}
		prevEnd = h.EndRevision
	}
}

// TestHistoryReconstructsTwentyHolds drives 20 holds of one claim through
// every way a hold begins and ends, and checks that History tells each one
// exactly: fencing tokens, owners, notes, order, waits and ends, with the
// strongest label the evidence supports.
func TestHistoryReconstructsTwentyHolds(t *testing.T) {
	c := newCluster(t)
	s := &histSeq{t: t, cl: c.claims(nil), name: "h"}
	const long, short = 60 * time.Second, time.Second // the whole test runs well within long - 1s

	// Uncontended, released by run (a revoke) and by token: a revoke is a
	// lease end like an expiry, but these end long before a 60s lease can.
	h := s.acquire(long)
	s.revoke(h)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	h = s.acquire(long)
	s.releaseToken(h)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)

	// Contended: each waiter takes over as the hold ahead ends.
	h = s.acquire(long)
	next := s.handoff(h, s.revoke, long, true)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	h, next = next, s.handoff(next, s.releaseToken, long, true)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, true, true)
	h = next

	// A waiter that gives up while h holds.
	gctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	o := s.opts(long)
	ch := acquireAsync(t, gctx, s.cl, o)
	if r := recv(t, ch, "giving-up waiter"); !errors.Is(r.err, claim.ErrWaitTimeout) {
		t.Fatalf("giving-up waiter: %v", r.err)
	}
	cancel()
	// Its token is filled in below: the one History finds between its
	// neighbours'.
	gaveUp := histWant{owner: o.Holder.Owner, note: o.Holder.Note, end: claim.EndGaveUp}
	s.revoke(h)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, true, true)
	giveUpAt := len(s.want)
	s.want = append(s.want, gaveUp)

	// An expiry, with a waiter taking over when the lease runs out: a 1s
	// lease never lets timing tell a release from an expiry.
	h = s.acquire(short)
	next = s.handoff(h, s.expire, long, true)
	s.expect(h, claim.EndReleasedOrExpired, "", false, false)
	h = next

	// A forced release.
	if removed, err := s.cl.ForceRelease(ctxT(t, 5*time.Second), "h", "admin@test"); err != nil || len(removed) != 1 {
		t.Fatalf("force release: %v, %v", removed, err)
	}
	s.expect(h, claim.EndForced, "", true, true)
	s.want[len(s.want)-1].forcedBy = "admin@test"

	// A 1s hold released at once: a revoke, but only "released or expired"
	// is proven.
	h = s.acquire(short)
	s.revoke(h)
	s.expect(h, claim.EndReleasedOrExpired, "", false, false)

	// etcdctl lock's layout (concurrency.Mutex): a foreign hold.
	sess, err := concurrency.NewSession(c.admin, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	mu := concurrency.NewMutex(sess, "test/h")
	if err := mu.Lock(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := c.admin.Get(ctxT(t, 5*time.Second), mu.Key())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("read the mutex key: %v", err)
	}
	s.want = append(s.want, histWant{token: resp.Kvs[0].CreateRevision, end: claim.EndReleasedOrExpired})
	if err := mu.Unlock(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	sess.Close()

	// A waited hold released before it recorded acquired_at: its taking
	// time is only bounded.
	h = s.acquire(long)
	next = s.handoff(h, s.revoke, long, false)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	h = next
	s.revoke(h)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, true, false)

	// A waited hold with a 1s lease that then expires under a waiter.
	h = s.acquire(long)
	next = s.handoff(h, s.releaseToken, short, true)
	s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	h, next = next, s.handoff(next, s.expire, long, true)
	s.expect(h, claim.EndReleasedOrExpired, "", true, true)
	s.revoke(next)
	s.expect(next, claim.EndReleased, claim.ProofBeforeExpiry, true, true)

	// More uncontended holds, the last still held, with one waiting.
	for i := 0; i < 5; i++ {
		h = s.acquire(long)
		s.revoke(h)
		s.expect(h, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	}
	h = s.acquire(long)
	s.expect(h, claim.EndHolding, "", false, false)
	wctx, stopWaiter := context.WithCancel(context.Background())
	defer stopWaiter()
	o = s.opts(long)
	acquireAsync(t, wctx, s.cl, o)

	hist := readHistory(t, s.cl, "h")
	// The waiter's token is the one History found between its neighbours.
	if g := hist.Holds[giveUpAt]; g.CreateRevision > s.want[giveUpAt-1].token && g.CreateRevision < s.want[giveUpAt+1].token {
		s.want[giveUpAt].token = g.CreateRevision
	}
	var tail claim.PastHold
	if n := len(hist.Holds); n > 0 {
		tail = hist.Holds[n-1]
	}
	s.want = append(s.want, histWant{token: tail.CreateRevision, owner: o.Holder.Owner, note: o.Holder.Note, end: claim.EndWaiting})
	if tail.CreateRevision <= h.Revision {
		t.Fatalf("the last contender has token %d; want the waiter behind %d", tail.CreateRevision, h.Revision)
	}
	holds := 0
	for _, w := range s.want {
		if w.end != claim.EndGaveUp && w.end != claim.EndWaiting {
			holds++
		}
	}
	if holds != 20 {
		t.Fatalf("the sequence has %d holds, want 20", holds)
	}
	checkHistory(t, hist, s.want)
	if hist.Compacted || hist.From != 1 || !hist.CompleteAfter.IsZero() || hist.Revision < tail.CreateRevision {
		t.Fatalf("history: compacted %v from %d (after %v) up to %d; want complete from 1", hist.Compacted, hist.From, hist.CompleteAfter, hist.Revision)
	}
	g := hist.Holds[giveUpAt]
	// It gave up 500ms after it started, a little before it queued.
	if d := g.Ended.By.Sub(g.Holder.QueuedAt); d < 400*time.Millisecond {
		t.Errorf("the waiter that gave up after 500ms ended by %v after queuing", d)
	}
}

// TestHistorySemaphoreSlots checks slots and the proof a semaphore's slot
// key gives: a release by token deletes the holder key while its lease (and
// slot key) live on, which no lease end does.
func TestHistorySemaphoreSlots(t *testing.T) {
	c := newCluster(t)
	s := &histSeq{t: t, cl: c.claims(nil), name: "s"}
	sem := func(ttl time.Duration) *claim.Hold {
		o := s.opts(ttl)
		o.Limit = 2
		h, err := s.cl.Acquire(ctxT(t, 10*time.Second), o)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b := sem(time.Second), sem(time.Second)
	s.releaseToken(a)
	s.revoke(b)
	c3 := sem(60 * time.Second)
	s.expect(a, claim.EndReleased, claim.ProofKeyDeleted, false, false)
	s.expect(b, claim.EndReleasedOrExpired, "", false, false)
	s.expect(c3, claim.EndHolding, "", false, false)
	if a.Slot != 0 || b.Slot != 1 || c3.Slot != 0 {
		t.Fatalf("slots %d %d %d, want 0 1 0", a.Slot, b.Slot, c3.Slot)
	}
	hist := readHistory(t, s.cl, "s")
	checkHistory(t, hist, s.want)
}

// TestHistoryAfterCompaction compacts etcd in the middle of a claim's
// history: the holds that ended before are gone, the one alive across it is
// known from the compact revision on, and History says from where (and from
// when) it is complete.
func TestHistoryAfterCompaction(t *testing.T) {
	c := newCluster(t)
	s := &histSeq{t: t, cl: c.claims(nil), name: "c"}
	for i := 0; i < 3; i++ {
		s.revoke(s.acquire(60 * time.Second))
	}
	s.want = nil
	across := s.acquire(60 * time.Second)
	next := s.handoff(across, func(*claim.Hold) {
		resp, err := c.admin.Get(ctxT(t, 5*time.Second), "test/c/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.admin.Compact(ctxT(t, 5*time.Second), resp.Header.Revision); err != nil {
			t.Fatal(err)
		}
		s.revoke(across)
	}, 60*time.Second, true)
	s.expect(across, claim.EndReleased, claim.ProofBeforeExpiry, false, false)
	s.expect(next, claim.EndHolding, "", true, true)
	status, err := c.admin.Status(ctxT(t, 5*time.Second), c.endpoints[0])
	if err != nil {
		t.Fatal(err)
	}
	hist := readHistory(t, s.cl, "c")
	checkHistory(t, hist, s.want)
	if !hist.Compacted || hist.From <= across.Revision || hist.From >= next.Revision+1 || hist.Revision < status.Header.Revision-1 {
		t.Fatalf("history compacted %v from revision %d up to %d; want compacted between %d and %d", hist.Compacted, hist.From, hist.Revision, across.Revision, next.Revision)
	}
	if !hist.Holds[0].BeforeHistory || hist.Holds[1].BeforeHistory {
		t.Fatalf("before history: %v %v; want the hold across the compaction only", hist.Holds[0].BeforeHistory, hist.Holds[1].BeforeHistory)
	}
	// The first timestamp after the compaction: the waiter queued before it,
	// so the one that tells is its acquired_at.
	if want := *hist.Holds[1].Holder.AcquiredAt; !hist.CompleteAfter.Equal(want) {
		t.Fatalf("complete after %v; want the next hold's acquired_at %v", hist.CompleteAfter, want)
	}
}

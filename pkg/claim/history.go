package claim

import (
	"context"
	"errors"
	"fmt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"slices"
	"sort"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// History.
//
// A claim's past is in etcd's own revision history: every contender key's
// creation (its create revision is the fencing token), every rewrite of its
// metadata (acquired_at, forced_by) and its deletion, and the slot keys of
// semaphore holders. History replays those events, so it costs the hot path
// nothing: no request and no write is added to acquire, the handoff or
// release.
//
// What the events prove:
//
//   - who held the claim, in which order, with which fencing token and slot:
//     exactly (the holders at each revision are the first Limit keys by create
//     revision, as for Status);
//   - a waiter that gave up: its key was deleted before it ever reached the
//     head of the queue (it stopped waiting, or its lease ended);
//   - forced: the key's metadata carried forced_by, which only
//     ForceRelease writes, just before it deletes the key;
//   - released: the hold provably did not end by its lease expiring. Either
//     its key was deleted while another key of its lease lived on (a
//     semaphore holder's slot key outlived its holder key: a release by
//     token deletes the key, then revokes the lease; an expiry or a revoke
//     deletes every key of the lease at one revision), or it ended more than
//     expirySlack before its lease could first have expired (queued_at + TTL),
//     by a timestamp that bounds the end from above;
//   - released or expired: every other end. run's release revokes the
//     lease, which deletes the key exactly as an expiry does: etcd keeps no
//     trace of which it was. Nothing proves an expiry, so no End says
//     "expired".
//
// Times: revisions carry no time. The contenders' own timestamps are the
// anchors: queued_at is stamped just before the key is created (it bounds the
// time of its create revision from below, and of earlier revisions from
// above, up to one request's latency), acquired_at just after the holder saw
// the hold ahead of it end (it bounds the time of that revision from above,
// and of revisions from its own write on from below). An event's time is the
// span between the nearest anchors (Span), up to the clock skew between hosts.

// expirySlack is the margin the timing proof of a release allows for clock
// skew between the hosts and for the time between a lease's grant and its
// holder stamping queued_at.
const expirySlack = time.Second

// maxHistoryTries bounds how often History starts over because etcd compacted
// the revisions it was reading.
const maxHistoryTries = 5

// End is how a hold (or a wait) ended, as far as etcd's history proves it.
type End string

// The ends History reports; see History for what each proves.
const (
	EndHolding           End = "holding"
	EndWaiting           End = "waiting"
	EndForced            End = "forced"
	EndReleased          End = "released"
	EndReleasedOrExpired End = "released_or_expired"
	EndGaveUp            End = "gave_up"
)

// Proof says why a hold is known to be released rather than expired.
type Proof string

// The proofs of a release.
const (
	// ProofKeyDeleted: its key was deleted while its lease lived on (its slot
	// key was deleted later or is still there): a deletion by key, as release
	// by token (or a deletion by hand) does, not a lease's end.
	ProofKeyDeleted Proof = "key_deleted_lease_alive"
	// ProofBeforeExpiry: a timestamp proves it ended more than a second
	// before its lease could first have expired.
	ProofBeforeExpiry Proof = "before_expiry"
)

// Span bounds the time of a revision: it came at or after After (zero when
// nothing tells) and at or before By (at most the time the history was read).
type Span struct {
	After time.Time
	By    time.Time
}

// PastHold is one contender's key over its life: a hold, or a wait that
// never became one.
type PastHold struct {
	// Entry is the key as last seen: Holder is its last metadata (nil for a
	// contender without claimctl metadata), CreateRevision the fencing
	// token, Slot the slot it held (-1 for a waiter or when unknown).
	Entry
	// BeforeHistory is set when the key was created before the history
	// starts (History.From): what happened to it before is unknown.
	BeforeHistory bool
	// Held is set when the key reached the head of the queue.
	Held bool
	// TakenRevision is the revision at which it became a holder; 0 for a
	// waiter, and when that was before the history starts.
	TakenRevision int64
	// TakenAt is when it took the claim, by its own clock: acquired_at, or
	// queued_at for a hold that did not wait. Zero when not recorded; Taken
	// then bounds it.
	TakenAt time.Time
	Taken   Span
	// Waited is how long it waited, from its own timestamps; -1 when they do
	// not tell (a waiter that gave up: see Ended).
	Waited time.Duration
	// EndRevision is the revision its key was deleted at; 0 while it lasts.
	EndRevision int64
	Ended       Span
	End         End
	Proof       Proof
	ForcedBy    string
}

// History is a claim's holds as etcd's revision history tells them.
type History struct {
	Name string
	// Revision is the revision the history was read up to: every change to
	// the claim's keys up to it is in Holds.
	Revision int64
	// From is the first revision the history is complete from. It is 1
	// unless etcd had compacted the claim's history: then holds that ended
	// before From are missing, and those alive at From are known only from
	// there on.
	From      int64
	Compacted bool
	// CompleteAfter is, when Compacted, a time after which the history is
	// complete (a timestamp written at or after From); zero when no
	// timestamp tells.
	CompleteAfter time.Time
	// ReadAt is this client's clock when the history's last revision was
	// read: no event in it is later.
	ReadAt time.Time
	// Holds are every contender's key, in create-revision order.
	Holds []PastHold
}

// History reads claim name's past from etcd's revision history: every event
// of the claim's contender and slot keys from the oldest revision etcd still
// has up to the current one (read first), with no write. It is bounded by
// the request timeout as a whole. When etcd has compacted part of the
// history it starts again from the compact revision, and History says from
// which revision (and, if a timestamp tells, from when) it is complete.
func (c *Client) History(ctx context.Context, name string) (*History, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	op := "history " + name
	ctx, cancel := c.request(ctx)
	defer cancel()
	if err := c.checkHistoryServers(ctx, op); err != nil {
		return nil, err
	}
	resp, err := c.etcd.Get(ctx, c.keys.ClaimPrefix(name), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return nil, c.etcdError(op, err)
	}
	end, readAt := resp.Header.Revision, time.Now()
	var base int64 // the revision of the state the events start from; 0: the beginning
	for try := 0; try < maxHistoryTries; try++ {
		var baseKVs []*mvccpb.KeyValue
		if base > 0 {
			resp, err := c.etcd.Txn(ctx).Then(
				clientv3.OpGet(c.keys.ClaimPrefix(name), clientv3.WithPrefix(), clientv3.WithRev(base)),
				clientv3.OpGet(c.keys.SlotPrefix(name), clientv3.WithPrefix(), clientv3.WithRev(base))).Commit()
			if errors.Is(err, rpctypes.ErrCompacted) {
				base = 0 // compacted further meanwhile: the watch finds where
				continue
			}
			if err != nil {
				return nil, c.etcdError(op, err)
			}
			baseKVs = append(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs...)
			if base > end {
				end, readAt = base, time.Now()
			}
		}
		events, compacted, err := c.historyEvents(ctx, name, base+1, end)
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: %w: etcd did not send the history within the request timeout (%v); a long history needs a longer one", op, ErrUnavailable, c.timeout)
		}
		if err != nil {
			return nil, c.etcdError(op, err)
		}
		if compacted > 0 {
			base = compacted
			continue
		}
		return replay(c.keys, name, base, baseKVs, events, end, readAt), nil
	}
	return nil, fmt.Errorf("%s: %w: etcd kept compacting the revisions being read; try again", op, ErrUnavailable)
}

// checkHistoryServers refuses to read history through a member whose etcd
// may report a watch's progress before it has sent the watch's stored
// events (etcd issue 15220, fixed by etcd PRs 15237 and 17557): History
// takes such a report as the end of the history and would list nothing.
// A member that does not answer is left to the reads that follow.
func (c *Client) checkHistoryServers(ctx context.Context, op string) error {
	for _, ep := range c.etcd.Endpoints() {
		st, err := c.etcd.Status(ctx, ep)
		if err != nil {
			continue
		}
		if why := HistoryUnsupported(st.Version); why != "" {
			return fmt.Errorf("%s: %w: the etcd member at %s is version %s, which %s; upgrade it, or read the history through members that are newer",
				op, ErrUnavailable, ep, st.Version, why)
		}
	}
	return nil
}

// HistoryUnsupported says why etcd version v cannot serve History, or "".
// Tests use it to skip history on such servers.
// The fixes for watch progress came with 3.4.31 and 3.5.13 (3.6 and later
// have them).
func HistoryUnsupported(v string) string {
	var major, minor, patch int
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); n < 3 {
		return ""
	}
	const why = "may report watch progress before the stored events it reads (etcd issue 15220; fixed in 3.4.31, 3.5.13 and 3.6)"
	switch {
	case major != 3 || minor > 5:
		return ""
	case minor < 4, minor == 4 && patch < 31, minor == 5 && patch < 13:
		return why
	}
	return ""
}

// historyEvents returns every event of the claim's contender and slot keys
// from revision from to end, in revision order, or the compact revision if
// etcd no longer has from. A watch from a past revision sends the stored
// events and then nothing more, so the end is known from a progress
// notification (asked for once both watches exist, so that it covers both)
// or from an event at end.
func (c *Client) historyEvents(ctx context.Context, name string, from, end int64) ([]*clientv3.Event, int64, error) {
	if from > end {
		return nil, 0, nil
	}
	// Progress is reported only while every watch on the stream is synced
	// and none waits for a future revision (a waiter's watch does): the
	// history's watches get a stream of their own.
	wctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "claimctl-stream", "history"))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithCreatedNotify()}
	chans := []clientv3.WatchChan{
		c.etcd.Watch(wctx, c.keys.ClaimPrefix(name), opts...),
		c.etcd.Watch(wctx, c.keys.SlotPrefix(name), opts...),
	}
	created, done := [2]bool{}, [2]bool{}
	var events []*clientv3.Event
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done[0] || !done[1] {
		var i int
		var wr clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-tick.C:
			if created[0] && created[1] {
				_ = c.etcd.RequestProgress(wctx)
			}
			continue
		case wr, ok = <-chans[0]:
			i = 0
		case wr, ok = <-chans[1]:
			i = 1
		}
		switch {
		case !ok:
			return nil, 0, fmt.Errorf("the watch of the claim's history closed early: %w", context.Cause(wctx))
		case wr.CompactRevision != 0:
			return nil, wr.CompactRevision, nil
		case wr.Err() != nil:
			return nil, 0, wr.Err()
		case wr.Created:
			created[i] = true
		}
		for _, ev := range wr.Events {
			if ev.Kv.ModRevision <= end {
				events = append(events, ev)
			}
			if ev.Kv.ModRevision >= end {
				done[i] = true
			}
		}
		if wr.IsProgressNotify() && wr.Header.Revision >= end {
			done[i] = true
		}
		if done[i] {
			chans[i] = nil
		}
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].Kv.ModRevision < events[b].Kv.ModRevision })
	return events, 0, nil
}

// pastKey is what the replay tracks of one contender key.
type pastKey struct {
	h           PastHold
	recordedRev int64  // the revision acquired_at was first seen at
	slotKey     string // the slot key attached to it, if any
}

// replay rebuilds a claim's holds from the state at revision base (the keys
// in baseKVs; none when base is 0) and the events after it, up to end.
func replay(ks Keyspace, name string, base int64, baseKVs []*mvccpb.KeyValue, events []*clientv3.Event, end int64, readAt time.Time) *History {
	hist := &History{Name: name, Revision: end, From: max(base, 1), Compacted: base > 0, ReadAt: readAt}
	var all []*pastKey
	live := map[string]*pastKey{}
	var queue []*pastKey           // the live keys in create-revision order
	slots := map[string]*pastKey{} // live slot keys, by key

	remove := func(p *pastKey) {
		delete(live, p.h.Key)
		i := sort.Search(len(queue), func(i int) bool { return queue[i].h.CreateRevision >= p.h.CreateRevision })
		if i < len(queue) && queue[i] == p {
			queue = slices.Delete(queue, i, i+1)
		}
	}
	put := func(kv *mvccpb.KeyValue, rev int64, before bool) {
		key := string(kv.Key)
		if _, i, ok := ks.ParseSlot(key); ok {
			if p := live[string(kv.Value)]; p != nil {
				p.slotKey = key
				p.h.setSlot(i)
				slots[key] = p
			}
			return
		}
		p := live[key]
		if p == nil || p.h.CreateRevision != kv.CreateRevision {
			p = &pastKey{h: PastHold{Entry: Entry{Key: key, CreateRevision: kv.CreateRevision, Slot: -1}, BeforeHistory: before, Waited: -1}}
			p.h.Name, p.h.Lease, _ = ks.Parse(key)
			if old := live[key]; old != nil {
				remove(old) // re-created without a delete seen: cannot happen, but keep the queue exact
			}
			live[key] = p
			all = append(all, p)
			i := sort.Search(len(queue), func(i int) bool { return queue[i].h.CreateRevision > kv.CreateRevision })
			queue = slices.Insert(queue, i, p)
		}
		p.h.Holder = decodeHolder(kv.Value)
		if hd := p.h.Holder; hd != nil {
			if hd.ForcedBy != "" {
				p.h.ForcedBy = hd.ForcedBy
			}
			if hd.AcquiredAt != nil && p.recordedRev == 0 {
				p.recordedRev = rev
			}
		}
	}
	// heads marks the first Limit live keys as holders at rev.
	heads := func(rev int64) {
		if len(queue) == 0 {
			return
		}
		limit := queue[0].h.limit()
		for _, p := range queue[:min(limit, len(queue))] {
			if !p.h.Held {
				p.h.Held = true
				if rev > base || p.h.CreateRevision == rev {
					p.h.TakenRevision = rev
				}
				if limit == 1 {
					p.h.setSlot(0)
				}
			}
		}
	}

	for _, kv := range baseKVs {
		put(kv, base, kv.CreateRevision < base)
	}
	heads(base)
	for i := 0; i < len(events); {
		rev := events[i].Kv.ModRevision
		var deleted []*pastKey
		for ; i < len(events) && events[i].Kv.ModRevision == rev; i++ {
			ev := events[i]
			key := string(ev.Kv.Key)
			if ev.Type != clientv3.EventTypeDelete {
				put(ev.Kv, rev, false)
				continue
			}
			if p := slots[key]; p != nil {
				delete(slots, key)
				continue
			}
			if p := live[key]; p != nil {
				p.h.EndRevision = rev
				remove(p)
				deleted = append(deleted, p)
			}
		}
		for _, p := range deleted {
			if p.slotKey != "" && slots[p.slotKey] == p {
				p.h.Proof = ProofKeyDeleted
			}
		}
		heads(rev)
	}

	tl := newTimeline(all, readAt)
	for _, p := range all {
		h := &p.h
		hd := h.Holder
		switch {
		case hd != nil && hd.AcquiredAt != nil:
			h.TakenAt = *hd.AcquiredAt
			h.Waited = max(hd.AcquiredAt.Sub(hd.QueuedAt), 0)
		case h.Held && hd != nil && h.TakenRevision == h.CreateRevision:
			// It did not wait. (A hold from before the history that
			// recorded no wait may still have waited: run records its
			// acquisition only once its command has run a second. Its
			// taking stays unknown.)
			h.TakenAt, h.Waited = hd.QueuedAt, 0
		}
		if h.Held && h.TakenAt.IsZero() && h.TakenRevision > 0 {
			h.Taken = tl.at(h.TakenRevision)
		}
		if h.EndRevision > 0 {
			h.Ended = tl.at(h.EndRevision)
		}
		switch {
		case h.EndRevision == 0 && h.Held:
			h.End, h.Proof = EndHolding, ""
		case h.EndRevision == 0:
			h.End, h.Proof = EndWaiting, ""
		case h.ForcedBy != "":
			h.End, h.Proof = EndForced, ""
		case !h.Held:
			h.End, h.Proof = EndGaveUp, ""
		case h.Proof != "":
			h.End = EndReleased
		case hd != nil && hd.TTLSeconds > 0 && !hd.QueuedAt.IsZero() &&
			tl.strictBy(h.EndRevision).Before(hd.QueuedAt.Add(time.Duration(hd.TTLSeconds)*time.Second-expirySlack)):
			h.End, h.Proof = EndReleased, ProofBeforeExpiry
		default:
			h.End = EndReleasedOrExpired
		}
		hist.Holds = append(hist.Holds, *h)
	}
	sort.SliceStable(hist.Holds, func(i, j int) bool { return hist.Holds[i].CreateRevision < hist.Holds[j].CreateRevision })
	if hist.Compacted {
		if by := tl.at(hist.From).By; by.Before(readAt) {
			hist.CompleteAfter = by
		}
	}
	return hist
}

// anchor is a timestamp tied to a revision.
type anchor struct {
	rev    int64
	t      time.Time
	strict bool // a sure upper bound (up to clock skew), not one that is off by a request
}

// timeline estimates the times of revisions from the contenders' stamps.
type timeline struct {
	lower  []anchor // time(r) >= t for r >= rev; sorted by rev, t made a running max
	upper  []anchor // time(r) <= t for r <= rev; sorted by rev, t made a running min from the end
	strict []anchor // the strict upper anchors alone, likewise
	readAt time.Time
}

func newTimeline(keys []*pastKey, readAt time.Time) *timeline {
	tl := &timeline{readAt: readAt}
	for _, p := range keys {
		hd := p.h.Holder
		if hd == nil {
			continue
		}
		if !hd.QueuedAt.IsZero() {
			tl.lower = append(tl.lower, anchor{rev: p.h.CreateRevision, t: hd.QueuedAt})
			tl.upper = append(tl.upper, anchor{rev: p.h.CreateRevision - 1, t: hd.QueuedAt})
		}
		if hd.AcquiredAt != nil {
			if p.recordedRev > 0 {
				tl.lower = append(tl.lower, anchor{rev: p.recordedRev, t: *hd.AcquiredAt})
			}
			if p.h.TakenRevision > 0 {
				a := anchor{rev: p.h.TakenRevision, t: *hd.AcquiredAt, strict: true}
				tl.upper = append(tl.upper, a)
				tl.strict = append(tl.strict, a)
			}
		}
	}
	sort.Slice(tl.lower, func(i, j int) bool { return tl.lower[i].rev < tl.lower[j].rev })
	for i := 1; i < len(tl.lower); i++ {
		if tl.lower[i].t.Before(tl.lower[i-1].t) {
			tl.lower[i].t = tl.lower[i-1].t
		}
	}
	for _, s := range []*[]anchor{&tl.upper, &tl.strict} {
		a := *s
		sort.Slice(a, func(i, j int) bool { return a[i].rev < a[j].rev })
		for i := len(a) - 2; i >= 0; i-- {
			if a[i+1].t.Before(a[i].t) {
				a[i].t = a[i+1].t
			}
		}
	}
	return tl
}

// at bounds the time of revision rev.
func (tl *timeline) at(rev int64) Span {
	s := Span{By: tl.upperBound(tl.upper, rev)}
	// The last lower anchor at or before rev.
	if i := sort.Search(len(tl.lower), func(i int) bool { return tl.lower[i].rev > rev }); i > 0 {
		s.After = tl.lower[i-1].t
	}
	return s
}

// strictBy is a sure upper bound of the time of revision rev.
func (tl *timeline) strictBy(rev int64) time.Time { return tl.upperBound(tl.strict, rev) }

func (tl *timeline) upperBound(a []anchor, rev int64) time.Time {
	// The first anchor at or after rev holds the minimum of all of them.
	if i := sort.Search(len(a), func(i int) bool { return a[i].rev >= rev }); i < len(a) && a[i].t.Before(tl.readAt) {
		return a[i].t
	}
	return tl.readAt
}

// ActiveSince returns the holds and waits that may have been going on at or
// after t: those still going, and those whose end is not known to be before
// t (an end known only to within a span is kept if the span reaches t).
func (h *History) ActiveSince(t time.Time) []PastHold {
	var out []PastHold
	for _, p := range h.Holds {
		if p.EndRevision == 0 || !p.Ended.By.Before(t) {
			out = append(out, p)
		}
	}
	return out
}

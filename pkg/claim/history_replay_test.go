package claim

import (
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// replayCase builds events by hand for replay.
type replayCase struct {
	ks     Keyspace
	events []*clientv3.Event
}

func (rc *replayCase) put(key string, create, rev int64, lease int64, h *Holder) {
	value := []byte(nil)
	if h != nil {
		value = []byte(h.encode())
	}
	rc.events = append(rc.events, &clientv3.Event{Type: clientv3.EventTypePut,
		Kv: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, ModRevision: rev, Lease: lease, Value: value}})
}

func (rc *replayCase) putRaw(key, value string, rev, lease int64) {
	rc.events = append(rc.events, &clientv3.Event{Type: clientv3.EventTypePut,
		Kv: &mvccpb.KeyValue{Key: []byte(key), CreateRevision: rev, ModRevision: rev, Lease: lease, Value: []byte(value)}})
}

func (rc *replayCase) del(key string, rev int64) {
	rc.events = append(rc.events, &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}})
}

// TestReplayTimingProof checks the timing rule at its boundary: a hold
// is "released" only if a sure upper bound of its end (the next holder's
// acquired_at) is more than expirySlack before queued_at + TTL.
func TestReplayTimingProof(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		handoff time.Duration // from the first hold's queued_at to the next one's acquired_at
		want    End
		proof   Proof
	}{
		{8900 * time.Millisecond, EndReleased, ProofBeforeExpiry},
		{9 * time.Second, EndReleasedOrExpired, ""},
		{12 * time.Second, EndReleasedOrExpired, ""},
	} {
		ks, _ := NewKeyspace("p/")
		rc := &replayCase{ks: ks}
		a := Holder{Owner: "a", QueuedAt: t0, TTLSeconds: 10, Limit: 1}
		b := Holder{Owner: "b", QueuedAt: t0.Add(time.Second), TTLSeconds: 10, Limit: 1}
		rc.put(ks.Key("x", 1), 2, 2, 1, &a)
		rc.put(ks.Key("x", 2), 3, 3, 2, &b)
		rc.del(ks.Key("x", 1), 4)
		acquired := t0.Add(tc.handoff)
		b.AcquiredAt = &acquired
		rc.put(ks.Key("x", 2), 3, 5, 2, &b)
		h := replay(ks, "x", 0, nil, rc.events, 5, t0.Add(time.Hour))
		if len(h.Holds) != 2 {
			t.Fatalf("%d holds", len(h.Holds))
		}
		first, second := h.Holds[0], h.Holds[1]
		if first.End != tc.want || first.Proof != tc.proof {
			t.Errorf("handoff after %v: end %s (%s), want %s (%s)", tc.handoff, first.End, first.Proof, tc.want, tc.proof)
		}
		if !first.Ended.By.Equal(acquired) || !first.Ended.After.Equal(b.QueuedAt) {
			t.Errorf("handoff after %v: ended %+v; want after b's queued_at, by its acquired_at", tc.handoff, first.Ended)
		}
		if second.TakenRevision != 4 || !second.TakenAt.Equal(acquired) || second.Waited != tc.handoff-time.Second || second.End != EndHolding {
			t.Errorf("handoff after %v: second hold %+v", tc.handoff, second)
		}
	}
}

// TestReplaySlotProof: a semaphore holder whose key goes before its slot key
// was released by key; one whose keys go at one revision ended with its
// lease, which proves nothing.
func TestReplaySlotProof(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ks, _ := NewKeyspace("p/")
	rc := &replayCase{ks: ks}
	for i, lease := range []int64{1, 2} {
		h := Holder{Owner: "h", QueuedAt: t0, TTLSeconds: 1, Limit: 2}
		rev := int64(2 + 2*i)
		rc.put(ks.Key("s", lease), rev, rev, lease, &h)
		rc.putRaw(ks.SlotKey("s", i), ks.Key("s", lease), rev+1, lease)
	}
	rc.del(ks.Key("s", 1), 6) // release by token: the key, then the lease
	rc.del(ks.SlotKey("s", 0), 7)
	rc.del(ks.Key("s", 2), 8) // a lease's end: both keys at once
	rc.del(ks.SlotKey("s", 1), 8)
	h := replay(ks, "s", 0, nil, rc.events, 8, t0.Add(time.Hour))
	if len(h.Holds) != 2 || h.Holds[0].Slot != 0 || h.Holds[1].Slot != 1 {
		t.Fatalf("holds %+v", h.Holds)
	}
	if h.Holds[0].End != EndReleased || h.Holds[0].Proof != ProofKeyDeleted {
		t.Errorf("key deleted before its slot key: %s (%s)", h.Holds[0].End, h.Holds[0].Proof)
	}
	if h.Holds[1].End != EndReleasedOrExpired {
		t.Errorf("keys deleted with the lease: %s", h.Holds[1].End)
	}
}

// TestActiveSince keeps what may have been going on after the cut: holds
// still there, and ends not known to be before it.
func TestActiveSince(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &History{Holds: []PastHold{
		{Entry: Entry{CreateRevision: 2}, EndRevision: 3, Ended: Span{By: t0.Add(-time.Second)}},
		{Entry: Entry{CreateRevision: 4}, EndRevision: 5, Ended: Span{After: t0.Add(-time.Hour), By: t0}},
		{Entry: Entry{CreateRevision: 6}},
	}}
	got := h.ActiveSince(t0)
	if len(got) != 2 || got[0].CreateRevision != 4 || got[1].CreateRevision != 6 {
		t.Fatalf("ActiveSince = %+v", got)
	}
}

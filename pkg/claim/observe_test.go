package claim

import (
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A claim's keys for the observe tables: the waiter's own key is own, the
// keys ahead of it are a (oldest), b and c, and behind is a waiter queued
// after it.
const (
	keyA      = "test/q/a"
	keyB      = "test/q/b"
	keyC      = "test/q/c"
	own       = "test/q/own"
	behind    = "test/q/behind"
	revA      = 10
	revB      = 11
	revC      = 12
	revOwn    = 13
	revBehind = 14
)

func kv(key string, create int64, value []byte) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, Value: value}
}

// meta is claimctl metadata for a contender using limit, with acquired_at
// set if acquired.
func meta(limit int, acquired bool) []byte {
	h := Holder{Owner: "test", Limit: limit, QueuedAt: time.Unix(1, 0).UTC()}
	if acquired {
		at := time.Unix(2, 0).UTC()
		h.AcquiredAt = &at
	}
	return []byte(h.encode())
}

func put(key string, create int64, value []byte) *clientv3.Event {
	return &clientv3.Event{Type: clientv3.EventTypePut, Kv: kv(key, create, value)}
}

func del(key string) *clientv3.Event {
	return &clientv3.Event{Type: clientv3.EventTypeDelete, Kv: kv(key, 0, nil)}
}

func (v verdict) String() string {
	switch v {
	case keepWatching:
		return "keepWatching"
	case reread:
		return "reread"
	case first:
		return "first"
	case nextGone:
		return "nextGone"
	}
	return "verdict(?)"
}

// step is one watch response and the verdict observe must give for it.
type step struct {
	events []*clientv3.Event
	want   verdict
}

func TestMutexObserve(t *testing.T) {
	// The keys ahead, as the waiter read them: next is the last of them.
	alone := []*mvccpb.KeyValue{kv(keyA, revA, meta(1, false))}
	second := []*mvccpb.KeyValue{kv(keyA, revA, meta(1, false)), kv(keyB, revB, meta(1, false))}
	cases := []struct {
		name  string
		older []*mvccpb.KeyValue
		steps []step
	}{
		{"the only key ahead deleted", alone,
			[]step{{[]*clientv3.Event{del(keyA)}, first}}},
		{"a next that is not last deleted", second,
			[]step{{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"next records its acquisition, then is deleted", second, []step{
			{[]*clientv3.Event{put(keyB, revB, meta(1, true))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, first}}},
		{"acquisition and deletion in one response", second,
			[]step{{[]*clientv3.Event{put(keyB, revB, meta(1, true)), del(keyB)}, first}}},
		{"a limit-2 holder's acquired_at put proves nothing", second, []step{
			{[]*clientv3.Event{put(keyB, revB, meta(2, true))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"a put with another create revision proves nothing", second, []step{
			{[]*clientv3.Event{put(keyB, revBehind, meta(1, true))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"a put without acquired_at (a --force mark) proves nothing", second, []step{
			{[]*clientv3.Event{put(keyB, revB, meta(1, false))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"a foreign value (etcdctl lock) proves nothing", second, []step{
			{[]*clientv3.Event{put(keyB, revB, nil)}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"metadata that is not claimctl's proves nothing", second, []step{
			{[]*clientv3.Event{put(keyB, revB, []byte(`{"acquired_at":"2026-01-01T00:00:00Z","limit":1`))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"a progress notification (no events)", alone,
			[]step{{nil, keepWatching}, {[]*clientv3.Event{del(keyA)}, first}}},
		{"events for keys it does not watch", second, []step{
			{[]*clientv3.Event{del(keyA), del(own), put(keyA, revA, meta(1, true))}, keepWatching},
			{[]*clientv3.Event{del(keyB)}, nextGone}}},
		{"the last key ahead re-created after its deletion", alone,
			[]step{{[]*clientv3.Event{del(keyA), put(keyA, revBehind, meta(1, false))}, first}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newMutexAhead(&queueView{older: tc.older, ahead: len(tc.older)})
			for i, s := range tc.steps {
				if got := a.observe(s.events); got != s.want {
					t.Fatalf("response %d: observe = %v, want %v", i, got, s.want)
				}
			}
			if h := a.holders(nil); h != nil {
				t.Fatalf("holders = %v; a mutex waiter joins nobody", h)
			}
		})
	}
}

// TestMutexObserveFromTheCreate: the view a mutex contender's create read
// holds the key just ahead alone, with the number of keys ahead. With more
// than one ahead, that key's deletion proves nothing (it may have given up
// with others still ahead) unless its holder recorded its acquisition; with
// one, it proves the turn.
func TestMutexObserveFromTheCreate(t *testing.T) {
	fromCreate := func(ahead int) *mutexAhead {
		return newMutexAhead(&queueView{older: []*mvccpb.KeyValue{kv(keyB, revB, nil)}, ahead: ahead})
	}
	if got := fromCreate(2).observe([]*clientv3.Event{del(keyB)}); got != nextGone {
		t.Errorf("two ahead, the one just ahead deleted: observe = %v, want nextGone", got)
	}
	a := fromCreate(2)
	if got := a.observe([]*clientv3.Event{put(keyB, revB, meta(1, true))}); got != keepWatching {
		t.Errorf("two ahead, the one just ahead records its acquisition: observe = %v, want keepWatching", got)
	}
	if got := a.observe([]*clientv3.Event{del(keyB)}); got != first {
		t.Errorf("two ahead, the one just ahead deleted after recording its acquisition: observe = %v, want first", got)
	}
	if got := fromCreate(1).observe([]*clientv3.Event{del(keyB)}); got != first {
		t.Errorf("one ahead, deleted: observe = %v, want first", got)
	}
}

func TestSemaphoreObserve(t *testing.T) {
	// Limit 2, with a, b and c ahead: the waiter is eligible once two of
	// them are gone.
	older := []*mvccpb.KeyValue{kv(keyA, revA, meta(2, true)), kv(keyB, revB, meta(2, true)), kv(keyC, revC, meta(2, false))}
	cases := []struct {
		name   string
		steps  []step
		joined []string // the holders still ahead once first
	}{
		{"one of three gone", []step{{[]*clientv3.Event{del(keyA)}, keepWatching}}, nil},
		{"two of three gone, one at a time", []step{
			{[]*clientv3.Event{del(keyA)}, keepWatching},
			{[]*clientv3.Event{del(keyC)}, first}}, []string{keyB}},
		{"two of three gone in one response", []step{{[]*clientv3.Event{del(keyB), del(keyA)}, first}}, []string{keyC}},
		{"all three gone", []step{{[]*clientv3.Event{del(keyA), del(keyB), del(keyC)}, first}}, []string{}},
		{"the waiter's own key deleted", []step{{[]*clientv3.Event{del(own)}, reread}}, nil},
		{"its own key deleted after enough ahead went", []step{{[]*clientv3.Event{del(keyA), del(keyB), del(own)}, reread}}, nil},
		{"its own key deleted before enough ahead went", []step{{[]*clientv3.Event{del(own), del(keyA), del(keyB)}, reread}}, nil},
		{"a waiter behind gave up", []step{
			{[]*clientv3.Event{del(behind)}, keepWatching},
			{[]*clientv3.Event{del(keyA)}, keepWatching}}, nil},
		{"one key ahead deleted twice counts once", []step{
			{[]*clientv3.Event{del(keyA)}, keepWatching},
			{[]*clientv3.Event{del(keyA)}, keepWatching}}, nil},
		{"puts prove nothing (the watch filters them)", []step{
			{[]*clientv3.Event{put(keyA, revA, meta(2, true)), put(own, revOwn, meta(2, false))}, keepWatching}}, nil},
		{"a progress notification (no events)", []step{{nil, keepWatching}}, nil},
	}
	c := &Client{keys: Keyspace{prefix: "test/"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newSemaphoreAhead(own, older, 2)
			var got verdict
			for i, s := range tc.steps {
				if got = a.observe(s.events); got != s.want {
					t.Fatalf("response %d: observe = %v, want %v", i, got, s.want)
				}
			}
			if got != first {
				return
			}
			var keys []string
			for _, e := range a.holders(c) {
				keys = append(keys, e.Key)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.joined) {
				t.Fatalf("holders = %v, want %v", keys, tc.joined)
			}
		})
	}
}

// TestCreateViewTakesOnlyWhatACreateImplies: a mutex waiter watches from its
// create's read only when the reply is what the create implies (its own
// key newest, the key just ahead older, a count that More agrees with);
// anything else, and wait reads the queue itself.
func TestCreateViewTakesOnlyWhatACreateImplies(t *testing.T) {
	c := &Client{}
	h := &Hold{Revision: revOwn}
	reply := func(count int64, more bool, kvs ...*mvccpb.KeyValue) *clientv3.TxnResponse {
		r := &etcdserverpb.RangeResponse{Kvs: kvs, Count: count, More: more}
		return &clientv3.TxnResponse{Header: &etcdserverpb.ResponseHeader{Revision: revOwn},
			Responses: []*etcdserverpb.ResponseOp{{}, {}, {Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: r}}}}
	}
	mutex := AcquireOptions{Limit: 1}
	if v := c.createView(h, mutex, reply(3, true, kv(own, revOwn, nil), kv(keyB, revB, nil)), nil); v == nil || v.ahead != 2 || string(v.older[0].Key) != keyB || v.rev != revOwn {
		t.Fatalf("a create behind two keys: view %+v, want key b to watch, 2 ahead, at the create's revision", v)
	}
	if v := c.createView(h, mutex, reply(2, false, kv(own, revOwn, nil), kv(keyA, revA, nil)), nil); v == nil || v.ahead != 1 {
		t.Fatalf("a create behind one key: view %+v, want 1 ahead", v)
	}
	for name, resp := range map[string]*clientv3.TxnResponse{
		"a count that More contradicts": reply(2, true, kv(own, revOwn, nil), kv(keyB, revB, nil)),
		"more keys than the count says": reply(3, false, kv(own, revOwn, nil), kv(keyB, revB, nil)),
		"one key only":                  reply(1, false, kv(own, revOwn, nil)),
		"the newest key not its own":    reply(3, true, kv(behind, revBehind, nil), kv(own, revOwn, nil)),
		"the key ahead not older":       reply(3, true, kv(own, revOwn, nil), kv(behind, revBehind, nil)),
		"no range at all":               {Header: &etcdserverpb.ResponseHeader{}, Responses: []*etcdserverpb.ResponseOp{{}, {}}},
	} {
		if v := c.createView(h, mutex, resp, nil); v != nil {
			t.Errorf("%s: view %+v; want none, so that wait reads the queue", name, v)
		}
	}
	if v := c.createView(h, AcquireOptions{Limit: 2}, reply(3, true, kv(own, revOwn, nil), kv(keyB, revB, nil)), nil); v != nil {
		t.Errorf("a semaphore: view %+v; want none (it needs every key ahead)", v)
	}
}

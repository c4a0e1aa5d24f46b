package claim_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/boottime"
	"github.com/claimctl/claimctl/pkg/claim"
)

// stored reads the JSON metadata stored in key.
func (c *cluster) stored(key string) map[string]any {
	c.t.Helper()
	resp, err := c.admin.Get(ctxT(c.t, 5*time.Second), key)
	if err != nil || len(resp.Kvs) != 1 {
		c.t.Fatalf("read %s: %v, %v", key, resp, err)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		c.t.Fatalf("%s holds %q: %v", key, resp.Kvs[0].Value, err)
	}
	return m
}

// TestCallerMetadataNeverReachesEtcd: invariant "acquired_at means first"
// (see the package doc, "Waiting and handoff"). A caller's Holder that
// carries acquired_at and forced_by, say one copied from a status entry,
// must not store them: the key of a waiter would claim an acquisition, and
// a holder's a removal with --force, that never happened. Neither the
// holder's nor the waiter's key has them; the waiter's acquired_at is
// claimctl's own, written by RecordAcquired once it holds.
func TestCallerMetadataNeverReachesEtcd(t *testing.T) {
	c := newCluster(t)
	o := opts("metadata")
	forged := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	o.Holder.AcquiredAt, o.Holder.ForcedBy = &forged, "mallory@test"
	start := time.Now().UTC().Truncate(time.Millisecond)

	holder, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
	if err != nil {
		t.Fatal(err)
	}
	waiting := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
	st, err := c.claims(nil).Status(ctxT(t, 5*time.Second), "metadata")
	if err != nil || len(st.Waiters) != 1 {
		t.Fatalf("status: %+v, %v; want one waiter", st, err)
	}
	for who, key := range map[string]string{"the holder": holder.Key, "the waiter": st.Waiters[0].Key} {
		m := c.stored(key)
		for _, field := range []string{"acquired_at", "forced_by"} {
			if v, ok := m[field]; ok {
				t.Errorf("%s's key stores the caller's %s %v", who, field, v)
			}
		}
		if m["owner"] != "test" {
			t.Errorf("%s's key stores owner %v; want the caller's test", who, m["owner"])
		}
	}
	if holder.Holder.AcquiredAt != nil || holder.Holder.ForcedBy != "" {
		t.Errorf("the uncontended hold reports the caller's acquired_at %v or forced_by %q", holder.Holder.AcquiredAt, holder.Holder.ForcedBy)
	}

	if err := holder.Release(); err != nil {
		t.Fatal(err)
	}
	r := recv(t, waiting, "the waiter")
	if r.err != nil {
		t.Fatal(r.err)
	}
	w := r.hold
	if w.Holder.AcquiredAt == nil || w.Holder.AcquiredAt.Before(start) || w.Holder.ForcedBy != "" {
		t.Fatalf("the hold that waited reports acquired_at %v, forced_by %q; want its own acquisition, after %v, and no forced_by", w.Holder.AcquiredAt, w.Holder.ForcedBy, start)
	}
	if err := w.RecordAcquired(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	m := c.stored(w.Key)
	if got, want := m["acquired_at"], w.Holder.AcquiredAt.Format(time.RFC3339Nano); got != want {
		t.Errorf("recorded acquired_at %v, want the hold's own %v", got, want)
	}
	if v, ok := m["forced_by"]; ok {
		t.Errorf("the recorded key stores the caller's forced_by %v", v)
	}
}

// TestAWaitedHoldOutlivesMinLifeAfterWait: a hold handed over by a release
// is proven alive for more than MinLifeAfterWait(TTL) when Acquire returns
// (invariant "life after wait"), for a mutex and for a semaphore, whose
// holder also takes a slot after proving its turn.
func TestAWaitedHoldOutlivesMinLifeAfterWait(t *testing.T) {
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			c := newCluster(t)
			o := opts("life")
			o.Limit = limit
			var holders []*claim.Hold
			for range limit {
				h, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
				if err != nil {
					t.Fatal(err)
				}
				holders = append(holders, h)
			}
			waiting := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
			if err := holders[0].Release(); err != nil {
				t.Fatal(err)
			}
			r := recv(t, waiting, "the waiter")
			if r.err != nil {
				t.Fatal(r.err)
			}
			if left, least := boottime.Until(r.hold.Expiry()), claim.MinLifeAfterWait(r.hold.TTL); left <= least {
				t.Fatalf("the hold that waited is proven alive for %v more; want more than MinLifeAfterWait(%v) = %v", left, r.hold.TTL, least)
			}
		})
	}
	// Third in line behind a hold that never recorded its acquisition: the
	// watch proves nothing, and the waiter takes its turn from a re-read of
	// the queue, renewing only if its proof is old. Either way, the same
	// promise.
	t.Run("limit 1, behind a hold that left no record", func(t *testing.T) {
		c := newCluster(t)
		o := opts("life-unrecorded")
		holder, err := c.claims(nil).Acquire(ctxT(t, 10*time.Second), o)
		if err != nil {
			t.Fatal(err)
		}
		second := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
		third := acquireAsync(t, ctxT(t, 30*time.Second), c.claims(nil), o)
		if err := holder.Release(); err != nil {
			t.Fatal(err)
		}
		r := recv(t, second, "the second in line")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if err := r.hold.Release(); err != nil {
			t.Fatal(err)
		}
		r = recv(t, third, "the third in line")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if left, least := boottime.Until(r.hold.Expiry()), claim.MinLifeAfterWait(r.hold.TTL); left <= least {
			t.Fatalf("the hold that waited is proven alive for %v more; want more than MinLifeAfterWait(%v) = %v", left, r.hold.TTL, least)
		}
	})
}

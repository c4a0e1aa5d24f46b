//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The oracles every fault scenario checks (issue: "prove it under faults").
//
//  1. No overlap: no two holders of a mutex (no more than limit of a
//     semaphore) ran at once, from the intervals the children recorded on
//     one clock.
//  2. Tokens: fencing tokens strictly increase in acquisition order, and
//     each token printed was really an owner in etcd's history of the claim.
//  3. Nothing lost: the fenced store ends with every acknowledged write.
//  4. Nothing leaked: no key and no lease of the test remains.

// interval is one child's run: from its start to its end, or to its last
// sign of life when it was killed.
type interval struct {
	label      string
	start, end int64
	fence      int64
}

func (r record) intervals() []interval {
	var out []interval
	for label, start := range r.starts {
		end := r.ends[label]
		if end == 0 {
			end = max(r.lastAlive[label], start)
		}
		out = append(out, interval{label: label, start: start, end: end, fence: r.fences[label]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// checkNoOverlap fails if more than limit recorded intervals were open at
// once. A killed child's interval ends at its last sign of life, so this is
// exact for children that ended normally and a lower bound otherwise; the
// E2E_MUST_BE_DEAD check covers killed children directly.
func checkNoOverlap(t *testing.T, r record, limit int) {
	t.Helper()
	type edge struct {
		at    int64
		delta int
		label string
	}
	var edges []edge
	for _, iv := range r.intervals() {
		edges = append(edges, edge{iv.start, +1, iv.label}, edge{iv.end, -1, iv.label})
	}
	// Ends sort before starts at the same instant: touching is not overlap.
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	open := 0
	for _, e := range edges {
		open += e.delta
		if open > limit {
			t.Fatalf("oracle 1 (no overlap): %d holders ran at once (limit %d) when %s started", open, limit, e.label)
		}
	}
	if len(r.overlaps) > 0 {
		t.Fatalf("oracle 1 (no overlap): a child started while its predecessor lived: %v", r.overlaps)
	}
}

// checkTokensRise fails unless, for a mutex, fencing tokens strictly
// increase in the order the children started.
func checkTokensRise(t *testing.T, r record) {
	t.Helper()
	var prev interval
	for i, iv := range r.intervals() {
		if iv.fence <= 0 {
			t.Fatalf("oracle 2 (tokens): %s recorded no fencing token", iv.label)
		}
		if i > 0 && iv.fence <= prev.fence {
			t.Fatalf("oracle 2 (tokens): %s started after %s with fencing token %d, not above %d", iv.label, prev.label, iv.fence, prev.fence)
		}
		prev = iv
	}
}

// checkTokensOwnedInHistory replays etcd's history of the claim's keys from
// revision 1 and fails unless each recorded token was, at some revision,
// among the limit oldest keys of the claim (an owner). It needs the history
// uncompacted.
func checkTokensOwnedInHistory(t *testing.T, cli *clientv3.Client, claimPrefix string, limit int, r record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	head, err := cli.Get(ctx, "e2e-history-probe")
	if err != nil {
		t.Fatal(err)
	}
	owners := map[int64]bool{}
	live := map[string]int64{} // key -> create revision
	markOwners := func() {
		revs := make([]int64, 0, len(live))
		for _, rev := range live {
			revs = append(revs, rev)
		}
		sort.Slice(revs, func(i, j int) bool { return revs[i] < revs[j] })
		for i := 0; i < len(revs) && i < limit; i++ {
			owners[revs[i]] = true
		}
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	ch := cli.Watch(wctx, claimPrefix, clientv3.WithPrefix(), clientv3.WithRev(1))
	for done := false; !done; {
		select {
		case wr, ok := <-ch:
			if !ok || wr.Err() != nil {
				t.Fatalf("oracle 2: reading the claim's history: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					delete(live, string(ev.Kv.Key))
				} else if ev.IsCreate() {
					live[string(ev.Kv.Key)] = ev.Kv.CreateRevision
				}
				markOwners()
				if ev.Kv.ModRevision >= head.Header.Revision {
					done = true
				}
			}
			if wr.Header.Revision >= head.Header.Revision && len(wr.Events) == 0 {
				done = true
			}
		case <-ctx.Done():
			t.Fatal("oracle 2: timed out reading the claim's history")
		}
	}
	for label, fence := range r.fences {
		if !owners[fence] {
			t.Fatalf("oracle 2 (tokens): %s ran with fencing token %d, which never owned the claim in etcd's history", label, fence)
		}
	}
}

// fencedWrite is the protected resource: a file that accepts a write only
// with a fencing token at least as high as any it has seen. Its own
// consistency comes from flock, not from claimctl.
func fencedWrite(path, label string, fence int64) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return false, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	var highest int64
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) == 2 {
			if n, _ := strconv.ParseInt(fields[1], 10, 64); n > highest {
				highest = n
			}
		}
	}
	if fence < highest {
		return false, nil
	}
	_, err = fmt.Fprintf(f, "%s %d\n", label, fence)
	return err == nil, err
}

// checkStoreKeptAcks fails unless every write the store acknowledged is in
// it.
func checkStoreKeptAcks(t *testing.T, store string, r record) {
	t.Helper()
	b, err := os.ReadFile(store)
	if err != nil && len(r.acks) > 0 {
		t.Fatalf("oracle 3 (nothing lost): %v", err)
	}
	for label, fence := range r.acks {
		if !strings.Contains(string(b), fmt.Sprintf("%s %d\n", label, fence)) {
			t.Fatalf("oracle 3 (nothing lost): %s's acknowledged write (fence %d) is missing from the store", label, fence)
		}
	}
}

// checkNothingLeaked waits up to within for every key under prefix and every
// lease to be gone.
func checkNothingLeaked(t *testing.T, cli *clientv3.Client, prefix string, within time.Duration) {
	t.Helper()
	var keys []string
	var leases int
	waitFor(t, within, "no keys and no leases to remain", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return false
		}
		keys = keys[:0]
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		ls, err := cli.Leases(ctx)
		if err != nil {
			return false
		}
		leases = len(ls.Leases)
		return len(keys) == 0 && leases == 0
	})
}

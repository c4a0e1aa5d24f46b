package etcdtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The tests in this file check, directly on the server, the etcd behaviours
// that pkg/claim relies on, so that a release that differs (run them with
// EtcdEnv set; scripts/compat.sh does) fails here by name rather than
// somewhere inside the protocol tests.

// TestServerProgressAfterStoredEvents: pkg/claim/history.go watches from a
// past revision and takes a requested progress notification at revision R
// to mean every stored event up to R has been delivered. etcd before the
// fix of etcd issue 15220 (PR 15237, backported to 3.4 and 3.5) answers
// RequestProgress at once with the current revision, even while the watch
// is still sending stored events.
func TestServerProgressAfterStoredEvents(t *testing.T) {
	m := Start(t)
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 20
	var first, last int64
	for i := range n {
		resp, err := cli.Put(ctx, "p/k", "v")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = resp.Header.Revision
		}
		last = resp.Header.Revision
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cli.Watch(wctx, "p/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithCreatedNotify())
	seen := 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	created := false
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("no progress notification at revision >= %d after %d of %d events", last, seen, n)
		case <-tick.C:
			if created {
				_ = cli.RequestProgress(wctx)
			}
		case wr, ok := <-wch:
			if !ok {
				t.Fatal("watch closed")
			}
			if wr.Created {
				created = true
			}
			seen += len(wr.Events)
			if wr.IsProgressNotify() && wr.Header.Revision >= last {
				if seen < n {
					t.Fatalf("progress notification at revision %d after only %d of the %d stored events up to %d", wr.Header.Revision, seen, n, last)
				}
				return
			}
		}
	}
}

// TestServerTxnOnMissingLease: pkg/claim/acquire.go sends its create
// transaction together with the grant of a lease ID it chose; if the grant
// has not happened, the Put on the lease must fail the whole transaction
// with "lease not found", writing nothing.
func TestServerTxnOnMissingLease(t *testing.T) {
	m := Start(t)
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision("k"), "=", 0)).
		Then(clientv3.OpPut("k", "v", clientv3.WithLease(0x1234abcd)), clientv3.OpPut("other", "v")).
		Commit()
	if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("txn with a Put on a missing lease = %v, want %v", err, rpctypes.ErrLeaseNotFound)
	}
	resp, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("after the failed txn: %v keys (%v), want none", resp.Count, err)
	}
}

// TestServerClientChosenLeaseID: LeaseGrant with an ID the client chose
// grants exactly that ID, and a second grant of it is refused.
func TestServerClientChosenLeaseID(t *testing.T) {
	m := Start(t)
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const id = 0x5eed0001
	leases := clientv3.RetryLeaseClient(cli)
	grant := &etcdserverpb.LeaseGrantRequest{TTL: 5, ID: id}
	if resp, err := leases.LeaseGrant(ctx, grant); err != nil || resp.ID != id {
		t.Fatalf("grant of chosen ID %x = %v, %v", id, resp, err)
	}
	ttl, err := cli.TimeToLive(ctx, id)
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("TimeToLive(%x) = %v, %v; want the granted lease", id, ttl, err)
	}
	if _, err := leases.LeaseGrant(ctx, grant); !errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseExist) {
		t.Fatalf("second grant of %x = %v, want %v", id, err, rpctypes.ErrLeaseExist)
	}
}

// TestServerCompactedWatch: a watch from a compacted revision is answered
// with the compact revision (pkg/claim/history.go reads from there again).
func TestServerCompactedWatch(t *testing.T) {
	m := Start(t)
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last int64
	for range 3 {
		resp, err := cli.Put(ctx, "c/k", "v")
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	if _, err := cli.Compact(ctx, last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "c/k", clientv3.WithRev(1)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Errorf("get at a compacted revision = %v, want %v", err, rpctypes.ErrCompacted)
	}
	wr := <-cli.Watch(clientv3.WithRequireLeader(ctx), "c/", clientv3.WithPrefix(), clientv3.WithRev(1))
	if wr.CompactRevision != last {
		t.Errorf("watch from revision 1: CompactRevision = %d (err %v), want %d", wr.CompactRevision, wr.Err(), last)
	}
}

package claim_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/claim"
)

// lateGrants holds every LeaseGrant back until release is closed, so that
// the create transaction reaches etcd first.
type lateGrants struct {
	etcdserverpb.LeaseClient
	release <-chan struct{}
	grants  atomic.Int64
}

func (l *lateGrants) LeaseGrant(ctx context.Context, in *etcdserverpb.LeaseGrantRequest, opts ...grpc.CallOption) (*etcdserverpb.LeaseGrantResponse, error) {
	select {
	case <-l.release:
	case <-time.After(10 * time.Second):
		return nil, errors.New("test: the create transaction never came back")
	}
	l.grants.Add(1)
	return l.LeaseClient.LeaseGrant(ctx, in, opts...)
}

// TestAcquireCreateOvertakingTheGrant: the grant and the create are sent
// together (grantAndCreate); when the create reaches etcd before the grant,
// etcd refuses it whole (its lease does not exist yet), and the create is
// sent again once the grant is applied. The hold is then as usual, with
// exactly one key and one lease, at one more Txn.
func TestAcquireCreateOvertakingTheGrant(t *testing.T) {
	c := newCluster(t)
	txnDone := make(chan struct{})
	var once sync.Once
	var txns atomic.Int64
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(
			func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				err := invoker(ctx, method, req, reply, cc, opts...)
				if method == "/etcdserverpb.KV/Txn" {
					txns.Add(1)
					once.Do(func() { close(txnDone) })
				}
				return err
			})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	cc, err := claim.New(cli, claim.Options{Prefix: "claimctl/"})
	if err != nil {
		t.Fatal(err)
	}
	late := &lateGrants{release: txnDone}
	cc.WrapLeases(func(l etcdserverpb.LeaseClient) etcdserverpb.LeaseClient { late.LeaseClient = l; return late })

	h, err := cc.Acquire(ctxT(t, 15*time.Second), opts("overtaken"))
	if err != nil {
		t.Fatalf("acquire with the create ahead of the grant: %v", err)
	}
	if n, g := txns.Load(), late.grants.Load(); n != 2 || g != 1 {
		t.Fatalf("%d Txns and %d grants; want the create twice (refused, then sent again) and one grant", n, g)
	}
	resp, err := c.admin.Get(ctxT(t, 5*time.Second), "claimctl/overtaken/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != h.Lease || resp.Kvs[0].CreateRevision != h.Revision {
		t.Fatalf("keys after the acquire: %v (%v); want only the hold's, on its lease, created at its fencing token", resp.Kvs, err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestAcquireLeaseIDCollision: the lease ID Acquire picks is taken by
// someone else's lease (1 in 2^63, forced here). The create attached the
// key to that lease; the grant fails; the key is deleted and Acquire starts
// again with a new ID. The other lease is left alone, and nothing of this
// attempt is left on it.
func TestAcquireLeaseIDCollision(t *testing.T) {
	c := newCluster(t)
	const taken = clientv3.LeaseID(0x7a11e1)
	raw := etcdserverpb.NewLeaseClient(c.admin.ActiveConnection())
	if _, err := raw.LeaseGrant(ctxT(t, 5*time.Second), &etcdserverpb.LeaseGrantRequest{TTL: 60, ID: int64(taken)}); err != nil {
		t.Fatalf("grant the other lease: %v", err)
	}
	defer claim.SetLeaseIDs(taken)()

	cc, err := claim.New(c.etcd(nil), claim.Options{Prefix: "claimctl/"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cc.Acquire(ctxT(t, 15*time.Second), opts("collide"))
	if err != nil {
		t.Fatalf("acquire with a colliding lease ID: %v", err)
	}
	if h.Lease == int64(taken) {
		t.Fatalf("the hold uses the other lease %x", taken)
	}
	ttl, err := c.admin.TimeToLive(ctxT(t, 5*time.Second), taken, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 0 {
		t.Fatalf("the other lease after the collision: %+v, %v; want it alive with no key attached", ttl, err)
	}
	resp, err := c.admin.Get(ctxT(t, 5*time.Second), "claimctl/collide/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != h.Lease {
		t.Fatalf("keys after the acquire: %v (%v); want only the hold's", resp.Kvs, err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

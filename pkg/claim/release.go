package claim

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// checkCluster refuses a token minted by another etcd cluster: its lease and
// revision numbers mean nothing here and must not be applied.
func (c *Client) checkCluster(op string, t Token, clusterID uint64) error {
	if clusterID != 0 && clusterID != t.ClusterID {
		return fmt.Errorf("%s: %w: the token is from etcd cluster %x, but the endpoints serve cluster %x; use the endpoints the token was acquired from",
			op, ErrNotHeld, t.ClusterID, clusterID)
	}
	return nil
}

// RenewResult reports a successful renewal.
type RenewResult struct {
	Token Token
	// TTL is the lease's granted TTL: the hold now lasts at least this long.
	TTL time.Duration
}

// lookup reads the token's key. It checks the cluster before anything is
// changed: a token minted by another cluster can carry the very same lease
// ID and revision (fresh clusters with the same peer URLs number alike), and
// must not touch this cluster's claims. It returns ErrNotHeld when the key
// does not have the token's create revision and lease; absent tells whether
// the key is gone altogether.
func (c *Client) lookup(ctx context.Context, op string, t Token) (absent bool, err error) {
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Get(rctx, t.Key())
	cancel()
	if err != nil {
		return false, c.etcdError(op, err)
	}
	if err := c.checkCluster(op, t, resp.Header.ClusterId); err != nil {
		return false, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != t.Revision || resp.Kvs[0].Lease != t.Lease {
		return len(resp.Kvs) == 0, fmt.Errorf("%s: %w: the token's hold (fencing token %d) has ended already (released, expired, or removed with --force)", op, ErrNotHeld, t.Revision)
	}
	return false, nil
}

// Renew extends the hold named by t and verifies the claim is still held by
// it: the key must still have the token's create revision and lease, and the
// lease must still exist. Anything else fails with ErrNotHeld.
func (c *Client) Renew(ctx context.Context, t Token) (RenewResult, error) {
	op := "renew " + t.Name
	if absent, err := c.lookup(ctx, op, t); err != nil {
		if absent {
			// The hold is over but its lease may live on with nothing
			// attached (removed with --force): do not leave it behind.
			c.revokeIfBare(ctx, clientv3.LeaseID(t.Lease))
		}
		return RenewResult{}, err
	}
	rctx, cancel := c.request(ctx)
	ka, err := c.etcd.KeepAliveOnce(rctx, clientv3.LeaseID(t.Lease))
	cancel()
	switch {
	case isLeaseNotFound(err):
		return RenewResult{}, fmt.Errorf("%s: %w: lease %x has expired or was revoked; acquire the claim again", op, ErrNotHeld, t.Lease)
	case err != nil:
		return RenewResult{}, c.etcdError(op, err)
	}
	return RenewResult{Token: t, TTL: time.Duration(ka.TTL) * time.Second}, nil
}

// revokeIfBare revokes lease only if no key is attached to it. A token whose
// key is absent may still name a live lease: one whose name or prefix part
// was edited names another hold's lease, and revoking that would delete the
// other hold's key. Only a lease left with nothing attached is cleaned up.
func (c *Client) revokeIfBare(ctx context.Context, lease clientv3.LeaseID) {
	rctx, cancel := c.request(ctx)
	ttl, err := c.etcd.TimeToLive(rctx, lease, clientv3.WithAttachedKeys())
	cancel()
	if err != nil || ttl.TTL < 0 || len(ttl.Keys) > 0 {
		return
	}
	_ = c.revoke(lease)
}

// Release ends the hold named by t, and only that hold: the key is deleted
// only if it still has the token's create revision and lease, so a stale,
// repeated or foreign token deletes nothing and gets ErrNotHeld. When two
// processes release one token at once, exactly one succeeds. The lease is
// then revoked so that nothing is left behind.
func (c *Client) Release(ctx context.Context, t Token) error {
	op := "release " + t.Name
	if _, err := c.lookup(ctx, op, t); err != nil {
		return err
	}
	key := t.Key()
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", t.Revision),
			clientv3.Compare(clientv3.LeaseValue(key), "=", clientv3.LeaseID(t.Lease))).
		Then(clientv3.OpDelete(key)).
		Commit()
	cancel()
	if err != nil {
		return c.etcdError(op, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s: %w: the token's hold (fencing token %d) has ended already (released, expired, or removed with --force)", op, ErrNotHeld, t.Revision)
	}
	// The key is gone: the claim is released. A failure to revoke leaves a
	// lease with no keys that expires by itself, so it is not an error.
	_ = c.revoke(clientv3.LeaseID(t.Lease))
	return nil
}

// ForceRelease removes the current holders of claim name, whoever they are,
// for an administrator; by names who did it. Waiters stay queued. It returns
// the removed holders. Each removal first records by in the holder's
// metadata (so the holder can report who removed it) and is guarded by the
// holder's create revision, so that a holder that changed meanwhile is not
// removed by mistake.
func (c *Client) ForceRelease(ctx context.Context, name, by string) ([]Entry, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	op := "release --force " + name
	st, err := c.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	var removed []Entry
	for _, e := range st.Holders {
		same := clientv3.Compare(clientv3.CreateRevision(e.Key), "=", e.CreateRevision)
		if e.Holder != nil {
			// Invariant "acquired_at means first": the mark re-puts a
			// holder's value as stored (its acquired_at included) and
			// guarded by its create revision, so it never writes into a
			// younger key under the same name.
			marked := *e.Holder
			marked.ForcedBy = by
			rctx, cancel := c.request(ctx)
			_, err := c.etcd.Txn(rctx).If(same).
				Then(clientv3.OpPut(e.Key, marked.encode(), clientv3.WithIgnoreLease())).Commit()
			cancel()
			if err != nil {
				return removed, c.etcdError(op, err)
			}
		}
		rctx, cancel := c.request(ctx)
		resp, err := c.etcd.Txn(rctx).If(same).Then(clientv3.OpDelete(e.Key)).Commit()
		cancel()
		if err != nil {
			return removed, c.etcdError(op, err)
		}
		if !resp.Succeeded {
			continue
		}
		removed = append(removed, e.Entry)
		if e.Lease != 0 {
			_ = c.revoke(clientv3.LeaseID(e.Lease))
		}
	}
	return removed, nil
}

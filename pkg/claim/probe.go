package claim

import (
	"context"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// probeName is the name part of ProbeWrite's key. It contains a space,
// which ValidateName refuses in every claim name, so the probe can never
// write into a claim's range, and List and Status, which parse only valid
// names, never show it.
const probeName = "doctor check"

// ProbeKey returns the key ProbeWrite writes on lease.
func (ks Keyspace) ProbeKey(lease int64) string {
	return ks.prefix + probeName + "/" + strconv.FormatInt(lease, 16)
}

// ProbeWrite proves that the client may write under its prefix, as a claim
// would: it grants a 5-second lease, puts ProbeKey on it, deletes the key
// and revokes the lease. The lease removes the key even if the delete
// fails, so a failed probe leaves nothing for long. Errors are classified
// like every other request's (ErrPermission, ErrUnavailable).
func (c *Client) ProbeWrite(ctx context.Context) error {
	const op = "write check"
	rctx, cancel := c.request(ctx)
	defer cancel()
	lease, err := c.etcd.Grant(rctx, 5)
	if err != nil {
		return c.etcdError(op, err)
	}
	defer func() { _ = c.revoke(lease.ID) }()
	key := c.keys.ProbeKey(int64(lease.ID))
	if _, err := c.etcd.Put(rctx, key, "claimctl doctor", clientv3.WithLease(lease.ID)); err != nil {
		return c.etcdError(op, err)
	}
	if _, err := c.etcd.Delete(rctx, key); err != nil {
		return c.etcdError(op, err)
	}
	return nil
}

package claim

import (
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SetLeaseIDs makes the next Acquires use ids as their lease IDs, in order,
// then random ones again; it returns a function that restores the default.
// For tests that force an ID collision.
func SetLeaseIDs(ids ...clientv3.LeaseID) (restore func()) {
	saved := newLeaseID
	newLeaseID = func() clientv3.LeaseID {
		if len(ids) == 0 {
			return saved()
		}
		id := ids[0]
		ids = ids[1:]
		return id
	}
	return func() { newLeaseID = saved }
}

// WrapLeases replaces c's raw lease client (the grant of grantAndCreate)
// with wrap(the current one).
func (c *Client) WrapLeases(wrap func(etcdserverpb.LeaseClient) etcdserverpb.LeaseClient) {
	c.leases = wrap(c.leases)
}

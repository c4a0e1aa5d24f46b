package claim

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Enclosing is what one read proved about a hold named by a token that this
// process inherited (a `claimctl run` further up holds it).
type Enclosing struct {
	Token Token
	// OtherCluster is true when the endpoints serve another etcd cluster
	// than the one the token is from: the token names another claim, and
	// nothing else below is meaningful.
	OtherCluster bool
	// Held is true when the token's key still exists with its create
	// revision and lease, as of Revision.
	Held bool
	// Holder is the key's metadata when Held (nil for a key without
	// claimctl metadata).
	Holder *Holder
	// Slot is the hold's slot (0 for a mutex), and SlotName its name for
	// named slots.
	Slot     int
	SlotName string
	// Revision is the etcd revision of the read.
	Revision int64
}

// Limit is the enclosing hold's slot limit (1 without metadata).
func (e Enclosing) Limit() int {
	return Entry{Holder: e.Holder}.limit()
}

// ProveEnclosing reads the key of an inherited hold once, linearizably, to
// prove whether it is still held now. A nested run joins an enclosing hold
// only on that proof: an environment copied into a process that outlived
// its run (setsid, a stale shell) names a hold that ended, and acting on it
// would skip the claim's later holder. The key's presence with the token's
// create revision and lease proves the hold: a key that was once among the
// first Limit stays there while it exists, since every newer key is
// younger. (A lease can expire up to etcd's next revocation pass before its
// key goes, but the enclosing run stops its command before the lease can
// expire at all, and a joining process is inside that command.)
func (c *Client) ProveEnclosing(ctx context.Context, t Token) (Enclosing, error) {
	rctx, cancel := c.request(ctx)
	tresp, err := c.etcd.Txn(rctx).Then(
		clientv3.OpGet(t.Key()),
		clientv3.OpGet(c.keys.SlotPrefix(t.Name), clientv3.WithPrefix())).Commit()
	cancel()
	if err != nil {
		return Enclosing{}, c.etcdError(fmt.Sprintf("check the enclosing hold of %s", t.Name), err)
	}
	resp := tresp.Responses[0].GetResponseRange()
	e := Enclosing{Token: t, Revision: tresp.Header.Revision}
	if tresp.Header.ClusterId != 0 && tresp.Header.ClusterId != t.ClusterID {
		e.OtherCluster = true
		return e, nil
	}
	if len(resp.Kvs) == 1 && resp.Kvs[0].CreateRevision == t.Revision && resp.Kvs[0].Lease == t.Lease {
		e.Held = true
		e.Holder = decodeHolder(resp.Kvs[0].Value)
		for _, kv := range tresp.Responses[1].GetResponseRange().Kvs {
			if _, i, ok := c.keys.ParseSlot(string(kv.Key)); ok && kv.Lease == t.Lease {
				e.Slot = i
			}
		}
		if e.Holder != nil && e.Slot < len(e.Holder.Slots) {
			e.SlotName = e.Holder.Slots[e.Slot]
		}
	}
	return e, nil
}

package claim

import (
	"context"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// HolderInfo is a holder with its lease's remaining time.
type HolderInfo struct {
	Entry
	// Remaining is the lease's remaining TTL as etcd reports it (whole
	// seconds); -1 when unknown.
	Remaining time.Duration
}

// Status is one claim's holders and queue.
type Status struct {
	Name     string
	Limit    int
	Holders  []HolderInfo
	Waiters  []Entry // in queue order
	Revision int64   // the etcd revision the status was read at
}

// Status reads claim name: its holders (with their slots and remaining TTL)
// and its waiters in queue order. The contenders and the slot keys are read
// in one transaction, at one revision.
func (c *Client) Status(ctx context.Context, name string) (Status, error) {
	if err := ValidateName(name); err != nil {
		return Status{}, err
	}
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Txn(rctx).Then(
		clientv3.OpGet(c.keys.ClaimPrefix(name), clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
		c.readSlots(name)).Commit()
	cancel()
	if err != nil {
		return Status{}, c.etcdError("status "+name, err)
	}
	st := Status{Name: name, Limit: 1, Revision: resp.Header.Revision}
	entries := c.entries(resp.Responses[0].GetResponseRange().Kvs)
	if len(entries) > 0 {
		st.Limit = entries[0].limit()
	}
	n := min(st.Limit, len(entries))
	assignSlots(entries[:n], st.Limit, c.slotView(name, resp.Responses[1].GetResponseRange().Kvs, resp.Header.Revision))
	st.Holders = make([]HolderInfo, n)
	var wg sync.WaitGroup
	for i := range n {
		st.Holders[i] = HolderInfo{Entry: entries[i], Remaining: -1}
		if entries[i].Lease == 0 {
			continue
		}
		wg.Add(1)
		go func(hi *HolderInfo) {
			defer wg.Done()
			rctx, cancel := c.request(ctx)
			defer cancel()
			ttl, err := c.etcd.TimeToLive(rctx, clientv3.LeaseID(hi.Lease))
			if err == nil && ttl.TTL >= 0 {
				hi.Remaining = time.Duration(ttl.TTL) * time.Second
			}
		}(&st.Holders[i])
	}
	wg.Wait()
	st.Waiters = entries[n:]
	return st, nil
}

// assignSlots sets the slots of a claim's holders: a mutex holder's is 0,
// a semaphore holder's is the slot whose key is attached to its lease (none
// while it has not taken one yet, for the moment between proving itself a
// holder and taking its slot).
func assignSlots(holders []Entry, limit int, view *slotView) {
	byLease := map[int64]int{}
	for i, lease := range view.taken {
		if i < limit {
			byLease[lease] = i
		}
	}
	for i := range holders {
		if limit == 1 {
			holders[i].setSlot(0)
		} else if slot, ok := byLease[holders[i].Lease]; ok && holders[i].Lease != 0 {
			holders[i].setSlot(slot)
		}
	}
}

// Summary is one claim in a listing.
type Summary struct {
	Name    string
	Limit   int
	Holders []Entry
	Waiting int
}

// List reads every claim whose name starts with namePrefix ("" for all),
// sorted by name, in one request.
func (c *Client) List(ctx context.Context, namePrefix string) ([]Summary, error) {
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Get(rctx, c.keys.Prefix()+EscapeName(namePrefix), clientv3.WithPrefix())
	cancel()
	if err != nil {
		return nil, c.etcdError("list", err)
	}
	byName := map[string][]Entry{}
	slotKVs := map[string][]*mvccpb.KeyValue{}
	for _, kv := range resp.Kvs {
		if name, _, ok := c.keys.ParseSlot(string(kv.Key)); ok {
			slotKVs[name] = append(slotKVs[name], kv)
			continue
		}
		e := c.entry(kv.Key, kv.CreateRevision, kv.Value)
		if e.Name == "" || !strings.HasPrefix(e.Name, namePrefix) {
			continue
		}
		byName[e.Name] = append(byName[e.Name], e)
	}
	out := make([]Summary, 0, len(byName))
	for name, entries := range byName {
		sort.Slice(entries, func(i, j int) bool { return entries[i].CreateRevision < entries[j].CreateRevision })
		limit := entries[0].limit()
		n := min(limit, len(entries))
		assignSlots(entries[:n], limit, c.slotView(name, slotKVs[name], resp.Header.Revision))
		out = append(out, Summary{Name: name, Limit: limit, Holders: entries[:n], Waiting: len(entries) - n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

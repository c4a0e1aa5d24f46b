package claim

import (
	"context"
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

// Status reads claim name: its holders (with remaining TTL) and its waiters
// in queue order.
func (c *Client) Status(ctx context.Context, name string) (Status, error) {
	if err := ValidateName(name); err != nil {
		return Status{}, err
	}
	rctx, cancel := c.request(ctx)
	resp, err := c.etcd.Get(rctx, c.keys.ClaimPrefix(name), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	cancel()
	if err != nil {
		return Status{}, c.etcdError("status "+name, err)
	}
	st := Status{Name: name, Limit: 1, Revision: resp.Header.Revision}
	entries := c.entries(resp.Kvs)
	if len(entries) > 0 {
		st.Limit = entries[0].limit()
	}
	n := min(st.Limit, len(entries))
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
	for _, kv := range resp.Kvs {
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
		out = append(out, Summary{Name: name, Limit: limit, Holders: entries[:n], Waiting: len(entries) - n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

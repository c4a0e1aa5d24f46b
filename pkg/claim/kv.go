package claim

import "go.etcd.io/etcd/api/v3/mvccpb"

// mvccKV is etcd's key-value record, named here once to keep signatures short.
type mvccKV = mvccpb.KeyValue

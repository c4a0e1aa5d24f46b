// Package claim is the claim protocol on etcd: names and keys, tokens, and
// acquire, renew, release and inspection of claims. It has no command-line
// code in it; cmd/ wires it to Cobra.
//
// # Keys
//
// A contender for claim NAME writes the key
//
//	<prefix><escaped NAME>/<lease ID in hex>
//
// attached to its own lease, with JSON holder metadata as the value. The
// holders are the Limit keys with the lowest create revisions; everyone else
// waits in create-revision order (FIFO). For Limit 1 this is the layout of
// etcd's concurrency.Mutex, so `etcdctl lock <prefix>NAME` and claimctl
// exclude each other.
//
// Names are escaped so that they contain no '/', which keeps one claim's key
// range from ever containing another's ("a" and "a/b" are unrelated claims).
//
// # Fencing
//
// The holder key's create revision is the fencing token: etcd revisions are
// cluster-wide and strictly increasing, so each successive holder of a claim
// has a larger one. A lease cannot stop a paused process from acting after
// its lease ended; a resource that rejects writes carrying a token lower than
// one it has seen can.
package claim

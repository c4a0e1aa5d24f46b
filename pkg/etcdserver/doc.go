// Package etcdserver runs a real etcd member inside the calling process
// (go.etcd.io/etcd/server/v3/embed), for the claimctl-server binary and for
// tests that need a server to claim against.
//
// It exposes only what claimctl needs: a member's identity, storage, URLs,
// cluster bootstrap, timings, TLS files and logging. Defaults keep a single
// member on 127.0.0.1 and its log quiet (level error), so that starting one
// is one call and a healthy server prints nothing.
//
// Listen URLs may use port 0. etcd then advertises port 0 as given, but
// Server.ClientURLs reports the ports actually bound, which is what clients
// should dial. A single member never dials its own peer URL, so port 0 is
// fine there too; members of a larger cluster need real peer ports.
package etcdserver

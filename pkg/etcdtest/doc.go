// Package etcdtest gives claimctl's tests real etcd servers. Import it only
// from _test.go files and test mains.
//
//   - Start runs an embedded single member for one test; StartEmbedded is
//     the same without testing.TB, for testscript commands.
//   - StartCluster runs 1, 3 or 5 members as claimctl-server processes, for
//     faults that need a process: SIGKILL, SIGSTOP, restart from disk.
//   - NewProxy puts a proxy in front of a member's client port, to cut,
//     delay or pause one client's traffic.
//
// With EtcdEnv (CLAIMCTL_TEST_ETCD) set to an upstream etcd binary, 3.4 or
// later, all three run that etcd as processes instead, with the same API
// and timings: scripts/compat.sh runs the tests against each supported
// release that way.
//
// Every member runs on loopback with TickMs/ElectionMs timings, so elections
// take well under a second and the minimum lease TTL is MinLeaseTTL (1 s).
// Everything started is stopped by t.Cleanup, and every wait is bounded and
// fails the test saying what it waited for.
package etcdtest

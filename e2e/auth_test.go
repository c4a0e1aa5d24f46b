//go:build linux

package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestPasswordRunAuthenticatesOnce: a `run` with --user/--password costs
// the cluster one Authenticate (a bcrypt check and a Raft write on the
// member), however many times it renews. With etcd's own password handling
// every renewal would authenticate again (pkg/etcdauth says why), so a
// fleet of password users would be bound by the members' CPU.
func TestPasswordRunAuthenticatesOnce(t *testing.T) {
	m := etcdtest.Start(t)
	ep := m.Endpoints()
	if err := etcdtest.EnableAuth(ep); err != nil {
		t.Fatal(err)
	}
	authenticates := func() float64 {
		return serverMetric(t, ep[0], "grpc_server_handled_total", "grpc_method=Authenticate")
	}
	before, renewedBefore := authenticates(), serverMetric(t, ep[0], "etcd_debugging_lease_renewed_total")
	run := exec.Command(claimctlBin, "--endpoints", strings.Join(ep, ","), "--user", "claimer", "--password", etcdtest.AuthPassword,
		"run", "--ttl", "2s", "report", "--", "sleep", "3")
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	renewals := serverMetric(t, ep[0], "etcd_debugging_lease_renewed_total") - renewedBefore
	if renewals < 5 {
		t.Fatalf("a 3 s run with a 2 s TTL renewed %v times; the test needs renewals to mean anything", renewals)
	}
	if n := authenticates() - before; n != 1 {
		t.Fatalf("a run that renewed %v times sent %v Authenticate requests; want 1", renewals, n)
	}
	t.Logf("a run with %v renewals: 1 Authenticate", renewals)
}

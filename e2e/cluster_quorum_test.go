//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestClusterQuorumLossStopsTheHolder: `claimctl run --ttl 3s` holds a
// claim against all three members when two of them (the leader and a
// follower) are SIGKILLed, and they stay down for longer than the TTL.
//
//   - The holder's child (and its grandchild) is stopped by run's deadline
//     and claimctl exits 76 saying etcd "has not acknowledged a renewal",
//     within TTL + 5s of the loss (the deadline is TTL - margin after the
//     last acknowledged renewal; releasing then times out after the 1s
//     command timeout).
//   - No acquire succeeds during the outage: `claimctl acquire -w 2s` prints
//     no token and exits 69 (etcd unavailable).
//   - After both members are restarted, a new `claimctl run` gets the claim
//     (its child starts) within TTL + 2 election timeouts + 1.5s of the
//     restart: the stale holder's lease, which every new leader extends by
//     an election timeout, blocks no longer than that (1.5s: etcd checks for
//     expired leases every 500ms, plus claimctl's start and its child's under
//     -race). Its fencing token is higher, and the oracles hold.
func TestClusterQuorumLossStopsTheHolder(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second
	s := clNewScenario(t, cli, "quorum")
	h := s.run(eps, "H", []string{"E2E_GRANDCHILD=1"}, "--ttl", "3s")
	rh := s.waitStarted(h, "H", clStartBound)

	lctx, cancel := context.WithTimeout(context.Background(), clElectionBound)
	defer cancel()
	leader := c.WaitLeader(lctx)
	down := []int{leader, (leader + 1) % 3}
	lostAt := now()
	for _, i := range down {
		c.Member(i).Kill()
	}

	if code := h.wait(ttl + 5*time.Second); code != 76 {
		t.Fatalf("H: claimctl exited %d, want 76 (claim lost); stderr:\n%s", code, h.stderr)
	}
	if !strings.Contains(h.stderr.String(), "has not acknowledged a renewal") {
		t.Fatalf("H's message does not say etcd stopped acknowledging renewals:\n%s", h.stderr)
	}
	if alive(rh.pids["H"]) || alive(rh.grandkids["H"]) {
		t.Fatalf("claimctl exited, but H's child (alive=%v) or grandchild (alive=%v) lives on", alive(rh.pids["H"]), alive(rh.grandkids["H"]))
	}
	r := s.record()
	t.Logf("quorum lost; H's child last alive %v later, claimctl exited %v later", clDur(r.lastAlive["H"]-lostAt), clDur(now()-lostAt))

	a := startClaimctl(t, eps, nil, "acquire", "-w", "2s", "--ttl", "3s", s.name)
	out := a.stdout
	if code := a.wait(clExitBound); code != 69 {
		t.Fatalf("acquire during the outage exited %d, want 69 (etcd unavailable); stdout %q; stderr:\n%s", code, out, a.stderr)
	}
	if out.String() != "" {
		t.Fatalf("acquire during the outage printed a token: %q", out)
	}
	if d := time.Duration(now() - lostAt); d <= ttl {
		time.Sleep(ttl - d + 100*time.Millisecond)
	}
	outage := clDur(now() - lostAt)

	c.Restart(down...)
	recoveredAt := now()
	n := s.run(eps, "N", []string{"E2E_RUN_FOR=300ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"]) + " " + itoa(rh.grandkids["H"])}, "--ttl", "3s")
	bound := ttl + 2*clElection + 1500*time.Millisecond
	rn := s.waitStarted(n, "N", bound+10*time.Second)
	took := time.Duration(rn.starts["N"] - recoveredAt)
	t.Logf("outage %v; after the restart, N's child started %v later (bound %v)", outage, took.Round(time.Millisecond), bound)
	if took > bound {
		t.Fatalf("N got the claim %v after the cluster recovered; a stale hold may block at most TTL + 2 election timeouts + 1.5s = %v", took, bound)
	}
	if code := n.wait(clExitBound); code != 0 {
		t.Fatalf("N: claimctl exited %d, want 0; stderr:\n%s", code, n.stderr)
	}
	s.checkOracles(s.record(), ttl+clElectionBound)
}

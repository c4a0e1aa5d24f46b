//go:build linux

package e2e

import (
	"context"
	"testing"
	"time"
)

// TestClusterHolderCrashHandsOverAfterTheTTL: `claimctl run --ttl 3s` holds
// a claim against all three members, with a child and a grandchild, while a
// second `claimctl run` waits in line. claimctl is SIGKILLed right after a
// renewal of its lease reached the leader (seen on the leader's
// etcd_debugging_lease_renewed_total; the waiter's TTL is 60s so that its
// first renewal is due only 6s after it queued, making every renewal the
// leader counts meanwhile the holder's).
//
//   - The child and grandchild die within 1s of the kill.
//   - The waiter takes over (its child starts) no earlier than TTL after the
//     renewal (TTL after the last metrics scrape that had not yet seen it,
//     which began at most 100ms, typically ~15ms, before the kill), and no later than TTL + the election
//     timeout + 1s after the kill.
//   - The oracles hold; nothing is left within TTL + clElectionBound.
func TestClusterHolderCrashHandsOverAfterTheTTL(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second
	s := clNewScenario(t, cli, "crash")
	h := s.run(eps, "H", []string{"E2E_GRANDCHILD=1"}, "--ttl", "3s")
	rh := s.waitStarted(h, "H", clStartBound)
	w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"]) + " " + itoa(rh.grandkids["H"])}, "--ttl", "60s")
	s.waitQueued(2)

	lctx, cancel := context.WithTimeout(context.Background(), clElectionBound)
	defer cancel()
	leader := c.Member(c.WaitLeader(lctx)).Endpoint()
	base, err := clLeaseRenewals(leader)
	if err != nil {
		t.Fatalf("reading the leader's renewal count: %v", err)
	}
	var notYet int64 // start of the last scrape that did not see the renewal
	waitFor(t, 2*ttl, "the leader to count a renewal of H's lease", func() bool {
		notYet = now()
		n, err := clLeaseRenewals(leader)
		return err == nil && n > base
	})
	killAt := now()
	_ = h.cmd.Process.Kill()
	if lag := clDur(killAt - notYet); lag > 100*time.Millisecond {
		t.Fatalf("H was killed %v after the renewal could have been counted; want at most 100ms, or \"TTL after the kill\" is not \"TTL after the renewal\"", lag)
	}
	if code := h.wait(clExitBound); code != 128+9 {
		t.Fatalf("H: claimctl exited %d, want 137 (SIGKILL); stderr:\n%s", code, h.stderr)
	}
	clWaitDead(t, time.Second-time.Duration(now()-killAt), "H's child and grandchild to die within 1s of the kill", rh.pids["H"], rh.grandkids["H"])
	died := time.Duration(now() - killAt)

	upper := ttl + clElection + time.Second
	rw := s.waitStarted(w, "W", upper+10*time.Second)
	took := time.Duration(rw.starts["W"] - killAt)
	t.Logf("H's child and grandchild dead %v after the kill; W's child started %v after the kill (%v after the renewal at the latest), want [%v, %v]",
		died.Round(time.Millisecond), took.Round(time.Millisecond), clDur(rw.starts["W"]-notYet), ttl, upper)
	if rw.starts["W"] < notYet+int64(ttl) {
		t.Fatalf("W's child started %v after H's last renewal reached the leader, before the lease could expire (TTL %v)", clDur(rw.starts["W"]-notYet), ttl)
	}
	if took > upper {
		t.Fatalf("W's child started %v after H was killed; want at most TTL + election timeout + 1s = %v", took, upper)
	}
	if code := w.wait(clExitBound); code != 0 {
		t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
	}
	s.checkOracles(s.record(), ttl+clElectionBound)
}

//go:build linux

package e2e

import (
	"context"
	"testing"
	"time"
)

// TestClusterLeaderLossKeepsTheHold: `claimctl run --ttl 3s` holds a claim
// with a child (running 5s) against all three members, and a second
// `claimctl run` waits in line. Then the etcd leader is SIGKILLed (subtest
// "killed") or SIGKILLed and relaunched at once (subtest "restarted"). The
// holder must keep the claim through the election: its child runs to its
// natural end and claimctl exits 0; the waiter's child starts only after
// the holder's child ended (so no waiter acquired during the election); and
// the oracles hold. Tolerances: a new leader within clElectionBound (5s);
// nothing left behind within TTL + clElectionBound. The fault strikes TTL/3
// into the hold.
func TestClusterLeaderLossKeepsTheHold(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second
	for _, restart := range []bool{false, true} {
		name := "killed"
		if restart {
			name = "restarted"
		}
		t.Run(name, func(t *testing.T) {
			s := clNewScenario(t, cli, "leader-"+name)
			h := s.run(eps, "H", []string{"E2E_RUN_FOR=5s"}, "--ttl", "3s")
			rh := s.waitStarted(h, "H", clStartBound)
			w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"])}, "--ttl", "3s")
			s.waitQueued(2)

			lctx, cancel := context.WithTimeout(context.Background(), clElectionBound)
			defer cancel()
			old := c.WaitLeader(lctx)
			// Strike TTL/3 into the hold (renewals go every TTL/10, so one
			// is always about to be due).
			time.Sleep(max(time.Duration(rh.starts["H"]+int64(ttl/3)-100*int64(time.Millisecond)-now()), 0))
			faultAt := now()
			c.Member(old).Kill()
			if restart {
				c.Member(old).Restart()
			}
			ectx, ecancel := context.WithTimeout(context.Background(), clElectionBound)
			defer ecancel()
			next := c.WaitLeader(ectx)
			t.Logf("leader m%d %s; m%d leads %v later (H's child started %v before the fault)",
				old, name, next, clDur(now()-faultAt), clDur(faultAt-rh.starts["H"]))

			s.checkUndisturbed(h, "H", 20*time.Second)
			if code := w.wait(clExitBound); code != 0 {
				t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
			}
			r := s.record()
			if r.starts["W"] <= r.ends["H"] {
				t.Fatalf("W's child started at %d, not after H's child ended at %d: a waiter acquired during the election", r.starts["W"], r.ends["H"])
			}
			if !restart {
				c.Member(old).Restart()
			}
			hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer hcancel()
			c.WaitHealthy(hctx)
			s.checkOracles(r, ttl+clElectionBound)
		})
	}
}

//go:build linux

package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterFrozenMemberKeepsTheHold: `claimctl run` holds a claim against
// all three members while a second `claimctl run` waits in line; then one
// member is frozen with SIGSTOP, TTL/3 into the hold, for longer than an
// election timeout (4-6x) and than TTL/3. A frozen member keeps its
// connections open and answers nothing, so requests routed to it hang
// until they time out.
//
//   - follower (TTL 3s, frozen 3s): renewals routed to it hang; the holder
//     must renew through the other endpoints.
//   - leader (TTL 5s, frozen 2s): every renewal hangs until the others elect
//     a leader; the holder must renew through it. The TTL leaves room for the
//     election (up to ~1.1s here, more under load) in the 2TTL/3 between the
//     last acknowledged renewal and run's SIGTERM. The freeze stays well
//     below the TTL because of an etcd bug (v3.7.3): a leader frozen for
//     longer than a lease's TTL may, in the first milliseconds after SIGCONT,
//     revoke that lease although the new leader has kept it renewed (its
//     ensureLeadership check is skipped when the raft ticker has just
//     fired, which it does at once on resume); no client can prevent that.
//
// The holder must keep the claim: its child runs to its natural end,
// claimctl exits 0, the waiter starts only after it, and the oracles hold
// (nothing left within TTL + clElectionBound).
func TestClusterFrozenMemberKeepsTheHold(t *testing.T) {
	if testing.Short() {
		t.Skip("two 10s scenarios")
	}
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	for _, tc := range []struct {
		which       string
		ttl, freeze time.Duration
	}{
		{"follower", 3 * time.Second, 3 * time.Second},
		{"leader", 5 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.which, func(t *testing.T) {
			s := clNewScenario(t, cli, "frozen-"+tc.which)
			ttlFlag := fmt.Sprint(tc.ttl)
			runFor := "E2E_RUN_FOR=" + fmt.Sprint(tc.ttl/3+tc.freeze+tc.ttl)
			h := s.run(eps, "H", []string{runFor}, "--ttl", ttlFlag)
			rh := s.waitStarted(h, "H", clStartBound)
			w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"])}, "--ttl", ttlFlag)
			s.waitQueued(2)

			lctx, cancel := context.WithTimeout(context.Background(), clElectionBound)
			defer cancel()
			leader := c.WaitLeader(lctx)
			victim := leader
			if tc.which == "follower" {
				victim = (leader + 1) % 3
			}
			m := c.Member(victim)
			// Strike TTL/3 into the hold (renewals go every TTL/10, so one
			// is always about to be due).
			time.Sleep(max(time.Duration(rh.starts["H"]+int64(tc.ttl/3-100*time.Millisecond)-now()), 0))
			m.Stop()
			frozen := true
			t.Cleanup(func() {
				if frozen {
					m.Cont()
				}
			})
			time.Sleep(tc.freeze)
			m.Cont()
			frozen = false
			t.Logf("froze %s m%d for %v, from %v after H's child started", tc.which, victim, tc.freeze, clDur(now()-rh.starts["H"]-int64(tc.freeze)))

			s.checkUndisturbed(h, "H", 20*time.Second)
			if code := w.wait(clExitBound); code != 0 {
				t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
			}
			r := s.record()
			if r.starts["W"] <= r.ends["H"] {
				t.Fatalf("W's child started at %d, not after H's child ended at %d", r.starts["W"], r.ends["H"])
			}
			hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer hcancel()
			c.WaitHealthy(hctx)
			s.checkOracles(r, tc.ttl+clElectionBound)
		})
	}
}

// clEtcdBugsEnv names the variable that enables tests of known etcd bugs:
// they fail while the bug is there, intermittently, so they do not run by
// default.
const clEtcdBugsEnv = "CLAIMCTL_E2E_ETCD_BUGS"

// TestClusterFrozenLeaderKeepsRenewedLeases documents the etcd bug that
// bounds TestClusterFrozenMemberKeepsTheHold's leader freeze (runs only with
// CLAIMCTL_E2E_ETCD_BUGS=1). A client renews a 3s lease every 300ms
// through the two followers; the leader is frozen for 3.5s and resumed. The
// followers elect a new leader, which keeps the lease renewed, so the lease
// must outlive the resume. With etcd v3.7.3 it is revoked, in about 1 of 6
// rounds, some 20ms after SIGCONT, while its last acknowledged renewal was
// ~100ms old: the resumed member still believes it leads, its lessor finds
// the lease expired by its own stale clock, and ensureLeadership skips its
// quorum check because the raft ticker fired just now (as it does at once
// on resume); the revoke is then forwarded to the new leader and applied.
func TestClusterFrozenLeaderKeepsRenewedLeases(t *testing.T) {
	if os.Getenv(clEtcdBugsEnv) != "1" {
		t.Skipf("documents an etcd bug; set %s=1 to run it", clEtcdBugsEnv)
	}
	c := clStartCluster(t)
	for round := range 12 {
		lctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		leader := c.WaitLeader(lctx)
		var followers []string
		for i := range 3 {
			if i != leader {
				followers = append(followers, c.Member(i).Endpoint())
			}
		}
		cli := etcdClient(t, followers)
		g, err := cli.Grant(lctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		var lastAck atomic.Int64 // send time of the last acknowledged renewal
		lastAck.Store(now())
		kctx, stop := context.WithCancel(lctx)
		var renewing sync.WaitGroup
		renewing.Go(func() {
			for kctx.Err() == nil {
				renewing.Go(func() {
					rctx, rcancel := context.WithTimeout(kctx, time.Second)
					defer rcancel()
					sent := now()
					if _, err := cli.KeepAliveOnce(rctx, g.ID); err == nil {
						for old := lastAck.Load(); sent > old && !lastAck.CompareAndSwap(old, sent); old = lastAck.Load() {
						}
					}
				})
				time.Sleep(300 * time.Millisecond)
			}
		})
		time.Sleep(500 * time.Millisecond)
		m := c.Member(leader)
		m.Stop()
		time.Sleep(3500 * time.Millisecond)
		m.Cont()
		resumed := now()
		var goneAt int64
		for now()-resumed < int64(1500*time.Millisecond) && goneAt == 0 {
			if r, err := cli.TimeToLive(lctx, g.ID); err == nil && r.TTL == -1 {
				goneAt = now()
			}
			time.Sleep(20 * time.Millisecond)
		}
		stop()
		renewing.Wait()
		if goneAt != 0 && goneAt-lastAck.Load() < int64(3*time.Second) {
			t.Fatalf("round %d: lease revoked %v after the frozen leader m%d resumed, %v after its last acknowledged renewal was sent (TTL 3s)",
				round, clDur(goneAt-resumed), leader, clDur(goneAt-lastAck.Load()))
		}
		_, _ = cli.Revoke(lctx, g.ID)
		cancel()
		hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
		c.WaitHealthy(hctx)
		hcancel()
	}
}

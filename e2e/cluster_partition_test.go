//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestClusterCutOffHolderIsStoppedBeforeTheNextHolder: claimctl H reaches
// the cluster only through a proxy in front of one member (the point of
// the scenario: its only endpoint), holds a claim with `run --ttl 3s` (a
// child and a grandchild), and W, given all members, waits in line. The
// proxy is then blackholed until W's child has started and for longer than
// the TTL.
//
//   - H's whole group is dead before W's child starts: W's child checks
//     (E2E_MUST_BE_DEAD) that H's child and grandchild are gone, and H's
//     child's last sign of life is before W's child's start.
//   - H exits 76 saying etcd "has not acknowledged a renewal".
//   - Afterwards `claimctl release TOKEN`, with the token H's child got in
//     CLAIMCTL_TOKEN, reports the hold is over: exit 76.
//   - The oracles hold; nothing is left within TTL + clElectionBound.
func TestClusterCutOffHolderIsStoppedBeforeTheNextHolder(t *testing.T) {
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl = 3 * time.Second
	s := clNewScenario(t, cli, "cutoff")
	p := etcdtest.NewProxy(t, c.Member(0).Endpoint())
	tokenFile := filepath.Join(t.TempDir(), "token")
	// The child records its token, then becomes the recorder (same pid).
	h := startClaimctl(t, []string{p.Endpoint()},
		recorderEnv(s.log, "H", "E2E_STORE="+s.store, "E2E_GRANDCHILD=1", "CL_TOKEN_FILE="+tokenFile),
		"run", "--ttl", "3s", s.name, "--", "/bin/sh", "-c", `printf '%s' "$CLAIMCTL_TOKEN" > "$CL_TOKEN_FILE" && exec "$0" -test.run='^$'`, os.Args[0])
	rh := s.waitStarted(h, "H", clStartBound)
	token, err := os.ReadFile(tokenFile)
	if err != nil || len(token) == 0 {
		t.Fatalf("H's child did not record its token: %v", err)
	}
	w := s.run(eps, "W", []string{"E2E_RUN_FOR=300ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"]) + " " + itoa(rh.grandkids["H"])}, "--ttl", "3s")
	s.waitQueued(2)

	cutAt := now()
	p.Blackhole()
	if code := h.wait(ttl + 5*time.Second); code != 76 {
		t.Fatalf("H: claimctl exited %d, want 76; stderr:\n%s", code, h.stderr)
	}
	if !strings.Contains(h.stderr.String(), "has not acknowledged a renewal") {
		t.Fatalf("H's message does not say etcd stopped acknowledging renewals:\n%s", h.stderr)
	}
	rw := s.waitStarted(w, "W", ttl+clElectionBound)
	if d := time.Duration(now() - cutAt); d <= ttl {
		time.Sleep(ttl - d + 100*time.Millisecond)
	}
	cut := clDur(now() - cutAt)
	p.Unblackhole()
	r := s.record()
	if !(r.lastAlive["H"] < rw.starts["W"]) {
		t.Fatalf("H's child was last alive at %d, after W's child started at %d", r.lastAlive["H"], rw.starts["W"])
	}
	t.Logf("cut for %v; H's child last alive %v after the cut, W's child started %v after it (gap %v)",
		cut, clDur(r.lastAlive["H"]-cutAt), clDur(rw.starts["W"]-cutAt), clDur(rw.starts["W"]-r.lastAlive["H"]))

	rel := startClaimctl(t, eps, nil, "release", string(token))
	if code := rel.wait(clExitBound); code != 76 {
		t.Fatalf("release of the cut-off holder's token exited %d, want 76 (not held); stderr:\n%s", code, rel.stderr)
	}
	if code := w.wait(clExitBound); code != 0 {
		t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
	}
	s.checkOracles(s.record(), ttl+clElectionBound)
}

// TestClusterOneCutMemberIsFailedOver: a proxy stands in front of each
// member and claimctl H gets the three proxies as its endpoints; it holds
// a claim with `run --ttl 3s` (child runs 6s) while W, given the members
// directly, waits in line. One proxy is then blackholed for 4s (longer
// than the TTL), TTL/3 into the hold. claimctl's
// client balances requests over all its endpoints once it has been
// connected for 500ms (cmd/connect.go), so by then it talks to every
// member; each subtest cuts a different one, so that whichever member H
// "is connected to" (its watch, its next renewal) is cut in one of them.
// H must fail over and keep the claim: its child runs to its natural end,
// claimctl exits 0, W starts only after it, and the oracles hold.
func TestClusterOneCutMemberIsFailedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("three 7s scenarios")
	}
	c := clStartCluster(t)
	cli := etcdClient(t, c.Endpoints())
	eps := c.Endpoints()
	const ttl, cut = 3 * time.Second, 4 * time.Second
	for victim := range 3 {
		t.Run(fmt.Sprintf("m%d", victim), func(t *testing.T) {
			s := clNewScenario(t, cli, fmt.Sprintf("cut-m%d", victim))
			var proxies []*etcdtest.Proxy
			var peps []string
			for i := range 3 {
				p := etcdtest.NewProxy(t, c.Member(i).Endpoint())
				proxies = append(proxies, p)
				peps = append(peps, p.Endpoint())
			}
			h := s.run(peps, "H", []string{"E2E_RUN_FOR=6s"}, "--ttl", "3s")
			rh := s.waitStarted(h, "H", clStartBound)
			w := s.run(eps, "W", []string{"E2E_RUN_FOR=200ms", "E2E_MUST_BE_DEAD=" + itoa(rh.pids["H"])}, "--ttl", "3s")
			s.waitQueued(2)

			time.Sleep(max(time.Duration(rh.starts["H"]+int64(ttl/3-100*time.Millisecond)-now()), 0))
			cutAt := now()
			proxies[victim].Blackhole()
			time.Sleep(cut)
			proxies[victim].Unblackhole()
			t.Logf("cut m%d's proxy for %v, from %v after H's child started", victim, cut, clDur(cutAt-rh.starts["H"]))

			s.checkUndisturbed(h, "H", 20*time.Second)
			if code := w.wait(clExitBound); code != 0 {
				t.Fatalf("W: claimctl exited %d, want 0; stderr:\n%s", code, w.stderr)
			}
			r := s.record()
			if r.starts["W"] <= r.ends["H"] {
				t.Fatalf("W's child started at %d, not after H's child ended at %d", r.starts["W"], r.ends["H"])
			}
			s.checkOracles(r, ttl+clElectionBound)
		})
	}
}

//go:build linux

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// The fault scenarios in cluster_*_test.go and pause_*_test.go run claimctl
// against a 3-member cluster of claimctl-server processes with fast Raft
// timings, so that an election takes well under a second and each scenario a
// few seconds. Every claimctl is given all members' endpoints, as a user
// would, unless a proxy in front of a member is the point of the scenario.
const (
	clTickMs     = 50
	clElectionMs = 500
	// clElection is the election timeout. etcd randomises the timeout a
	// follower waits in [1x, 2x) of it, and a new leader extends every lease
	// by it.
	clElection = clElectionMs * time.Millisecond
	// clElectionBound is how long a test lets the cluster take to elect a
	// leader after the old one is gone: 2x the election timeout (the
	// randomised worst case) plus a pre-vote and a vote, with slack for
	// -race on two shared cores.
	clElectionBound = 5 * time.Second
	// clStartBound bounds waiting for a claimctl child to start when nothing
	// stands in its way (process start under -race included).
	clStartBound = 15 * time.Second
	// clExitBound bounds waiting for a claimctl to exit once it should.
	clExitBound = 15 * time.Second
)

// clStartCluster starts the 3-member cluster a test function shares between
// its subtests and waits until it has a leader.
func clStartCluster(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	// Members log warnings (shown only if the test fails): enough to see a
	// lease revoked or a leader overloaded.
	c := etcdtest.StartCluster(t, 3, etcdtest.ClusterOptions{TickMs: clTickMs, ElectionMs: clElectionMs, LogLevel: "warn"})
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.WaitLeader(cctx)
	c.WaitHealthy(cctx)
	return c
}

// clScenario is one scenario's files and the client it checks etcd with.
type clScenario struct {
	t     *testing.T
	cli   *clientv3.Client
	name  string // the claim
	log   string // the recorders' log
	store string // the fenced store
}

// clNewScenario starts a scenario on claim name: it checks that earlier
// scenarios left nothing behind and, at cleanup, removes whatever this one
// leaves if it fails, so that the next scenario on the shared cluster
// starts clean.
func clNewScenario(t *testing.T, cli *clientv3.Client, name string) *clScenario {
	t.Helper()
	dir := t.TempDir()
	s := &clScenario{t: t, cli: cli, name: name, log: filepath.Join(dir, "events.log"), store: filepath.Join(dir, "store")}
	if keys, leases := clLeftovers(t, cli); len(keys) != 0 || leases != 0 {
		t.Fatalf("an earlier scenario left keys %v and %d leases behind", keys, leases)
	}
	t.Cleanup(func() { clWipe(t, cli) })
	return s
}

// clLeftovers returns the keys under claimctl/ and the number of leases.
func clLeftovers(t *testing.T, cli *clientv3.Client) ([]string, int) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(c, "claimctl/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatalf("reading leftovers: %v", err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	ls, err := cli.Leases(c)
	if err != nil {
		t.Fatalf("listing leases: %v", err)
	}
	return keys, len(ls.Leases)
}

// clWipe revokes every lease and deletes every key under claimctl/, best
// effort, so that a failed scenario does not fail the next one too.
func clWipe(t *testing.T, cli *clientv3.Client) {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ls, err := cli.Leases(c); err == nil {
		for _, l := range ls.Leases {
			_, _ = cli.Revoke(c, l.ID)
		}
	}
	resp, err := cli.Get(c, "claimctl/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err == nil && len(resp.Kvs) > 0 {
		_, _ = cli.Delete(c, "claimctl/", clientv3.WithPrefix())
	}
}

// run starts `claimctl run [flags] NAME -- <recorder labelled label>` with
// the scenario's log and store.
func (s *clScenario) run(endpoints []string, label string, recEnv []string, flags ...string) *job {
	s.t.Helper()
	recEnv = append([]string{"E2E_STORE=" + s.store}, recEnv...)
	return runRecorder(s.t, endpoints, s.log, label, recEnv, append(flags, s.name)...)
}

// record reads the recorders' log.
func (s *clScenario) record() record {
	s.t.Helper()
	r, err := readRecord(s.log)
	if err != nil {
		s.t.Fatal(err)
	}
	if len(r.errorsSeen) > 0 {
		s.t.Fatalf("a recorder reported errors: %v", r.errorsSeen)
	}
	return r
}

// waitStarted waits until the recorder labelled label, run by claimctl j,
// has started, failing at once with j's stderr if j exits first.
func (s *clScenario) waitStarted(j *job, label string, timeout time.Duration) record {
	s.t.Helper()
	var r record
	waitFor(s.t, timeout, "recorder "+label+" to start", func() bool {
		r, _ = readRecord(s.log)
		if r.starts[label] == 0 && j.exited() {
			s.t.Fatalf("claimctl exited %d before its child %s started; stderr:\n%s", j.code, label, j.stderr)
		}
		return r.starts[label] != 0
	})
	return r
}

// waitQueued waits until the claim has n contenders (keys), holders
// included.
func (s *clScenario) waitQueued(n int) {
	s.t.Helper()
	waitFor(s.t, 10*time.Second, fmt.Sprintf("%d contenders for claim %s", n, s.name), func() bool {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := s.cli.Get(c, "claimctl/"+s.name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == int64(n)
	})
}

// checkOracles checks the four oracles for a mutex: no overlap; tokens rise
// and each owned the claim in etcd's history; the store kept every
// acknowledged write; and no key or lease remains within leakBound. The
// leak check runs first: a lease expiring deletes its key, and the history
// oracle reads up to the cluster's latest revision.
func (s *clScenario) checkOracles(r record, leakBound time.Duration) {
	s.t.Helper()
	checkNoOverlap(s.t, r, 1)
	checkTokensRise(s.t, r)
	checkStoreKeptAcks(s.t, s.store, r)
	checkNothingLeaked(s.t, s.cli, "claimctl/", leakBound)
	checkTokensOwnedInHistory(s.t, s.cli, "claimctl/"+s.name+"/", 1, r)
}

// checkUndisturbed fails unless claimctl j exited 0 and its recorder label
// ran to its natural end, with nothing in claimctl's stderr about stopping
// the command or losing the claim.
func (s *clScenario) checkUndisturbed(j *job, label string, timeout time.Duration) {
	s.t.Helper()
	if code := j.wait(timeout); code != 0 {
		s.t.Fatalf("%s: claimctl exited %d, want 0 (the claim kept, the command undisturbed); stderr:\n%s", label, code, j.stderr)
	}
	r := s.record()
	if r.ends[label] == 0 {
		s.t.Fatalf("%s: the command did not run to its natural end; stderr:\n%s", label, j.stderr)
	}
	if e := j.stderr.String(); strings.Contains(e, "stopping the command") || strings.Contains(e, "lost") {
		s.t.Fatalf("%s: claimctl reports trouble although it exited 0:\n%s", label, e)
	}
}

// clWaitDead waits up to within for every pid to be dead (zombies count as
// dead; see alive) and returns how long that took.
func clWaitDead(t *testing.T, within time.Duration, what string, pids ...int) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, within, what, func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// clLeaseRenewals returns the leader's count of lease renewals it has
// granted (etcd_debugging_lease_renewed_total on its /metrics), which moves
// only on the leader and only when a renewal reaches it.
func clLeaseRenewals(endpoint string) (int64, error) {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(endpoint + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_debugging_lease_renewed_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int64(f), err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no etcd_debugging_lease_renewed_total in /metrics")
}

// clDur formats boot-time nanoseconds as a duration for messages.
func clDur(ns int64) time.Duration { return time.Duration(ns).Round(time.Millisecond) }

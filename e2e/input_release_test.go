//go:build linux

package e2e

import (
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// TestConcurrentReleaseOfOneTokenViaTheCLI: of N `claimctl release TOKEN`
// processes let go at the same instant, exactly one succeeds (exit 0) and
// every other one exits 76 ("not held"), whatever the interleaving; nothing
// is left behind, and a later holder of the claim is never touched.
//
// The processes are started first, each as a shell blocked reading its
// stdin, and released together by closing their stdin pipes, so that
// process start-up does not serialise them.
func TestConcurrentReleaseOfOneTokenViaTheCLI(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	cli := etcdClient(t, endpoints)
	const n, rounds = 8, 3
	for round := range rounds {
		name := fmt.Sprintf("once-%d", round)
		tok := strings.TrimSpace(inExpect(t, 0, endpoints, nil, "acquire", name).stdout)
		// The next holder queues behind the token's hold: a wrong release
		// would remove it.
		next := startClaimctl(t, endpoints, nil, "acquire", "--ttl", "30s", name)
		waitFor(t, 10*time.Second, "the next holder to queue", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 2 })

		jobs := make([]*job, n)
		gates := make([]io.WriteCloser, n)
		for i := range n {
			j := &job{t: t, stderr: &syncBuffer{}, done: make(chan struct{})}
			j.cmd = exec.Command("sh", "-c", `read -r _; exec "$0" release "$1"`, claimctlBin, tok)
			j.cmd.Env = append(j.cmd.Environ(), "CLAIMCTL_ENDPOINTS="+strings.Join(endpoints, ","),
				"CLAIMCTL_DIAL_TIMEOUT=2s", "CLAIMCTL_COMMAND_TIMEOUT=5s")
			j.cmd.Stderr = j.stderr
			var err error
			if gates[i], err = j.cmd.StdinPipe(); err != nil {
				t.Fatal(err)
			}
			if err := j.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				j.code = exitCodeOf(j.cmd.Wait())
				close(j.done)
			}()
			t.Cleanup(func() {
				select {
				case <-j.done:
				default:
					_ = j.cmd.Process.Kill()
					<-j.done
				}
			})
			jobs[i] = j
		}
		for _, g := range gates {
			g.Close() // read gets EOF: every shell execs claimctl now
		}
		ok := 0
		for i, j := range jobs {
			switch code := j.wait(15 * time.Second); code {
			case 0:
				ok++
			case 76:
				if !strings.Contains(j.stderr.String(), "claim not held") {
					t.Errorf("round %d, release %d: exit 76 without saying why:\n%s", round, i, j.stderr)
				}
			default:
				t.Errorf("round %d, release %d: exit %d, want 0 or 76; stderr:\n%s", round, i, code, j.stderr)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of %d concurrent releases of one token succeeded; want exactly 1", round, ok, n)
		}
		// The next holder got the claim and is the only one left.
		if code := next.wait(10 * time.Second); code != 0 {
			t.Fatalf("round %d: the next holder exited %d: %s", round, code, next.stderr)
		}
		if keys, leases := leftovers(t, cli); len(keys) != 1 || leases != 1 {
			t.Fatalf("round %d: after the releases: keys %v, %d leases; want only the next holder's", round, keys, leases)
		}
		st := statusJSON(t, endpoints, name)
		if !strings.Contains(st, `"owner": "e2e@`) {
			t.Fatalf("round %d: the next holder does not hold the claim:\n%s", round, st)
		}
		// Let the next holder go, for a clean start of the next round.
		resp, err := cli.Get(ctx(t), "claimctl/"+name+"/", clientv3.WithPrefix())
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("round %d: reading the next holder's key: %v", round, err)
		}
		if _, err := cli.Revoke(ctx(t), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
			t.Fatal(err)
		}
	}
}

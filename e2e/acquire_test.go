//go:build linux

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// leftovers returns the keys under claimctl/ and the number of leases.
func leftovers(t *testing.T, cli *clientv3.Client) ([]string, int) {
	t.Helper()
	resp, err := cli.Get(ctx(t), "claimctl/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	leases, err := cli.Leases(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return keys, len(leases.Leases)
}

// TestAcquireWithStdoutClosedRevokesTheLease: when the token cannot be
// printed, nobody can ever release the claim, so acquire must release it
// itself and fail (exit 1).
func TestAcquireWithStdoutClosedRevokesTheLease(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	cli := etcdClient(t, endpoints)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // nobody will read: the write gets EPIPE
	j := &job{t: t}
	j.cmd = exec.Command(claimctlBin, "--endpoints", strings.Join(endpoints, ","), "acquire", "--ttl", "60s", "orphaned")
	j.cmd.Stdout = w
	var stderr syncBuffer
	j.cmd.Stderr = &stderr
	err = j.cmd.Run()
	w.Close()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("acquire with a closed stdout: %v, want exit code 1; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "could not print the token") || !strings.Contains(stderr.String(), "the claim was released") {
		t.Fatalf("stderr does not say the claim was released:\n%s", stderr.String())
	}
	if keys, leases := leftovers(t, cli); len(keys) != 0 || leases != 0 {
		t.Fatalf("left behind: keys %v, %d leases", keys, leases)
	}
}

// TestInterruptedWaiterLeavesNothing: Ctrl-C or SIGTERM while waiting ends
// acquire and run with 128+n and removes the waiter's key and lease at once.
func TestInterruptedWaiterLeavesNothing(t *testing.T) {
	endpoints := etcdtest.Start(t).Endpoints()
	cli := etcdClient(t, endpoints)
	holder := startClaimctl(t, endpoints, nil, "acquire", "busy")
	if code := holder.wait(10 * time.Second); code != 0 {
		t.Fatalf("holder: exit %d: %s", code, holder.stderr)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		args []string
	}{
		{syscall.SIGINT, []string{"acquire", "busy"}},
		{syscall.SIGTERM, []string{"acquire", "busy"}},
		{syscall.SIGTERM, []string{"run", "busy", "--", "true"}},
	} {
		t.Run(tc.sig.String()+"/"+tc.args[0], func(t *testing.T) {
			w := startClaimctl(t, endpoints, nil, tc.args...)
			waitFor(t, 10*time.Second, "the waiter to queue", func() bool { keys, _ := leftovers(t, cli); return len(keys) == 2 })
			_ = w.cmd.Process.Signal(tc.sig)
			if code := w.wait(10 * time.Second); code != 128+int(tc.sig) {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, 128+int(tc.sig), w.stderr)
			}
			if !strings.Contains(w.stderr.String(), "interrupted by signal") {
				t.Fatalf("stderr does not say it was interrupted:\n%s", w.stderr)
			}
			if keys, leases := leftovers(t, cli); len(keys) != 1 || leases != 1 {
				t.Fatalf("after the waiter gave up: keys %v, %d leases; want only the holder's", keys, leases)
			}
		})
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/bench/internal/stats"
)

// requestStep is one request or step of a handoff, timed alone: prep (not
// timed) sets up what it needs, run is timed. Each returns a lease to revoke
// afterwards (untimed), or 0.
type requestStep struct {
	kind string
	prep func(ctx context.Context, key string) (clientv3.LeaseID, error)
	run  func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error)
}

// requests times, one at a time from the driver against the same server,
// the single requests and steps that make up a handoff in the claimctl and
// etcdctl paths, n times each, interleaved, so that the cost of each step
// can be read off.
func (b *bench) requests(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	const pfx = "claimctl/requests/"

	// withKey creates key attached to a new lease.
	withKey := func(ctx context.Context, key string) (clientv3.LeaseID, error) {
		g, err := cli.Grant(ctx, 60)
		if err != nil {
			return 0, err
		}
		_, err = cli.Put(ctx, key, "{}", clientv3.WithLease(g.ID))
		return g.ID, err
	}
	// cleanup revokes the lease a step left behind, untimed.
	cleanup := func(ctx context.Context, lease clientv3.LeaseID) {
		if lease != 0 {
			_, _ = cli.Revoke(ctx, lease)
		}
	}
	steps := []requestStep{
		{"Range (linearizable read of one key)", withKey,
			func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Get(ctx, key)
				return lease, err
			}},
		{"Txn, read-only (waiter's re-check: compare + 2 ranges)", withKey,
			func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
					Then(clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1)),
						clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithLimit(1))).Commit()
				return lease, err
			}},
		{"Txn with a put (acquired_at write: compare + put)", withKey,
			func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
					Then(clientv3.OpPut(key, `{"acquired_at":"now"}`, clientv3.WithIgnoreLease())).Commit()
				return lease, err
			}},
		{"LeaseGrant", func(context.Context, string) (clientv3.LeaseID, error) { return 0, nil },
			func(ctx context.Context, _ string, _ clientv3.LeaseID) (clientv3.LeaseID, error) {
				g, err := cli.Grant(ctx, 60)
				if err != nil {
					return 0, err
				}
				return g.ID, nil
			}},
		{"LeaseKeepAliveOnce (new stream, one renewal)", withKey,
			func(ctx context.Context, _ string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.KeepAliveOnce(ctx, lease)
				return lease, err
			}},
		{"LeaseRevoke (lease with one key)", withKey,
			func(ctx context.Context, _ string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Revoke(ctx, lease)
				return 0, err
			}},
		{"DeleteRange (one key)", withKey,
			func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Delete(ctx, key)
				return lease, err
			}},
	}

	n := 200
	if b.cfg.quick {
		n = 5
	}
	samples := map[string][]float64{}
	const spawn = "fork+exec /bin/sh (the guardian), until execve returns"
	for i := range n {
		for j, s := range steps {
			if err := ctx.Err(); err != nil {
				return err
			}
			key := fmt.Sprintf("%s%d-%d", pfx, i, j)
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			lease, err := s.prep(rctx, key)
			var d time.Duration
			if err == nil {
				t0 := time.Now()
				lease, err = s.run(rctx, key, lease)
				d = time.Since(t0)
			}
			cleanup(rctx, lease)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", s.kind, err)
			}
			samples[s.kind] = append(samples[s.kind], ms(d))
		}
		d, err := spawnShell(devnull)
		if err != nil {
			return err
		}
		samples[spawn] = append(samples[spawn], ms(d))
	}
	for _, s := range append(steps, requestStep{kind: spawn}) {
		sum := stats.Summarize(samples[s.kind])
		b.res.Requests = append(b.res.Requests, RequestCost{Kind: s.kind, Summary: sum})
		logf("%-60s median %.3f ms p90 %.3f ms", s.kind, sum.Median, sum.P90)
	}
	return nil
}

// spawnShell starts /bin/sh the way claimctl starts its guardian
// (syscall.ForkExec, which returns once execve succeeded) and times that;
// then it lets the shell exit and reaps it, untimed.
func spawnShell(devnull *os.File) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	t0 := time.Now()
	pid, err := syscall.ForkExec("/bin/sh", []string{"/bin/sh", "-c", "read x"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: []uintptr{r.Fd(), devnull.Fd(), devnull.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	d := time.Since(t0)
	r.Close()
	if err != nil {
		return 0, err
	}
	w.Write([]byte("\n"))
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	return d, nil
}

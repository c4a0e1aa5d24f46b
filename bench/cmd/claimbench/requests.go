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
// timed) sets up what it needs, run is timed, or, for a step that times only
// part of what it does, timed reports its own duration. Each returns a lease
// to revoke afterwards (untimed), or 0.
type requestStep struct {
	kind  string
	prep  func(ctx context.Context, key string) (clientv3.LeaseID, error)
	run   func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error)
	timed func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, time.Duration, error)
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
	// The waiter's own connection, for the reads after a release.
	waiter, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer waiter.Close()
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
	// readAfter times a waiter's read of key sent as soon as the event of
	// key's deletion by release arrives: a handoff's confirming read, right
	// after the release was applied. On etcd v3.7 a LeaseRevoke commits the
	// backend when it is applied (it deletes the lease's record), which
	// holds the backend's read lock; a DeleteRange does not (docs/benchmarks.md,
	// "The release's cost in etcd v3.7.3").
	readAfter := func(release func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error)) func(context.Context, string, clientv3.LeaseID) (clientv3.LeaseID, time.Duration, error) {
		return func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, time.Duration, error) {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			events := waiter.Watch(wctx, key, clientv3.WithCreatedNotify())
			if wr := <-events; !wr.Created {
				return lease, 0, fmt.Errorf("watch of %s not created: %v", key, wr.Err())
			}
			released := make(chan error, 1)
			go func() {
				var err error
				lease, err = release(ctx, key, lease)
				released <- err
			}()
			for deleted := false; !deleted; {
				wr, ok := <-events
				if !ok || wr.Err() != nil {
					<-released
					return lease, 0, fmt.Errorf("watch of %s ended before the deletion: %v", key, wr.Err())
				}
				deleted = len(wr.Events) > 0
			}
			t0 := time.Now()
			_, err := waiter.Get(ctx, key)
			d := time.Since(t0)
			if rerr := <-released; err == nil {
				err = rerr
			}
			return lease, d, err
		}
	}
	revoke := func(ctx context.Context, _ string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
		_, err := cli.Revoke(ctx, lease)
		if err != nil {
			return lease, err
		}
		return 0, nil
	}
	deleteKey := func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
		_, err := cli.Delete(ctx, key)
		return lease, err
	}
	steps := []requestStep{
		{kind: "Range (linearizable read of one key)", prep: withKey,
			run: func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Get(ctx, key)
				return lease, err
			}},
		{kind: "Txn, read-only (waiter's re-check: compare + 2 ranges)", prep: withKey,
			run: func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
					Then(clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(1)),
						clientv3.OpGet(pfx, clientv3.WithPrefix(), clientv3.WithLimit(1))).Commit()
				return lease, err
			}},
		{kind: "Txn with a put (acquired_at write: compare + put)", prep: withKey,
			run: func(ctx context.Context, key string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), ">", 0)).
					Then(clientv3.OpPut(key, `{"acquired_at":"now"}`, clientv3.WithIgnoreLease())).Commit()
				return lease, err
			}},
		{kind: "LeaseGrant", prep: func(context.Context, string) (clientv3.LeaseID, error) { return 0, nil },
			run: func(ctx context.Context, _ string, _ clientv3.LeaseID) (clientv3.LeaseID, error) {
				g, err := cli.Grant(ctx, 60)
				if err != nil {
					return 0, err
				}
				return g.ID, nil
			}},
		{kind: "LeaseKeepAliveOnce (new stream, one renewal)", prep: withKey,
			run: func(ctx context.Context, _ string, lease clientv3.LeaseID) (clientv3.LeaseID, error) {
				_, err := cli.KeepAliveOnce(ctx, lease)
				return lease, err
			}},
		{kind: "LeaseRevoke (lease with one key)", prep: withKey, run: revoke},
		{kind: "DeleteRange (one key)", prep: withKey, run: deleteKey},
		{kind: "Range by a watcher, sent on the event of a LeaseRevoke", prep: withKey, timed: readAfter(revoke)},
		{kind: "Range by a watcher, sent on the event of a DeleteRange", prep: withKey, timed: readAfter(deleteKey)},
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
			switch {
			case err != nil:
			case s.timed != nil:
				lease, d, err = s.timed(rctx, key, lease)
			default:
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

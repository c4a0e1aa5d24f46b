package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/bench/internal/mono"
	"github.com/claimctl/claimctl/bench/internal/procs"
	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/bench/internal/stats"
	"github.com/claimctl/claimctl/pkg/claim"
)

// waiterTTL is the lease TTL of the in-process waiters: long enough that no
// periodic renewal (claimctl's every TTL/10, 30 s here; a clientv3
// session's every TTL/3) falls inside the measured chain, so the requests
// counted are the handoffs' own.
const waiterTTL = 300

// contender is one in-process client of a lock protocol, with its own etcd
// connection like a separate process would have.
type contender interface {
	lock(ctx context.Context) error
	unlock() error
	close()
}

// claimContender does what `claimctl run` does around its child: Acquire,
// Keep (renewals and a watch on its own key), RecordAcquired in the
// background once the hold has lasted recordAfter (as run does once its
// child has run that long), and Release (revoke).
type claimContender struct {
	cli  *clientv3.Client
	c    *claim.Client
	name string
	hold *claim.Hold
	stop context.CancelFunc
}

func (cc *claimContender) lock(ctx context.Context) error {
	h, err := cc.c.Acquire(ctx, claim.AcquireOptions{Name: cc.name, TTL: waiterTTL * time.Second, Limit: 1, Holder: claim.Holder{Owner: "bench", PID: os.Getpid()}})
	if err != nil {
		return err
	}
	cc.hold = h
	kctx, stop := context.WithCancel(context.Background())
	cc.stop = stop
	h.Keep(kctx)
	go func() {
		t := time.NewTimer(recordAfter)
		defer t.Stop()
		select {
		case <-kctx.Done():
		case <-t.C:
			_ = h.RecordAcquired(kctx)
		}
	}()
	return nil
}

// recordAfter is pkg/runner's: how long run's command runs before the run
// records its acquisition.
const recordAfter = time.Second

func (cc *claimContender) unlock() error {
	err := cc.hold.Release()
	cc.stop()
	return err
}

func (cc *claimContender) close() { cc.cli.Close() }

// mutexContender does what `etcdctl lock NAME CMD` does: a session, Lock,
// and after the command Unlock (a delete); then the process exits without
// revoking the session's lease, which expires by itself.
type mutexContender struct {
	cli  *clientv3.Client
	name string
	s    *concurrency.Session
	m    *concurrency.Mutex
}

func (mc *mutexContender) lock(ctx context.Context) error {
	s, err := concurrency.NewSession(mc.cli, concurrency.WithTTL(waiterTTL))
	if err != nil {
		return err
	}
	mc.s = s
	mc.m = concurrency.NewMutex(s, "claimctl/"+mc.name)
	return mc.m.Lock(ctx)
}

func (mc *mutexContender) unlock() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := mc.m.Unlock(ctx)
	mc.s.Orphan()
	return err
}

func (mc *mutexContender) close() { mc.cli.Close() }

func (b *bench) newContender(protocol, name string) (contender, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{b.srv.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	if protocol == "etcdctl" {
		return &mutexContender{cli: cli, name: name}, nil
	}
	c, err := claim.New(cli, claim.Options{Prefix: claim.DefaultPrefix, RequestTimeout: 10 * time.Second})
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &claimContender{cli: cli, c: c, name: name}, nil
}

// waiters queues W in-process waiters behind a holder on one claim, then
// releases the holder and lets the claim pass down the whole queue (each
// holds it 1 ms). Processes would cost ~20 MB each, 20 GB for 1,000; the
// in-process waiters run the same protocol code as the tools (pkg/claim as
// in `claimctl run`; concurrency.Mutex as in `etcdctl lock`), each with its
// own connection. From the server's counters: etcd requests per handoff.
func (b *bench) waiters(ctx context.Context) error {
	for i, w := range b.cfg.waiters {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := b.waitersTrial(ctx, t.name, w)
			if err != nil {
				return err
			}
			b.res.Waiters = append(b.res.Waiters, r)
			logf("%s protocol, %d waiters: enqueued in %.1fs, %d handoffs in %.1fs, gap median %.2f ms p90 %.2f ms, %.2f requests/handoff (%s), driver RSS %.0f MiB",
				t.name, w, r.EnqueueSec, r.Handoffs, r.ChainSec, r.Gap.Median, r.Gap.P90, r.PerHandTot, r.PerHandoff.String(), r.DriverRSSMiB)
			b.res.check(t.name, fmt.Sprintf("%d in-process waiters: all served, no overlap", w),
				r.Handoffs == w && r.Overlaps == 0, fmt.Sprintf("%d of %d served, %d overlaps", r.Handoffs, w, r.Overlaps))
		}
	}
	return nil
}

func (b *bench) waitersTrial(ctx context.Context, protocol string, w int) (*Waiters, error) {
	name := fmt.Sprintf("waiters-%s-%d", protocol, w)
	r := &Waiters{Protocol: protocol, Waiters: w}
	var all []contender
	defer func() {
		for _, c := range all {
			c.close()
		}
	}()
	holder, err := b.newContender(protocol, name)
	if err != nil {
		return nil, err
	}
	all = append(all, holder)
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = holder.lock(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%s: holder: %w", name, err)
	}

	chainTimeout := time.Duration(w)*200*time.Millisecond + time.Minute
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute+chainTimeout)
	defer cancel()
	var mu sync.Mutex
	var ivs []seclog.Interval
	var errs []error
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range w {
		c, err := b.newContender(protocol, name)
		if err != nil {
			return nil, err
		}
		all = append(all, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.lock(wctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			iv := seclog.Interval{Start: mono.Now(), Label: fmt.Sprint(i), Token: "-"}
			time.Sleep(time.Millisecond)
			iv.End = mono.Now()
			err := c.unlock()
			mu.Lock()
			ivs = append(ivs, iv)
			if err != nil {
				errs = append(errs, err)
			}
			mu.Unlock()
		}()
	}
	if !b.waitQueued(ctx, name, int64(w+1), 3*time.Minute) {
		return nil, fmt.Errorf("%s: not all %d waiters queued within 3m", name, w)
	}
	r.EnqueueSec = time.Since(t0).Seconds()
	m0, err := b.quiet(ctx)
	if err != nil {
		return nil, err
	}
	if m, err := procs.ReadMemory(os.Getpid()); err == nil {
		r.DriverRSSMiB = float64(m.RSS) / 1024
	}

	released := mono.Now()
	if err := holder.unlock(); err != nil {
		return nil, fmt.Errorf("%s: holder release: %w", name, err)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(chainTimeout):
		cancel()
		<-done
		return nil, fmt.Errorf("%s: the claim did not pass through %d waiters within %v", name, w, chainTimeout)
	}
	r.ChainSec = ms(mono.Since(released)) / 1000
	m1, err := b.srv.Scrape(ctx)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %d waiters failed; first: %w", name, len(errs), errs[0])
	}
	ivs = append(ivs, seclog.Interval{Start: released - 1, End: released, Label: "holder", Token: "-"})
	sortIntervals(ivs)
	a := seclog.Analyze(ivs)
	r.Handoffs = len(ivs) - 1
	r.Overlaps = a.Overlaps
	r.Gaps = stats.Durations(a.Gaps)
	r.Gap = stats.Summarize(r.Gaps)
	r.PerHandoff = server.Diff(m0, m1).Per(float64(r.Handoffs))
	r.PerHandTot = r.PerHandoff.Total()
	return r, nil
}

// quiet waits until the server has seen no request for 300 ms (the waiters'
// watches are set up asynchronously after they queue), at most 30 s, and
// returns that scrape.
func (b *bench) quiet(ctx context.Context) (server.Metrics, error) {
	prev, err := b.srv.Scrape(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		cur, err := b.srv.Scrape(ctx)
		if err != nil {
			return nil, err
		}
		if server.Diff(prev, cur).Total() == 0 {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

func sortIntervals(ivs []seclog.Interval) {
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start < ivs[j].Start })
}

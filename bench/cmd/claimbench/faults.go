package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"syscall"
	"time"

	"github.com/claimctl/claimctl/bench/internal/mono"
	"github.com/claimctl/claimctl/bench/internal/procs"
	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/stats"
	"github.com/claimctl/claimctl/pkg/etcdtest/cutproxy"
)

// faultTTL is the lease TTL of both tools in the fault scenarios (seconds).
const faultTTL = 5

// holderHold is how long the holder's child would run if nothing stopped it.
const holderHold = 2 * time.Minute

// pair is a holder whose child is running and a waiter queued behind it.
type pair struct {
	log            string
	holder, waiter *proc
	child          seclog.Interval // the holder's child
	exit           *procs.ExitWatch
}

// startPair starts a holder (through holderEndpoint) whose child sleeps,
// then a waiter (directly), and returns once the waiter is queued.
func (b *bench) startPair(ctx context.Context, t tool, name, holderEndpoint string) (*pair, error) {
	p := &pair{log: filepath.Join(b.work, name+".log")}
	var err error
	p.holder, err = b.start(t.lockArgs(holderEndpoint, name, faultTTL, b.section(p.log, holderHold, "holder")...))
	if err != nil {
		return nil, err
	}
	var ok bool
	if p.child, ok = b.waitStart(p.log, "holder", 20*time.Second); !ok {
		p.holder.kill()
		return nil, fmt.Errorf("%s: the holder's child did not start within 20s: %s", name, p.holder.stderr.String())
	}
	if p.exit, err = procs.WatchExit(p.child.Pid); err != nil {
		p.cleanup(b)
		return nil, err
	}
	p.waiter, err = b.start(t.lockArgs(b.srv.URL, name, faultTTL, b.section(p.log, 200*time.Millisecond, "waiter")...))
	if err != nil {
		p.cleanup(b)
		return nil, err
	}
	if !b.waitQueued(ctx, name, 2, 20*time.Second) {
		p.cleanup(b)
		return nil, fmt.Errorf("%s: the waiter was not queued within 20s", name)
	}
	// Let the waiter settle into its watch.
	time.Sleep(300 * time.Millisecond)
	return p, nil
}

// cleanup ends whatever of the pair is still running, each by its pid.
func (p *pair) cleanup(b *bench) {
	if p.exit != nil {
		p.exit.Close()
	}
	procs.KillIfExe(p.child.Pid, b.bin.Section)
	for _, pr := range []*proc{p.holder, p.waiter} {
		if pr == nil {
			continue
		}
		select {
		case <-pr.done:
		case <-time.After(10 * time.Second):
			logf("%s: %s still running 10s after the trial; killed", p.log, filepath.Base(pr.cmd.Path))
			pr.kill()
		}
	}
	if ivs, _ := seclog.Read(p.log); len(ivs) > 0 {
		for _, iv := range ivs {
			procs.KillIfExe(iv.Pid, b.bin.Section)
		}
	}
}

// failover SIGKILLs the holder's tool process while a waiter is queued and
// measures when the waiter's child starts, and whether the holder's child
// was still running at that moment (an orphan: etcdctl lock does not tie
// its child's life to its own).
func (b *bench) failover(ctx context.Context) error {
	for i := range b.cfg.failTrials {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := fmt.Sprintf("failover-%s-%d", t.name, i)
			p, err := b.startPair(ctx, t, name, b.srv.URL)
			if err != nil {
				return err
			}
			r := &Failover{Tool: t.name, TTL: faultTTL, Failover: math.NaN(), ChildGone: math.NaN()}
			killed := mono.Now()
			_ = p.holder.cmd.Process.Signal(syscall.SIGKILL)
			next, started := b.waitStart(p.log, "waiter", (faultTTL+20)*time.Second)
			if started {
				r.Failover = ms(time.Duration(next.Start - killed))
			}
			// Give the old child a moment to go if it is going at all.
			select {
			case <-p.exit.Done():
			case <-time.After(time.Second):
			}
			if at, gone := p.exit.At(); gone {
				r.ChildGone = ms(time.Duration(at - killed))
				r.OrphanAlive = started && at > next.Start
			} else {
				r.OrphanAlive = true
				r.Note = "the old child was still running 1s after the new one started; killed by the benchmark"
			}
			p.cleanup(b)
			b.res.Failover = append(b.res.Failover, r)
			logf("%s failover trial %d: waiter's child started %.0f ms after the kill; old child gone after %.0f ms; orphan alive: %v",
				t.name, i+1, r.Failover, r.ChildGone, r.OrphanAlive)
			limit := float64((faultTTL + 1) * 1000)
			b.res.check(t.name, fmt.Sprintf("failover trial %d: within TTL+1s, no live orphan", i+1),
				started && r.Failover <= limit && !r.OrphanAlive,
				fmt.Sprintf("failover %.0f ms (limit %.0f), orphan alive %v", r.Failover, limit, r.OrphanAlive))
		}
	}
	return nil
}

// netcut connects the holder through a proxy and blackholes it while a
// waiter is queued (connected directly). It measures when the holder's
// child is stopped and when the next holder's child starts.
func (b *bench) netcut(ctx context.Context) error {
	for i := range b.cfg.cutTrials {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.netcutTrial(ctx, t, i); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *bench) netcutTrial(ctx context.Context, t tool, i int) error {
	name := fmt.Sprintf("netcut-%s-%d", t.name, i)
	px, err := cutproxy.New(b.srv.URL)
	if err != nil {
		return err
	}
	defer func() {
		if err := px.Close(); err != nil {
			logf("%v", err)
		}
	}()
	p, err := b.startPair(ctx, t, name, px.Endpoint())
	if err != nil {
		return err
	}
	// Cut at a different point of the renewal cycles (claimctl renews every
	// TTL/10, etcdctl's session every TTL/3) each trial.
	time.Sleep(time.Duration(200+(i*600)%1700) * time.Millisecond)

	r := &NetCut{Tool: t.name, TTL: faultTTL, CutToStop: math.NaN(), CutToNext: math.NaN()}
	cut := mono.Now()
	px.Blackhole()
	next, started := b.waitStart(p.log, "waiter", (faultTTL+20)*time.Second)
	if started {
		r.CutToNext = ms(time.Duration(next.Start - cut))
	}
	// The window: 3s past the next start (or the end of the wait).
	select {
	case <-p.exit.Done():
	case <-time.After(3 * time.Second):
	}
	r.Window = ms(mono.Since(cut))
	if at, gone := p.exit.At(); gone {
		r.CutToStop = ms(time.Duration(at - cut))
		r.Overlap = started && at > next.Start
	} else {
		r.Overlap = true
	}
	// claimctl exits by itself once its child is gone (76, claim lost);
	// etcdctl waits for its child, which the cleanup ends.
	procs.KillIfExe(p.child.Pid, b.bin.Section)
	select {
	case <-p.holder.done:
	case <-time.After(10 * time.Second):
		p.holder.kill()
	}
	r.Exit = exitString(p.holder)
	px.Unblackhole()
	p.cleanup(b)
	b.res.NetCut = append(b.res.NetCut, r)
	logf("%s netcut trial %d: holder's child stopped %.0f ms after the cut, next child started %.0f ms after it; overlap %v; holder %s",
		t.name, i+1, r.CutToStop, r.CutToNext, r.Overlap, r.Exit)
	b.res.check(t.name, fmt.Sprintf("netcut trial %d: child stopped before the next holder's started", i+1),
		started && !r.Overlap, fmt.Sprintf("stop %.0f ms, next %.0f ms after the cut", r.CutToStop, r.CutToNext))
	return nil
}

func exitString(p *proc) string {
	if p.cmd.ProcessState == nil {
		return "running"
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", p.cmd.ProcessState.ExitCode())
}

// rss reads the tool's VmHWM (peak RSS so far) while its child runs, and
// for claimctl also the guardian's (a /bin/sh that stays beside the child).
// The tool runs under the rusage helper, which also reports its peak RSS
// over its whole life.
func (b *bench) rss(ctx context.Context) error {
	for _, t := range b.tools() {
		b.res.RSS[t.name] = &RSS{}
	}
	for i := range b.cfg.rssTrials {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.rssTrial(t, i); err != nil {
				return err
			}
		}
	}
	for _, t := range b.tools() {
		r := b.res.RSS[t.name]
		r.HWMSum, r.HelpSum, r.LifeSum = stats.Summarize(r.HWM), stats.Summarize(r.Helper), stats.Summarize(r.Lifetime)
		logf("%s: VmHWM while holding median %.0f KiB, whole life %.0f KiB (helper processes %.0f KiB)", t.name, r.HWMSum.Median, r.LifeSum.Median, r.HelpSum.Median)
	}
	return nil
}

func (b *bench) rssTrial(t tool, i int) error {
	name := fmt.Sprintf("rss-%s-%d", t.name, i)
	log := filepath.Join(b.work, name+".log")
	ufile := filepath.Join(b.work, name+".usage")
	p, err := b.startMeasured(t.lockArgs(b.srv.URL, name, 10, b.section(log, 1500*time.Millisecond, "rss")...), ufile, nil)
	if err != nil {
		return err
	}
	iv, ok := b.waitStart(log, "rss", 20*time.Second)
	if !ok {
		p.kill()
		return fmt.Errorf("%s: child did not start", name)
	}
	time.Sleep(500 * time.Millisecond) // holding: keeper and watch running
	kids := procs.Children(p.cmd.Process.Pid)
	if len(kids) != 1 {
		p.kill()
		return fmt.Errorf("%s: the rusage helper has %d children, want the tool alone", name, len(kids))
	}
	m, err := procs.ReadMemory(kids[0])
	if err != nil {
		p.kill()
		return err
	}
	r := b.res.RSS[t.name]
	r.HWM = append(r.HWM, float64(m.HWM))
	r.RSS = append(r.RSS, float64(m.RSS))
	for _, c := range procs.Children(kids[0]) {
		if c == iv.Pid {
			continue
		}
		if hm, err := procs.ReadMemory(c); err == nil {
			r.Helper = append(r.Helper, float64(hm.HWM))
		}
	}
	if err := p.wait(20 * time.Second); err != nil {
		return err
	}
	u, err := readUsage(ufile)
	if err != nil {
		return err
	}
	r.Lifetime = append(r.Lifetime, float64(u.maxRSS))
	return nil
}

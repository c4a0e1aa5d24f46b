package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/bench/internal/mono"
	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/bench/internal/stats"
)

// sectionHold is the critical section of the contention scenario, and
// contentionTTL the tools' lease TTL in seconds.
const (
	sectionHold   = 5 * time.Millisecond
	contentionTTL = 10
)

// contention runs P processes, each making K runs in a row of the tool
// around a 5 ms critical section, on one claim; for each P the two tools
// alternate, round by round (ABBA order). From the intervals the section
// helper logged: sections per second, handoff gaps, overlaps; from the
// server's counters: etcd requests per section.
func (b *bench) contention(ctx context.Context) error {
	for _, procs := range b.cfg.procs {
		cs, err := b.contend(ctx, b.local(b.srv.URL), "", procs, b.cfg.rounds)
		if err != nil {
			return err
		}
		b.res.Contention = append(b.res.Contention, cs...)
	}
	return nil
}

// contend runs rounds contention rounds per tool with procs processes
// at site s and returns one aggregate per tool; label names the setting in
// logs, checks and claim names.
func (b *bench) contend(ctx context.Context, s site, label string, procs, rounds int) ([]*Contention, error) {
	var out []*Contention
	agg := map[string]*Contention{}
	spans := map[string]time.Duration{}
	reqs := map[string]server.Requests{}
	for _, t := range b.tools() {
		agg[t.name] = &Contention{Tool: t.name, Procs: procs, Runs: b.cfg.runs, Rounds: rounds, TokensRise: true,
			PhaseSamples: map[string][]float64{}, Phases: map[string]stats.Summary{}}
		reqs[t.name] = server.Requests{Unary: map[string]float64{}, StreamMsgs: map[string]float64{}}
	}
	for round := range rounds {
		for _, t := range b.order(round) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			rr, err := b.contentionRound(ctx, t, s, fmt.Sprintf("cont%s-%s-%d-%d", label, t.name, procs, round), procs)
			if err != nil {
				return nil, err
			}
			a, failures := rr.a, rr.failures
			c := agg[t.name]
			for k, v := range rr.phases {
				c.PhaseSamples[k] = append(c.PhaseSamples[k], v...)
			}
			c.toolCPU += rr.toolCPU
			c.serverCPU += rr.serverCPU
			c.writes += rr.writes
			c.RoundGapMedians = append(c.RoundGapMedians, stats.Quantile(stats.Durations(a.Gaps), 0.5))
			c.Sections += a.Sections
			c.Overlaps += a.Overlaps
			c.Failures += failures
			c.TokensRise = c.TokensRise && a.TokensRise
			c.Gaps = append(c.Gaps, stats.Durations(a.Gaps)...)
			c.RoundRates = append(c.RoundRates, a.PerSecond)
			spans[t.name] += a.Span
			reqs[t.name] = addRequests(reqs[t.name], rr.reqs)
			logf("%s%s %d procs round %d: %d sections, %.1f/s, gap median %.1f ms, %d overlaps",
				t.name, label, procs, round+1, a.Sections, a.PerSecond, stats.Quantile(stats.Durations(a.Gaps), 0.5), a.Overlaps)
		}
	}
	for _, t := range b.tools() {
		c := agg[t.name]
		c.Gap = stats.Summarize(c.Gaps)
		for k, v := range c.PhaseSamples {
			c.Phases[k] = stats.Summarize(v)
		}
		if s := spans[t.name].Seconds(); s > 0 {
			c.PerSecond = float64(c.Sections) / s
		}
		if c.Sections > 0 {
			c.PerSection = reqs[t.name].Per(float64(c.Sections))
			c.PerSecReq = c.PerSection.Total()
			c.ToolCPUPerSection = ms(c.toolCPU) / float64(c.Sections)
			c.ServerCPUPerSection = ms(c.serverCPU) / float64(c.Sections)
			c.WritesPerSection = c.writes / float64(c.Sections)
		}
		out = append(out, c)
		want := procs * b.cfg.runs * rounds
		b.res.check(t.name, fmt.Sprintf("contention%s %d procs: every run ran, no overlap", label, procs),
			c.Sections == want && c.Overlaps == 0 && c.Failures == 0,
			fmt.Sprintf("%d of %d sections, %d overlaps, %d failed runs", c.Sections, want, c.Overlaps, c.Failures))
		if t.name == "claimctl" {
			b.res.check(t.name, fmt.Sprintf("contention%s %d procs: fencing tokens rise in start order", label, procs), c.TokensRise, fmt.Sprintf("tokens rise: %v", c.TokensRise))
		}
	}
	return out, nil
}

// roundResult is what one contention round measured.
type roundResult struct {
	a         seclog.Analysis
	reqs      server.Requests
	failures  int
	phases    map[string][]float64
	toolCPU   time.Duration // every tool process, with the children it reaped
	serverCPU time.Duration // the servers', lease expiries included
	writes    float64       // Raft entries committed, lease expiries included
}

// contentionRound runs one round and returns what the log shows, the etcd
// traffic, the CPU spent, and the number of runs that failed.
func (b *bench) contentionRound(ctx context.Context, t tool, s site, name string, nprocs int) (roundResult, error) {
	var rr roundResult
	log := filepath.Join(b.work, name+".log")
	// Before the first scrape, so that this request is not counted.
	leases0, err := s.cli.Leases(ctx)
	if err != nil {
		return rr, err
	}
	m0, err := s.scrape(ctx)
	if err != nil {
		return rr, err
	}
	events, err := recordEvents(ctx, s.cli, name)
	if err != nil {
		return rr, err
	}
	srvCPU0, err := s.cpu()
	if err != nil {
		return rr, err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	var firstErr error
	for p := range nprocs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range b.cfg.runs {
				if ctx.Err() != nil {
					return
				}
				label := fmt.Sprintf("p%02d-%03d", p, i)
				pr, err := b.start(t.lockArgsConn(s.conn, name, contentionTTL, b.section(log, sectionHold, label)...))
				if err == nil {
					err = pr.wait(2 * time.Minute)
					mu.Lock()
					rr.toolCPU += pr.cpu()
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					failures++
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		logf("%s: %d runs failed; first: %v", name, failures, firstErr)
	}
	evs := events()
	m1, err := s.scrape(ctx)
	if err != nil {
		return rr, err
	}
	// A lease left to expire (etcdctl lock leaves every one) is revoked by
	// the leader ttl later, with a Raft entry of its own: part of the
	// section's cost to the server, so the window ends once every lease
	// granted in it is gone, less the idle CPU of the wait. The requests
	// were counted before the polling began.
	waited := time.Duration(0)
	if !b.cfg.quick {
		if waited, err = awaitLeases(ctx, s.cli, len(leases0.Leases), contentionTTL*time.Second+5*time.Second); err != nil {
			logf("%s: %v", name, err)
		}
	}
	srvCPU1, err := s.cpu()
	if err != nil {
		return rr, err
	}
	m2, err := s.scrape(ctx)
	if err != nil {
		return rr, err
	}
	ivs, err := seclog.Read(log)
	if err != nil {
		return rr, err
	}
	rr.a, rr.reqs, rr.failures, rr.phases = seclog.Analyze(ivs), server.Diff(m0, m1), failures, decompose(ivs, evs)
	rr.serverCPU = srvCPU1 - srvCPU0 - time.Duration(s.idleCPU*float64(waited)/1000)
	rr.writes = m2[committedSeries] - m0[committedSeries]
	return rr, nil
}

// awaitLeases polls until at most n leases exist, for at most limit, and
// says how long it waited.
func awaitLeases(ctx context.Context, cli *clientv3.Client, n int, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		resp, err := cli.Leases(ctx)
		if err != nil {
			return time.Since(start), err
		}
		if len(resp.Leases) <= n {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return time.Since(start), fmt.Errorf("%d leases still there after %v (%d before the round)", len(resp.Leases), limit, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keyEvent is a change under a claim's prefix, timed when the driver's
// watch delivered it (tens of microseconds after etcd applied it).
type keyEvent struct {
	at      int64 // CLOCK_MONOTONIC
	deleted bool
}

// recordEvents watches claim name's prefix through the driver's client
// until the returned function is called, which returns the events seen.
func (b *bench) recordEvents(ctx context.Context, name string) (func() []keyEvent, error) {
	return recordEvents(ctx, b.cli, name)
}

// recordEvents watches claim name's prefix through cli until the returned
// function is called, which returns the events seen.
func recordEvents(ctx context.Context, cli *clientv3.Client, name string) (func() []keyEvent, error) {
	wctx, cancel := context.WithCancel(ctx)
	wch := cli.Watch(wctx, prefix(name), clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	select {
	case wr := <-wch:
		if !wr.Created {
			cancel()
			return nil, fmt.Errorf("watch %s: not created: %v", name, wr.Err())
		}
	case <-time.After(10 * time.Second):
		cancel()
		return nil, fmt.Errorf("watch %s: not created within 10s", name)
	}
	var evs []keyEvent
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wr := range wch {
			at := mono.Now()
			for _, ev := range wr.Events {
				evs = append(evs, keyEvent{at: at, deleted: ev.Type == clientv3.EventTypeDelete})
			}
		}
	}()
	return func() []keyEvent {
		time.Sleep(100 * time.Millisecond) // let the last events arrive
		cancel()
		<-done
		return evs
	}, nil
}

// decompose splits each handoff gap (previous section's end to the next
// section's start) at the deletion of the holder's key that etcd saw in
// between: the holder's side (its command exiting, being reaped, and the
// release applied) and the waiter's side (woken by its watch, verifying its
// turn, starting the next command).
func decompose(ivs []seclog.Interval, evs []keyEvent) map[string][]float64 {
	out := map[string][]float64{}
	for i := 1; i < len(ivs); i++ {
		prev, next := ivs[i-1], ivs[i]
		if prev.Open() || next.Start < prev.End {
			continue
		}
		var del *keyEvent
		for j := range evs {
			e := &evs[j]
			if e.deleted && e.at > prev.End && e.at < next.Start {
				del = e
				break
			}
		}
		if del == nil {
			continue
		}
		out[phaseRelease] = append(out[phaseRelease], ms(time.Duration(del.at-prev.End)))
		out[phaseStart] = append(out[phaseStart], ms(time.Duration(next.Start-del.at)))
	}
	return out
}

// The phases of a handoff gap.
const (
	phaseRelease = "child end -> holder's key deleted"
	phaseStart   = "key deleted -> next child started"
)

// subRequests is a minus b.
func subRequests(a, b server.Requests) server.Requests {
	neg := server.Requests{Unary: map[string]float64{}, StreamMsgs: map[string]float64{}}
	for k, v := range b.Unary {
		neg.Unary[k] = -v
	}
	for k, v := range b.StreamMsgs {
		neg.StreamMsgs[k] = -v
	}
	neg.Puts, neg.Deletes, neg.Ranges, neg.Txns, neg.WatchEvents = -b.Puts, -b.Deletes, -b.Ranges, -b.Txns, -b.WatchEvents
	return addRequests(a, neg)
}

func addRequests(a, b server.Requests) server.Requests {
	out := server.Requests{Unary: map[string]float64{}, StreamMsgs: map[string]float64{}}
	for _, r := range []server.Requests{a, b} {
		for k, v := range r.Unary {
			out.Unary[k] += v
		}
		for k, v := range r.StreamMsgs {
			out.StreamMsgs[k] += v
		}
		out.Puts += r.Puts
		out.Deletes += r.Deletes
		out.Ranges += r.Ranges
		out.Txns += r.Txns
		out.WatchEvents += r.WatchEvents
	}
	return out
}

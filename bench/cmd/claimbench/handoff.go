package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/bench/internal/stats"
)

// handoffHold is how long the holder's child runs in the isolated handoff
// scenario: long enough for the waiter to start, queue and settle.
const handoffHold = 400 * time.Millisecond

// handoff measures one handoff at a time between two processes with
// nothing else running: a holder whose child runs 400 ms, and a waiter
// queued behind it. Unlike the contention scenario, no other process starts
// or exits around the handoff, so the gap is the tools' own cost (protocol,
// process wake-up, child start) without CPU contention from their
// neighbours. The gap is split at the etcd events in between, as in the
// contention scenario.
func (b *bench) handoff(ctx context.Context) error {
	n := 30
	if b.cfg.quick {
		n = 3
	}
	return b.handoffs(ctx, b.local(b.srv.URL), "", n, b.res.Handoff)
}

// handoffs runs n isolated handoffs per tool at site s into the results by
// tool; label names the setting in logs, checks and claim names.
func (b *bench) handoffs(ctx context.Context, s site, label string, n int, into map[string]*Handoff) error {
	for _, t := range b.tools() {
		into[t.name] = &Handoff{Phases: map[string]stats.Summary{}, PhaseSamples: map[string][]float64{}}
	}
	// The driver's own watch is counted by the servers too; measure it
	// once, to take it out of each trial's traffic.
	m0, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	events, err := recordEvents(ctx, s.cli, "handoff-calibration"+label)
	if err != nil {
		return err
	}
	events()
	m1, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	s.overhead = server.Diff(m0, m1)
	for i := range n {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := b.handoffTrial(ctx, t, s, fmt.Sprintf("handoff%s-%s-%d", label, t.name, i), into[t.name]); err != nil {
				return err
			}
		}
	}
	for _, t := range b.tools() {
		h := into[t.name]
		if len(h.Gaps) > 0 {
			h.PerTrial = h.reqs.Per(float64(len(h.Gaps)))
			h.PerTrialTot = h.PerTrial.Total()
		}
		h.Gap = stats.Summarize(h.Gaps)
		for k, v := range h.PhaseSamples {
			h.Phases[k] = stats.Summarize(v)
		}
		logf("%s isolated handoff%s: gap median %.2f ms p90 %.2f ms over %d", t.name, label, h.Gap.Median, h.Gap.P90, len(h.Gaps))
		b.res.check(t.name, "isolated handoffs"+label+": no overlap", h.Overlaps == 0, fmt.Sprintf("%d handoffs, %d overlaps", len(h.Gaps), h.Overlaps))
	}
	return nil
}

func (b *bench) handoffTrial(ctx context.Context, t tool, s site, name string, h *Handoff) error {
	log := filepath.Join(b.work, name+".log")
	m0, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	events, err := recordEvents(ctx, s.cli, name)
	if err != nil {
		return err
	}
	holder, err := b.start(t.lockArgsConn(s.conn, name, 10, b.section(log, handoffHold, "holder")...))
	if err != nil {
		events()
		return err
	}
	if _, ok := b.waitStart(log, "holder", 20*time.Second); !ok {
		holder.kill()
		events()
		return fmt.Errorf("%s: the holder's child did not start", name)
	}
	waiter, err := b.start(t.lockArgsConn(s.conn, name, 10, b.section(log, 0, "waiter")...))
	if err != nil {
		holder.kill()
		events()
		return err
	}
	queued, reads := waitQueuedCount(ctx, s.cli, name, 2, 20*time.Second)
	errH, errW := holder.wait(30*time.Second), waiter.wait(30*time.Second)
	evs := events()
	if !queued {
		return fmt.Errorf("%s: the waiter was not queued", name)
	}
	if errH != nil || errW != nil {
		return fmt.Errorf("%s: %v %v", name, errH, errW)
	}
	m1, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	own := s.overhead.Per(1)
	own.Unary["Range"] += float64(reads)
	h.reqs = addRequests(h.reqs, subRequests(server.Diff(m0, m1), own))
	ivs, err := seclog.Read(log)
	if err != nil {
		return err
	}
	a := seclog.Analyze(ivs)
	h.Overlaps += a.Overlaps
	if len(a.Gaps) != 1 {
		return fmt.Errorf("%s: %d sections logged, want 2", name, len(ivs))
	}
	// The waiter must have been queued well before the holder's child
	// ended, or the gap would include its start-up.
	h.Gaps = append(h.Gaps, stats.Durations(a.Gaps)...)
	for k, v := range decompose(ivs, evs) {
		h.PhaseSamples[k] = append(h.PhaseSamples[k], v...)
	}
	return nil
}

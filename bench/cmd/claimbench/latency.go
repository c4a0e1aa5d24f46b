package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdtest/slowlink"
)

// netRTT is the round-trip time the latency scenario adds between the tools
// and etcd: about what separates availability zones of one cloud region,
// where an etcd cluster serving several hosts usually runs.
const netRTT = 2 * time.Millisecond

// NetLatency is the latency scenario: the uncontended, isolated handoff and
// 16-process contention measurements again, with netRTT added to every
// round trip between the tools and etcd.
type NetLatency struct {
	RTTms       float64             `json:"rtt_ms"`
	Uncontended map[string]*Latency `json:"uncontended"` // by tool
	Handoff     map[string]*Handoff `json:"handoff"`     // by tool
	Contention  []*Contention       `json:"contention"`
}

// byTool returns the contention results of claimctl and of etcdctl.
func (n *NetLatency) byTool() (claimctl, etcdctl *Contention) {
	for _, c := range n.Contention {
		switch c.Tool {
		case "claimctl":
			claimctl = c
		case "etcdctl":
			etcdctl = c
		}
	}
	return claimctl, etcdctl
}

// latency routes both tools through a slowlink.Link that delays each
// direction by netRTT/2. On loopback a round trip costs tens of microseconds and process
// start-up dominates every figure; with a network in between, the number of
// round trips on each path is what a user waits for.
func (b *bench) latency(ctx context.Context) error {
	px, err := slowlink.New(b.srv.URL)
	if err != nil {
		return err
	}
	defer px.Close()
	px.SetLatency(netRTT / 2)
	res := &NetLatency{RTTms: ms(netRTT), Uncontended: map[string]*Latency{}, Handoff: map[string]*Handoff{}}
	b.res.Net = res

	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	n, handoffs, procs, rounds := max(b.cfg.uncontended/4, 10), 15, 16, 2
	if b.cfg.quick {
		n, handoffs, procs, rounds = 3, 2, 4, 1
	}
	for _, t := range b.tools() {
		res.Uncontended[t.name] = &Latency{}
	}
	for i := range n {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			p, err := b.start(t.lockArgs(px.Endpoint(), "net-unc-"+t.name, 10, truePath))
			if err != nil {
				return err
			}
			if err := p.wait(30 * time.Second); err != nil {
				return fmt.Errorf("%s uncontended through the proxy: %w", t.name, err)
			}
			res.Uncontended[t.name].add(p.elapsed, p.cpu(), 0)
		}
	}
	for _, t := range b.tools() {
		res.Uncontended[t.name].summarize()
		logf("%s uncontended at %v RTT: median %.1f ms", t.name, netRTT, res.Uncontended[t.name].WallSum.Median)
	}
	if err := b.handoffs(ctx, b.local(px.Endpoint()), "-net", handoffs, res.Handoff); err != nil {
		return err
	}
	res.Contention, err = b.contend(ctx, b.local(px.Endpoint()), "-net", procs, rounds)
	return err
}

package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// uncontended times `claimctl run NAME -- true` against `etcdctl lock NAME
// true`, alternating one run of each, from fork to exit as the driver sees
// it. For a quarter as many runs it also times, the same way and
// interleaved, what the total is made of: `version` (start-up and exit, no
// etcd), `claimctl status` / `etcdctl get --prefix` (start-up, connection
// and one read), and the floor helper (the same round trips as an
// uncontended run with nothing else: what any Go etcd client pays).
func (b *bench) uncontended(ctx context.Context) error {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	for _, t := range b.tools() {
		b.res.Uncontended[t.name] = &Latency{}
		b.res.Startup[t.name] = &Latency{}
		b.res.Connect[t.name] = &Latency{}
	}
	b.res.Floor = &Latency{}
	runOnce := func(argv []string, into *Latency) error {
		p, err := b.start(argv)
		if err != nil {
			return err
		}
		if err := p.wait(30 * time.Second); err != nil {
			return err
		}
		if into != nil {
			into.add(p.elapsed, p.cpu(), 0)
		}
		return nil
	}
	lock := func(t tool) []string { return t.lockArgs(b.srv.URL, "unc-"+t.name, 10, truePath) }
	version := func(t tool) []string { return []string{t.exe, "version"} }
	read := func(t tool) []string {
		if t.name == "claimctl" {
			return []string{t.exe, "status", "--endpoints", b.srv.URL, "unc-read"}
		}
		return []string{t.exe, "--endpoints=" + b.srv.URL, "get", "--prefix", prefix("unc-read")}
	}
	floor := []string{b.bin.Floor, b.srv.URL, "unc-floor", truePath}

	// Warm the page cache and the server's connection handling.
	for i := range 3 {
		for _, t := range b.order(i) {
			if err := runOnce(lock(t), nil); err != nil {
				return err
			}
		}
	}
	n := b.cfg.uncontended
	nv := max(n/4, 5)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, t := range b.order(i) {
			if err := runOnce(lock(t), b.res.Uncontended[t.name]); err != nil {
				return err
			}
			if i < nv {
				if err := runOnce(version(t), b.res.Startup[t.name]); err != nil {
					return err
				}
				if err := runOnce(read(t), b.res.Connect[t.name]); err != nil {
					return err
				}
			}
		}
		if i < nv {
			if err := runOnce(floor, b.res.Floor); err != nil {
				return err
			}
		}
	}
	b.res.Floor.summarize()
	for _, t := range b.tools() {
		u, s := b.res.Uncontended[t.name], b.res.Startup[t.name]
		u.summarize()
		s.summarize()
		b.res.Connect[t.name].summarize()
		logf("%s: lock+true median %.1f ms p90 %.1f ms (CPU %.1f ms); version median %.1f ms",
			t.name, u.WallSum.Median, u.WallSum.P90, u.CPUSum.Median, s.WallSum.Median)
		b.res.check(t.name, "uncontended runs", len(u.Wall) == n, fmt.Sprintf("%d of %d runs exited 0", len(u.Wall), n))
	}
	return nil
}

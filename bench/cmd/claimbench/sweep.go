package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// sweepRTTs are the round-trip times of the cluster scenario's sweep: from
// no added latency (a co-located cluster) to farRTT (cross-region), so
// that the chart shows how each tool's latency grows with the network
// rather than at two points only.
var sweepRTTs = []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond}

// SweepPoint is the uncontended run of both tools at one RTT of the sweep.
type SweepPoint struct {
	RTTms float64               `json:"rtt_ms"`
	Tools map[string]*SweepTool `json:"tools"` // by tool
}

// SweepTool is one tool's uncontended runs at one RTT, summarized: the
// sweep keeps figures, not samples, so that results.json stays readable.
type SweepTool struct {
	Runs     int     `json:"runs"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
	// Requests is the etcd requests per run as the members counted them;
	// each is a round trip unless the tool pipelines them.
	Requests float64 `json:"requests_per_run"`
	Writes   float64 `json:"writes_per_run"`
}

// rttSweep runs n uncontended runs per tool at each of sweepRTTs on cs,
// through s, alternating the tools as runCosts does, and leaves the links
// at the last RTT of the sweep. A tool with no run at a point is left out
// of it, so that no NaN reaches results.json.
func (b *bench) rttSweep(ctx context.Context, cs *clusterSite, s site, kind, truePath string, n int) ([]SweepPoint, error) {
	var out []SweepPoint
	for _, rtt := range sweepRTTs {
		cs.setRTT(rtt)
		costs := map[string]*RunCost{}
		name := fmt.Sprintf("cl-sweep%d-%s", rtt.Microseconds(), kind)
		if err := b.runCosts(ctx, s, cs.idleCPU, n, func(t tool) []string {
			return t.lockArgsConn(s.conn, name+"-"+t.name, 10, truePath)
		}, costs); err != nil {
			return out, fmt.Errorf("sweep at %v: %w", rtt, err)
		}
		pt := SweepPoint{RTTms: ms(rtt), Tools: map[string]*SweepTool{}}
		for _, t := range b.tools() {
			c := costs[t.name]
			b.res.check(t.name, fmt.Sprintf("cluster %s: sweep runs at %g ms", kind, ms(rtt)), len(c.Wall) == n, fmt.Sprintf("%d of %d runs exited 0", len(c.Wall), n))
			if len(c.Wall) == 0 {
				continue
			}
			pt.Tools[t.name] = &SweepTool{Runs: len(c.Wall), MedianMs: c.WallSum.Median, P90Ms: c.WallSum.P90, Requests: c.RequestsTot, Writes: c.Writes}
		}
		if c, e := pt.Tools["claimctl"], pt.Tools["etcdctl"]; c != nil && e != nil {
			logf("sweep on %s cluster at %g ms: claimctl median %.1f ms (p90 %.1f, %.1f requests), etcdctl median %.1f ms (p90 %.1f, %.1f requests), %s",
				kind, ms(rtt), c.MedianMs, c.P90Ms, c.Requests, e.MedianMs, e.P90Ms, e.Requests, ratio(c.MedianMs, e.MedianMs))
		}
		out = append(out, pt)
	}
	return out, nil
}

// sweepSlope is the least-squares slope of tool's median latency against
// RTT over the sweep: the round trips a run waits for one after another,
// which the request count alone does not tell (requests can overlap). NaN
// with fewer than two points.
func sweepSlope(pts []SweepPoint, tool string) float64 {
	var xs, ys []float64
	for _, p := range pts {
		if t := p.Tools[tool]; t != nil {
			xs = append(xs, p.RTTms)
			ys = append(ys, t.MedianMs)
		}
	}
	if len(xs) < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return sxy / sxx
}

// sweepMarkdown renders each cluster kind's sweep as a table: the two
// tools' medians side by side, their ratio, and the requests per run that
// explain the difference.
func (r *Results) sweepMarkdown(sb *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(sb, format, args...) }
	for _, c := range r.Cluster {
		if len(c.Sweep) == 0 {
			continue
		}
		p("\nUncontended `run`/`lock` + `true` against RTT, %s cluster (TLS, 3 members; median, p90 in brackets):\n\n", c.Kind)
		p("| RTT | claimctl median | etcdctl median | claimctl / etcdctl | claimctl requests per run | etcdctl requests per run |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, pt := range c.Sweep {
			cell := func(t *SweepTool) (string, string) {
				if t == nil {
					return "-", "-"
				}
				return fmt.Sprintf("%s (%s), n=%d", num(t.MedianMs, "ms"), num(t.P90Ms, "ms"), t.Runs), fmt.Sprintf("%.2f", t.Requests)
			}
			cl, et := pt.Tools["claimctl"], pt.Tools["etcdctl"]
			cm, cr := cell(cl)
			em, er := cell(et)
			x := ""
			if cl != nil && et != nil {
				x = ratio(cl.MedianMs, et.MedianMs)
			}
			p("| %g ms | %s | %s | %s | %s | %s |\n", pt.RTTms, cm, em, x, cr, er)
		}
		if a, b := sweepSlope(c.Sweep, "claimctl"), sweepSlope(c.Sweep, "etcdctl"); !math.IsNaN(a) && !math.IsNaN(b) {
			p("\nLeast-squares slope of the median against RTT (round trips a run waits for in sequence): claimctl %.2f, etcdctl %.2f.\n", a, b)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/claimctl/claimctl/bench/internal/stats"
)

// publish writes results.json, results.md and the chart.
func (b *bench) publish() error {
	r := b.res
	r.Command = strings.Join(os.Args, " ")
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.cfg.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	md := r.markdown()
	if err := os.WriteFile(filepath.Join(b.cfg.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := r.charts(b.cfg); err != nil {
		return err
	}
	fmt.Println(md)
	logf("wrote %s, %s, %s%s", filepath.Join(b.cfg.out, "results.json"), filepath.Join(b.cfg.out, "results.md"), b.cfg.chart, r.rttChartNote(b.cfg))
	return nil
}

// charts writes the chart and, when the results have a sweep, the RTT
// chart.
func (r *Results) charts(cfg config) error {
	if err := r.chart(cfg.chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if err := r.rttChart(cfg.rttChart); err != nil {
		return fmt.Errorf("RTT chart: %w", err)
	}
	return nil
}

// rttChartNote names the RTT chart for the log line, if one was written.
func (r *Results) rttChartNote(cfg config) string {
	if r.rttPlot() == nil {
		return ""
	}
	return ", " + cfg.rttChart
}

// replotFrom renders results.md and the chart again from a results.json
// written by an earlier run, for a change to the tables or the chart.
func replotFrom(path string, cfg config) error {
	js, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(js, &r); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.WriteFile(filepath.Join(cfg.out, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if err := r.charts(cfg); err != nil {
		return err
	}
	logf("wrote %s, %s%s from %s", filepath.Join(cfg.out, "results.md"), cfg.chart, r.rttChartNote(cfg), path)
	return nil
}

// target is one of the targets, evaluated on this run.
type target struct {
	what, goal string
	met        bool
	value      string
}

func (r *Results) targets() []target {
	var out []target
	u, e := r.Uncontended["claimctl"], r.Uncontended["etcdctl"]
	if u != nil && e != nil && len(u.Wall) > 0 && len(e.Wall) > 0 {
		x := stats.Ratio(u.WallSum.Median, e.WallSum.Median)
		out = append(out, target{"uncontended latency (median)", "<= 0.7x", x <= 0.7, fmt.Sprintf("%.2fx", x)})
	}
	_, by := r.contentionByProcs()
	if c, d := by["claimctl"][16], by["etcdctl"][16]; c != nil && d != nil {
		x := pairedRatio(c.RoundRates, d.RoundRates)
		out = append(out, target{"sections/s, 16 processes", ">= 2x", x >= 2,
			fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", x, len(c.RoundRates), stats.Ratio(c.PerSecond, d.PerSecond))})
		g := pairedRatio(c.RoundGapMedians, d.RoundGapMedians)
		out = append(out, target{"handoff gap (median), 16 processes", "<= 0.5x", g <= 0.5,
			fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", g, len(c.RoundGapMedians), stats.Ratio(c.Gap.Median, d.Gap.Median))})
	}
	if n := r.Net; n != nil {
		at := fmt.Sprintf(", at %.0f ms RTT", n.RTTms)
		if u, e := n.Uncontended["claimctl"], n.Uncontended["etcdctl"]; u != nil && e != nil && len(u.Wall) > 0 && len(e.Wall) > 0 {
			x := stats.Ratio(u.WallSum.Median, e.WallSum.Median)
			out = append(out, target{"uncontended latency (median)" + at, "<= 0.7x", x <= 0.7, fmt.Sprintf("%.2fx", x)})
		}
		if c, d := n.byTool(); c != nil && d != nil {
			x := pairedRatio(c.RoundRates, d.RoundRates)
			out = append(out, target{fmt.Sprintf("sections/s, %d processes%s", c.Procs, at), ">= 2x", x >= 2,
				fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", x, len(c.RoundRates), stats.Ratio(c.PerSecond, d.PerSecond))})
			g := pairedRatio(c.RoundGapMedians, d.RoundGapMedians)
			out = append(out, target{fmt.Sprintf("handoff gap (median), %d processes%s", c.Procs, at), "<= 0.5x", g <= 0.5,
				fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", g, len(c.RoundGapMedians), stats.Ratio(c.Gap.Median, d.Gap.Median))})
		}
	}
	if c, d := r.RSS["claimctl"], r.RSS["etcdctl"]; c != nil && d != nil && len(c.HWM) > 0 && len(d.HWM) > 0 {
		x := stats.Ratio(c.HWMSum.Median, d.HWMSum.Median)
		out = append(out, target{"peak RSS while holding (VmHWM median)", "<= 1x", x <= 1, fmt.Sprintf("%.2fx", x)})
	}
	var fo []*Failover
	for _, f := range r.Failover {
		if f.Tool == "claimctl" {
			fo = append(fo, f)
		}
	}
	if len(fo) > 0 {
		ok, worst := true, 0.0
		for _, f := range fo {
			worst = math.Max(worst, f.Failover)
			if math.IsNaN(f.Failover) || f.Failover > float64((f.TTL+1)*1000) || f.OrphanAlive {
				ok = false
			}
		}
		out = append(out, target{"failover within TTL+1s, no live orphan", fmt.Sprintf("<= %d ms, 0 orphans", (faultTTL+1)*1000), ok, fmt.Sprintf("worst %.0f ms", worst)})
	}
	var nc []*NetCut
	for _, n := range r.NetCut {
		if n.Tool == "claimctl" {
			nc = append(nc, n)
		}
	}
	if len(nc) > 0 {
		ok, margin := true, math.Inf(1)
		for _, n := range nc {
			if n.Overlap || math.IsNaN(n.CutToNext) {
				ok = false
			}
			margin = math.Min(margin, n.CutToNext-n.CutToStop)
		}
		out = append(out, target{"cut-to-stop before the next holder starts", "every trial", ok, fmt.Sprintf("smallest margin %.0f ms", margin)})
	}
	return out
}

// markdown renders the results as the tables of docs/benchmarks.md.
func (r *Results) markdown() string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("Run %s on %s; claimctl from %s; %s; %s.\n\n", r.Date, r.Machine, r.Checkout, r.Etcdctl, map[bool]string{true: "QUICK MODE (tiny counts: correctness only, figures meaningless)", false: "full mode"}[r.Quick])

	if len(r.LoadAvg) > 0 {
		var parts []string
		for _, n := range scenarioNames {
			if l, ok := r.LoadAvg[n]; ok {
				parts = append(parts, n+" "+l)
			}
		}
		p("Load average (1/5/15 min) as each scenario began: %s.\n\n", strings.Join(parts, "; "))
	}
	p("| figure | claimctl | etcdctl lock | claimctl / etcdctl |\n|---|---:|---:|---:|\n")
	row := func(name string, a, b float64, unit string) {
		p("| %s | %s | %s | %s |\n", name, num(a, unit), num(b, unit), ratio(a, b))
	}
	// phaseRows adds the median of each phase of the handoff gap.
	phaseRows := func(label string, c, d map[string]stats.Summary) {
		for _, ph := range []string{phaseRelease, phaseStart} {
			if cp, dp := c[ph], d[ph]; cp.N > 0 && dp.N > 0 {
				row(fmt.Sprintf("%s %s, median", label, ph), cp.Median, dp.Median, "ms")
			}
		}
	}
	if u, e := r.Uncontended["claimctl"], r.Uncontended["etcdctl"]; u != nil && e != nil {
		row(fmt.Sprintf("uncontended `run`/`lock` + `true`, median (n=%d each)", len(u.Wall)), u.WallSum.Median, e.WallSum.Median, "ms")
		row("uncontended, p90", u.WallSum.P90, e.WallSum.P90, "ms")
		row("uncontended, CPU time per run (user+sys), median", u.CPUSum.Median, e.CPUSum.Median, "ms")
		if s, t := r.Startup["claimctl"], r.Startup["etcdctl"]; s != nil && t != nil {
			row(fmt.Sprintf("for comparison: start-up and exit alone (`version`, no etcd), median (n=%d)", len(s.Wall)), s.WallSum.Median, t.WallSum.Median, "ms")
		}
		if s, t := r.Connect["claimctl"], r.Connect["etcdctl"]; s != nil && t != nil {
			row("for comparison: start-up, connect, one read (`status NAME` / `get --prefix`), median", s.WallSum.Median, t.WallSum.Median, "ms")
		}
		if f := r.Floor; f != nil && len(f.Wall) > 0 {
			row(fmt.Sprintf("reference: bench/cmd/floor, the same 3 round trips and nothing else, median (n=%d)", len(f.Wall)), f.WallSum.Median, e.WallSum.Median, "ms")
		}
	}
	procs, by := r.contentionByProcs()
	for _, n := range procs {
		c, d := by["claimctl"][n], by["etcdctl"][n]
		if c == nil || d == nil {
			continue
		}
		row(fmt.Sprintf("%d processes x %d runs x %d rounds: sections/s (pooled)", n, c.Runs, c.Rounds), c.PerSecond, d.PerSecond, "/s")
		p("| %d processes: sections/s, round by round (claimctl, etcdctl) | %s | %s | %.2fx median of round pairs |\n", n, list(c.RoundRates), list(d.RoundRates), pairedRatio(c.RoundRates, d.RoundRates))
		row(fmt.Sprintf("%d processes: handoff gap median", n), c.Gap.Median, d.Gap.Median, "ms")
		row(fmt.Sprintf("%d processes: handoff gap p90", n), c.Gap.P90, d.Gap.P90, "ms")
		p("| %d processes: handoff gap median, round by round | %s | %s | %.2fx median of round pairs |\n", n, list(c.RoundGapMedians), list(d.RoundGapMedians), pairedRatio(c.RoundGapMedians, d.RoundGapMedians))
		phaseRows(fmt.Sprintf("%d processes: gap phase", n), c.Phases, d.Phases)
		row(fmt.Sprintf("%d processes: etcd requests per section", n), c.PerSecReq, d.PerSecReq, "")
		row(fmt.Sprintf("%d processes: CPU per section, tool processes (with their children)", n), c.ToolCPUPerSection, d.ToolCPUPerSection, "ms")
		row(fmt.Sprintf("%d processes: etcd writes (Raft entries) per section, lease expiries included", n), c.WritesPerSection, d.WritesPerSection, "")
		row(fmt.Sprintf("%d processes: CPU per section, server, lease expiries included", n), c.ServerCPUPerSection, d.ServerCPUPerSection, "ms")
		p("| %d processes: overlaps seen | %d of %d | %d of %d | |\n", n, c.Overlaps, c.Sections, d.Overlaps, d.Sections)
	}
	if c, d := r.Handoff["claimctl"], r.Handoff["etcdctl"]; c != nil && d != nil && len(c.Gaps) > 0 && len(d.Gaps) > 0 {
		row(fmt.Sprintf("isolated handoff (2 processes, nothing else running, n=%d): gap median", len(c.Gaps)), c.Gap.Median, d.Gap.Median, "ms")
		row("isolated handoff: gap p90", c.Gap.P90, d.Gap.P90, "ms")
		phaseRows("isolated handoff: phase", c.Phases, d.Phases)
	}
	if n := r.Net; n != nil {
		at := fmt.Sprintf("at %.0f ms RTT", n.RTTms)
		if u, e := n.Uncontended["claimctl"], n.Uncontended["etcdctl"]; u != nil && e != nil && len(u.Wall) > 0 && len(e.Wall) > 0 {
			row(fmt.Sprintf("%s: uncontended `run`/`lock` + `true`, median (n=%d each)", at, len(u.Wall)), u.WallSum.Median, e.WallSum.Median, "ms")
			row(at+": uncontended, p90", u.WallSum.P90, e.WallSum.P90, "ms")
		}
		if c, d := n.Handoff["claimctl"], n.Handoff["etcdctl"]; c != nil && d != nil && len(c.Gaps) > 0 && len(d.Gaps) > 0 {
			row(fmt.Sprintf("%s: isolated handoff gap median (n=%d)", at, len(c.Gaps)), c.Gap.Median, d.Gap.Median, "ms")
			phaseRows(at+": isolated handoff phase", c.Phases, d.Phases)
		}
		if c, d := n.byTool(); c != nil && d != nil {
			row(fmt.Sprintf("%s: %d processes x %d runs x %d rounds: sections/s (pooled)", at, c.Procs, c.Runs, c.Rounds), c.PerSecond, d.PerSecond, "/s")
			row(fmt.Sprintf("%s: %d processes: handoff gap median", at, c.Procs), c.Gap.Median, d.Gap.Median, "ms")
			row(fmt.Sprintf("%s: %d processes: handoff gap p90", at, c.Procs), c.Gap.P90, d.Gap.P90, "ms")
			p("| %s: %d processes: overlaps seen | %d of %d | %d of %d | |\n", at, c.Procs, c.Overlaps, c.Sections, d.Overlaps, d.Sections)
		}
	}
	fo := map[string][]float64{}
	orphans := map[string]int{}
	for _, f := range r.Failover {
		fo[f.Tool] = append(fo[f.Tool], f.Failover)
		if f.OrphanAlive {
			orphans[f.Tool]++
		}
	}
	if len(fo) > 0 {
		row(fmt.Sprintf("failover, TTL %ds: kill -> waiter's child starts, median", faultTTL), stats.Quantile(fo["claimctl"], 0.5), stats.Quantile(fo["etcdctl"], 0.5), "ms")
		row("failover: worst", stats.Quantile(fo["claimctl"], 1), stats.Quantile(fo["etcdctl"], 1), "ms")
		p("| failover: old child still running when the new one started | %d of %d | %d of %d | |\n",
			orphans["claimctl"], len(fo["claimctl"]), orphans["etcdctl"], len(fo["etcdctl"]))
	}
	stop, next := map[string][]float64{}, map[string][]float64{}
	overl, never := map[string]int{}, map[string]int{}
	cuts := map[string]int{}
	for _, n := range r.NetCut {
		cuts[n.Tool]++
		next[n.Tool] = append(next[n.Tool], n.CutToNext)
		if math.IsNaN(n.CutToStop) {
			never[n.Tool]++
		} else {
			stop[n.Tool] = append(stop[n.Tool], n.CutToStop)
		}
		if n.Overlap {
			overl[n.Tool]++
		}
	}
	if len(cuts) > 0 {
		cell := func(t string) string {
			if len(stop[t]) == 0 {
				return fmt.Sprintf("never (%d of %d)", never[t], cuts[t])
			}
			s := fmt.Sprintf("%.0f ms", stats.Quantile(stop[t], 0.5))
			if never[t] > 0 {
				s += fmt.Sprintf("; never in %d of %d", never[t], cuts[t])
			}
			return s
		}
		p("| network cut, TTL %ds: cut -> holder's child stopped, median | %s | %s | |\n", faultTTL, cell("claimctl"), cell("etcdctl"))
		row("network cut: cut -> next holder's child starts, median", stats.Quantile(next["claimctl"], 0.5), stats.Quantile(next["etcdctl"], 0.5), "ms")
		p("| network cut: two children running at once | %d of %d | %d of %d | |\n", overl["claimctl"], cuts["claimctl"], overl["etcdctl"], cuts["etcdctl"])
	}
	if c, d := r.RSS["claimctl"], r.RSS["etcdctl"]; c != nil && d != nil && len(c.HWM) > 0 {
		row(fmt.Sprintf("peak RSS of the tool while holding (VmHWM, median of %d)", len(c.HWM)), c.HWMSum.Median/1024, d.HWMSum.Median/1024, "MiB")
		row("peak RSS of the tool over its whole life (ru_maxrss)", c.LifeSum.Median/1024, d.LifeSum.Median/1024, "MiB")
		if len(c.Helper) > 0 {
			row("... plus claimctl's guardian (/bin/sh) while holding", c.HelpSum.Median/1024, math.NaN(), "MiB")
		}
	}
	if s := r.Scale; s != nil {
		p("\n%d claims held at once (created in-process through pkg/claim in %.1f s):\n\n", s.Claims, s.CreateSecs)
		p("| command | wall median | CPU median | peak RSS |\n|---|---:|---:|---:|\n")
		labels := make([]string, 0, len(s.Commands))
		for l := range s.Commands {
			labels = append(labels, l)
		}
		slices.Sort(labels)
		for _, l := range labels {
			c := s.Commands[l]
			p("| `%s` | %.0f ms | %.0f ms | %.1f MiB |\n", l, c.WallSum.Median, c.CPUSum.Median, c.RSSSum.Median/1024)
		}
	}
	if len(r.Waiters) > 0 {
		p("\nIn-process waiters on one claim (each with its own connection; claimctl = pkg/claim Acquire+Keep+Release as in `run`, etcdctl = concurrency.Mutex as in `etcdctl lock`):\n\n")
		p("| protocol | waiters | handoff gap median | p90 | etcd requests per handoff | watch events per handoff | driver RSS |\n|---|---:|---:|---:|---|---:|---:|\n")
		for _, w := range r.Waiters {
			p("| %s | %d | %.2f ms | %.2f ms | %.2f: %s | %.2f | %.0f MiB |\n", w.Protocol, w.Waiters, w.Gap.Median, w.Gap.P90, w.PerHandTot, w.PerHandoff.String(), w.PerHandoff.WatchEvents, w.DriverRSSMiB)
		}
	}
	if len(r.Requests) > 0 {
		p("\nSingle requests and steps, timed one at a time from the driver (what a handoff is made of):\n\n| request or step | median | p90 |\n|---|---:|---:|\n")
		for _, q := range r.Requests {
			p("| %s | %.2f ms | %.2f ms |\n", q.Kind, q.Summary.Median, q.Summary.P90)
		}
	}
	r.siteMarkdown(&sb)
	if ts := r.targets(); len(ts) > 0 && !r.Quick {
		p("\n| target (claimctl vs etcdctl lock, same run) | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range ts {
			p("| %s | %s | %s | %s |\n", t.what, t.goal, t.value, map[bool]string{true: "yes", false: "**no**"}[t.met])
		}
	}
	p("\nCorrectness checks: ")
	var fails, findings []string
	for _, c := range r.Checks {
		if !c.OK && c.Finding {
			findings = append(findings, c.Name)
		} else if !c.OK {
			fails = append(fails, c.Name)
		}
	}
	p("%d run, %d failed", len(r.Checks), len(fails))
	if len(fails) > 0 {
		p(" (%s)", strings.Join(fails, "; "))
	}
	if len(findings) > 0 {
		p("; etcdctl lock findings: %s", strings.Join(findings, "; "))
	}
	p(".\n")
	return sb.String()
}

// pairedRatio is the median of a[i]/b[i]: round i of the two tools ran
// back to back, so each ratio compares them under the same load.
func pairedRatio(a, b []float64) float64 {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if x := stats.Ratio(a[i], b[i]); !math.IsNaN(x) {
			rs = append(rs, x)
		}
	}
	return stats.Quantile(rs, 0.5)
}

// list formats a few numbers for a table cell.
func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
}

func num(x float64, unit string) string {
	if math.IsNaN(x) {
		return "-"
	}
	switch unit {
	case "ms":
		if x >= 100 {
			return fmt.Sprintf("%.0f ms", x)
		}
		return fmt.Sprintf("%.1f ms", x)
	case "/s":
		return fmt.Sprintf("%.1f/s", x)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", x)
	}
	return fmt.Sprintf("%.2f", x)
}

func ratio(a, b float64) string {
	x := stats.Ratio(a, b)
	if math.IsNaN(x) {
		return ""
	}
	return fmt.Sprintf("%.2fx", x)
}

package main

import (
	"fmt"
	"strings"

	"github.com/claimctl/claimctl/bench/internal/stats"
)

// siteTargets are issue 12's targets for the realistic cluster and the
// cron fleet, evaluated on this run.
func (r *Results) siteTargets() []target {
	var out []target
	for _, c := range r.Cluster {
		on := fmt.Sprintf(", %s cluster, TLS, %.0f ms RTT", c.Kind, c.RTTms)
		if u, e := c.Uncontended["claimctl"], c.Uncontended["etcdctl"]; u != nil && e != nil && len(u.Wall) > 0 && len(e.Wall) > 0 {
			x := stats.Ratio(u.WallSum.Median, e.WallSum.Median)
			out = append(out, target{"uncontended latency (median)" + on, "<= 0.7x", x <= 0.7,
				fmt.Sprintf("%.2fx (%.1f vs %.1f ms; %.1f vs %.1f requests)", x, u.WallSum.Median, e.WallSum.Median, u.RequestsTot, e.RequestsTot)})
		}
		if h, g := c.Handoff["claimctl"], c.Handoff["etcdctl"]; h != nil && g != nil && len(h.Gaps) > 0 && len(g.Gaps) > 0 {
			x := stats.Ratio(h.Gap.Median, g.Gap.Median)
			out = append(out, target{"isolated handoff gap (median)" + on, "<= 0.7x", x <= 0.7, fmt.Sprintf("%.2fx", x)})
		}
		cl, et := byTool(c.Contention)
		if cl != nil && et != nil {
			g := pairedRatio(cl.RoundGapMedians, et.RoundGapMedians)
			out = append(out, target{fmt.Sprintf("handoff gap (median), %d processes%s", cl.Procs, on), "<= 0.7x", g <= 0.7,
				fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", g, len(cl.RoundGapMedians), stats.Ratio(cl.Gap.Median, et.Gap.Median))})
			x := pairedRatio(cl.RoundRates, et.RoundRates)
			out = append(out, target{fmt.Sprintf("sections/s, %d processes%s", cl.Procs, on), ">= 1.4x", x >= 1.4,
				fmt.Sprintf("%.2fx (median of %d round pairs; pooled %.2fx)", x, len(cl.RoundRates), stats.Ratio(cl.PerSecond, et.PerSecond))})
		}
	}
	if cr := r.Cron; cr != nil {
		if ct := cr.Tools["claimctl"]; ct != nil {
			out = append(out, target{fmt.Sprintf("skipped cron run (%d at once, -n on a busy claim): etcd writes", cr.Procs), "0", ct.WritesPerNotRan <= 0.005,
				fmt.Sprintf("%.2f per skipped run (%.0f%% raced to the full path)", ct.WritesPerNotRan, 100*racedFraction(ct, cr.Procs))})
		}
	}
	return out
}

// racedFraction is the share of the runs that did not run the job but
// took the full path (a lease, the create transaction, its revocation).
func racedFraction(ct *CronTool, procs int) float64 {
	raced, notRan := 0, 0
	for i := range ct.Raced {
		raced += ct.Raced[i]
		notRan += procs - ct.Ran[i]
	}
	if notRan == 0 {
		return 0
	}
	return float64(raced) / float64(notRan)
}

func byTool(cs []*Contention) (claimctl, etcdctl *Contention) {
	for _, c := range cs {
		switch c.Tool {
		case "claimctl":
			claimctl = c
		case "etcdctl":
			etcdctl = c
		}
	}
	return claimctl, etcdctl
}

// siteMarkdown renders the realistic-cluster, password and cron-fleet
// tables.
func (r *Results) siteMarkdown(sb *strings.Builder) {
	if len(r.Cluster) == 0 && len(r.Auth) == 0 && r.Cron == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(sb, format, args...) }
	p("\n### Where users run it: TLS, a 3-member cluster, cron fleets\n\n")
	p("| figure | claimctl | etcdctl lock | claimctl / etcdctl |\n|---|---:|---:|---:|\n")
	row := func(name string, a, b float64, unit string) {
		p("| %s | %s | %s | %s |\n", name, num(a, unit), num(b, unit), ratio(a, b))
	}
	reqRow := func(name string, a, b float64, ad, bd string) {
		p("| %s | %.2f: %s | %.2f: %s | %s |\n", name, a, ad, b, bd, ratio(a, b))
	}
	for _, c := range r.Cluster {
		at := fmt.Sprintf("%s, %.0f ms RTT", c.Kind, c.RTTms)
		if u, e := c.Uncontended["claimctl"], c.Uncontended["etcdctl"]; u != nil && e != nil && len(u.Wall) > 0 {
			row(fmt.Sprintf("%s: uncontended, median (n=%d each)", at, len(u.Wall)), u.WallSum.Median, e.WallSum.Median, "ms")
			row(at+": uncontended, p90", u.WallSum.P90, e.WallSum.P90, "ms")
			reqRow(at+": uncontended, etcd requests per run", u.RequestsTot, e.RequestsTot, u.Requests.String(), e.Requests.String())
			row(at+": uncontended, writes committed per run", u.Writes, e.Writes, "")
			row(at+": uncontended, members' CPU per run (less idle)", u.ServerCPUms, e.ServerCPUms, "ms")
			row(at+": uncontended, tool CPU per run", u.CPUSum.Median, e.CPUSum.Median, "ms")
		}
		if h, g := c.Handoff["claimctl"], c.Handoff["etcdctl"]; h != nil && g != nil && len(h.Gaps) > 0 {
			row(fmt.Sprintf("%s: isolated handoff gap median (n=%d)", at, len(h.Gaps)), h.Gap.Median, g.Gap.Median, "ms")
			row(at+": isolated handoff gap p90", h.Gap.P90, g.Gap.P90, "ms")
			for _, ph := range []string{phaseRelease, phaseStart} {
				if a, b := h.Phases[ph], g.Phases[ph]; a.N > 0 && b.N > 0 {
					row(fmt.Sprintf("%s: isolated handoff %s, median", at, ph), a.Median, b.Median, "ms")
				}
			}
			reqRow(at+": isolated handoff, etcd requests per trial (holder's and waiter's whole runs)", h.PerTrialTot, g.PerTrialTot, h.PerTrial.String(), g.PerTrial.String())
		}
		if cl, et := byTool(c.Contention); cl != nil && et != nil {
			n := cl.Procs
			row(fmt.Sprintf("%s: %d processes x %d runs x %d rounds: sections/s (pooled)", at, n, cl.Runs, cl.Rounds), cl.PerSecond, et.PerSecond, "/s")
			p("| %s: %d processes: sections/s, round by round | %s | %s | %.2fx median of round pairs |\n", at, n, list(cl.RoundRates), list(et.RoundRates), pairedRatio(cl.RoundRates, et.RoundRates))
			row(fmt.Sprintf("%s: %d processes: handoff gap median", at, n), cl.Gap.Median, et.Gap.Median, "ms")
			row(fmt.Sprintf("%s: %d processes: handoff gap p90", at, n), cl.Gap.P90, et.Gap.P90, "ms")
			reqRow(fmt.Sprintf("%s: %d processes: etcd requests per section", at, n), cl.PerSecReq, et.PerSecReq, cl.PerSection.String(), et.PerSection.String())
			row(fmt.Sprintf("%s: %d processes: etcd writes (Raft entries) per section, lease expiries included", at, n), cl.WritesPerSection, et.WritesPerSection, "")
			row(fmt.Sprintf("%s: %d processes: members' CPU per section, lease expiries included", at, n), cl.ServerCPUPerSection, et.ServerCPUPerSection, "ms")
			p("| %s: %d processes: overlaps seen | %d of %d | %d of %d | |\n", at, n, cl.Overlaps, cl.Sections, et.Overlaps, et.Sections)
		}
		if u, e := c.Far["claimctl"], c.Far["etcdctl"]; u != nil && e != nil && len(u.Wall) > 0 {
			far := fmt.Sprintf("%s, %.0f ms RTT", c.Kind, c.FarRTTms)
			row(fmt.Sprintf("%s: uncontended, median (n=%d each)", far, len(u.Wall)), u.WallSum.Median, e.WallSum.Median, "ms")
			row(far+": uncontended, p90", u.WallSum.P90, e.WallSum.P90, "ms")
			reqRow(far+": uncontended, etcd requests per run", u.RequestsTot, e.RequestsTot, u.Requests.String(), e.Requests.String())
		}
	}
	for _, a := range r.Auth {
		at := fmt.Sprintf("%s, %.0f ms RTT", a.Kind, a.RTTms)
		for _, m := range []struct {
			label string
			by    map[string]*RunCost
		}{{"client certificate", a.Cert}, {"certificate + --user/--password", a.Password}} {
			u, e := m.by["claimctl"], m.by["etcdctl"]
			if u == nil || e == nil || len(u.Wall) == 0 {
				continue
			}
			row(fmt.Sprintf("%s, %s: uncontended, median (n=%d each)", at, m.label, len(u.Wall)), u.WallSum.Median, e.WallSum.Median, "ms")
			row(fmt.Sprintf("%s, %s: members' CPU per run (less idle)", at, m.label), u.ServerCPUms, e.ServerCPUms, "ms")
			row(fmt.Sprintf("%s, %s: writes committed per run", at, m.label), u.Writes, e.Writes, "")
			reqRow(fmt.Sprintf("%s, %s: etcd requests per run", at, m.label), u.RequestsTot, e.RequestsTot, u.Requests.String(), e.Requests.String())
		}
	}
	r.sweepMarkdown(sb)
	if cr := r.Cron; cr != nil {
		c, e := cr.Tools["claimctl"], cr.Tools["etcdctl"]
		p("\nCron fleet: %d runs released at once behind a barrier, %d rounds, a new claim each round, on the %s cluster (TLS, %.0f ms RTT). "+
			"claimctl: `run -n -E 0 --min-hold %gs JOB -- job`; etcdctl: `timeout %s etcdctl lock --ttl=%d JOB -- job` (it cannot skip).\n\n",
			cr.Procs, cr.Rounds, cr.Kind, cr.RTTms, cr.MinHoldS, cr.Timeout, etcdctlCronTTL)
		p("| figure | claimctl | etcdctl lock |\n|---|---:|---:|\n")
		ran := func(ct *CronTool) string {
			one := 0
			for _, r := range ct.Ran {
				if r == 1 {
					one++
				}
			}
			return fmt.Sprintf("%d of %d rounds (ran per round: %v)", one, len(ct.Ran), ct.Ran)
		}
		p("| exactly one run ran the job | %s | %s |\n", ran(c), ran(e))
		mp := func(s stats.Summary) string {
			if s.N == 0 {
				return "-"
			}
			return num(s.Median, "ms") + " / " + num(s.P90, "ms")
		}
		p("| runs that did not run the job: release -> exit, median / p90 | %s | %s |\n", mp(c.Exit), mp(e.Exit))
		p("| runs that ran the job and exited: release -> exit, median / p90 | - (keeps the claim %gs) | %s |\n", cr.MinHoldS, mp(e.RanExit))
		p("| runs that exited non-zero | %d | %d (killed by timeout) |\n", c.Failed, e.Failed)
		p("| etcd writes of a run alone on a free claim (calibration) | %.0f | %.0f (its lease expiry included) |\n", c.SoloWrites, e.SoloWrites)
		p("| etcd writes per run that did not run the job | %.2f | %.2f |\n", c.WritesPerNotRan, e.WritesPerNotRan)
		p("| runs that did not run the job but took the full path (lease, create, revoke) | %.0f%% (per round: %v) | - |\n", 100*racedFraction(c, cr.Procs), c.Raced)
		p("| etcd requests per run, every run | %.2f: %s | %.2f: %s |\n", c.PerRunTot, c.PerRun.String(), e.PerRunTot, e.PerRun.String())
	}
	if ts := r.siteTargets(); len(ts) > 0 {
		p("\n| target (issue 12) | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range ts {
			p("| %s | %s | %s | %s |\n", t.what, t.goal, t.value, map[bool]string{true: "yes", false: "**no**"}[t.met])
		}
	}
}

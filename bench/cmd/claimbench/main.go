// Command claimbench measures claimctl side by side with `etcdctl lock`
// (etcd v3.7.3, built unchanged from its release) against one
// claimctl-server on loopback. Both tools are measured alternately in the
// same run, so every figure is also a ratio that survives a noisy machine.
//
// Scenarios (see docs/benchmarks.md for what each does and does not show):
//
//	uncontended  `claimctl run NAME -- true` vs `etcdctl lock NAME true`
//	contention   4 and 16 processes around a 5 ms critical section
//	handoff      one handoff at a time between two processes, nothing else running
//	failover     the holder SIGKILLed: when the waiter's child starts
//	netcut       the holder's traffic blackholed: when its child stops
//	rss          peak RSS of the tool while its child runs
//	scale        10,000 claims held: list and status
//	waiters      10/100/1000 in-process waiters on one claim
//	requests     the latency of each request and step of a handoff
//	cluster      3 TLS members (claimctl-server, then etcd) at 2 ms RTT: uncontended,
//	             isolated handoff, 16 processes; uncontended at 10 ms RTT;
//	             uncontended at 0, 1, 2, 5 and 10 ms RTT (the sweep, -sweep-n)
//	auth         the uncontended run with --user/--password: latency, server CPU
//	cron         64 `run -n -E 0 --min-hold` released at once, 20 rounds:
//	             writes per skipped run, time to exit, exactly one ran
//
// `claimbench --quick` runs every scenario with tiny counts and checks
// correctness only (no timing targets), for CI. The exit status is 1 when a
// claimctl correctness check fails (an overlap, a live orphan, a child that
// outlived its claim), 2 when the benchmark itself could not run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	quick       bool
	root        string // the claimctl checkout
	out         string // results directory
	chart       string // PNG path
	rttChart    string // PNG path of the cluster sweep's chart: OUT/rtt.png
	only        map[string]bool
	keep        bool
	uncontended int
	sweepN      int // uncontended runs per tool at each RTT of the cluster sweep
	runs        int
	procs       []int
	rounds      int
	failTrials  int
	cutTrials   int
	rssTrials   int
	scaleClaims int
	waiters     []int
	timeout     time.Duration
}

var scenarioNames = []string{"uncontended", "contention", "handoff", "latency", "failover", "netcut", "rss", "scale", "waiters", "requests", "cluster", "auth", "cron"}

func main() { os.Exit(run()) }

func run() int {
	var cfg config
	var only, procs, waiters string
	flag.BoolVar(&cfg.quick, "quick", false, "smoke mode: tiny counts, correctness checks only (CI)")
	flag.StringVar(&cfg.root, "root", "..", "the claimctl checkout to build")
	flag.StringVar(&cfg.out, "out", "out", "directory for results.json, results.md and the chart")
	flag.StringVar(&cfg.chart, "chart", "", "where to write the chart PNG (default OUT/benchmarks.png)")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (default all): "+strings.Join(scenarioNames, ","))
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (logs, data) for inspection")
	flag.IntVar(&cfg.uncontended, "n", 200, "uncontended runs per tool")
	// 30 keeps the sweep (5 RTTs x 2 tools x 2 kinds of cluster, about
	// 150 ms a run with its scrapes on 2 busy cores) under 2 minutes.
	flag.IntVar(&cfg.sweepN, "sweep-n", 30, "uncontended runs per tool at each RTT of the cluster scenario's RTT sweep (0: no sweep)")
	flag.IntVar(&cfg.runs, "k", 25, "runs per process in the contention scenario")
	flag.StringVar(&procs, "procs", "4,16", "process counts for the contention scenario")
	flag.IntVar(&cfg.rounds, "rounds", 4, "contention rounds per tool and process count (alternating order)")
	flag.IntVar(&cfg.failTrials, "failover-trials", 3, "failover trials per tool")
	flag.IntVar(&cfg.cutTrials, "netcut-trials", 3, "network-cut trials per tool")
	flag.IntVar(&cfg.rssTrials, "rss-trials", 5, "peak-RSS trials per tool")
	flag.IntVar(&cfg.scaleClaims, "claims", 10000, "claims held at once in the scale scenario")
	flag.StringVar(&waiters, "waiters", "10,100,1000", "waiter counts for the waiters scenario")
	flag.DurationVar(&cfg.timeout, "timeout", 30*time.Minute, "bound on the whole run (builds included)")
	replot := flag.String("replot", "", "measure nothing: write results.md and the chart again from this results.json")
	flag.Parse()
	if cfg.quick {
		cfg.uncontended, cfg.runs, procs, cfg.rounds = 5, 3, "4,16", 1
		cfg.sweepN = min(cfg.sweepN, 3)
		cfg.failTrials, cfg.cutTrials, cfg.rssTrials = 1, 1, 1
		cfg.scaleClaims, waiters = 200, "10"
		cfg.timeout = min(cfg.timeout, 10*time.Minute)
	}
	var err error
	if cfg.procs, err = ints(procs); err != nil {
		return badUsage(err)
	}
	if cfg.waiters, err = ints(waiters); err != nil {
		return badUsage(err)
	}
	cfg.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !contains(scenarioNames, s) {
			return badUsage(fmt.Errorf("unknown scenario %q", s))
		}
		cfg.only[s] = true
	}
	if cfg.root, err = filepath.Abs(cfg.root); err != nil {
		return badUsage(err)
	}
	if cfg.chart == "" {
		cfg.chart = filepath.Join(cfg.out, "benchmarks.png")
	}
	cfg.rttChart = filepath.Join(cfg.out, "rtt.png")
	if cfg.sweepN < 0 {
		return badUsage(fmt.Errorf("-sweep-n %d is negative", cfg.sweepN))
	}

	if *replot != "" {
		if err := replotFrom(*replot, cfg); err != nil {
			fmt.Fprintln(os.Stderr, "claimbench:", err)
			return 2
		}
		return 0
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	b, err := setup(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "claimbench:", err)
		return 2
	}
	err = b.runAll(ctx)
	b.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "claimbench:", err)
		return 2
	}
	if err := b.publish(); err != nil {
		fmt.Fprintln(os.Stderr, "claimbench:", err)
		return 2
	}
	if failed := b.res.failedChecks(); len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "claimbench: %d correctness check(s) failed:\n", len(failed))
		for _, c := range failed {
			fmt.Fprintf(os.Stderr, "  FAIL %s: %s\n", c.Name, c.Detail)
		}
		return 1
	}
	fmt.Fprintf(os.Stderr, "claimbench: all %d correctness checks passed (%s)\n", len(b.res.Checks), time.Since(b.started).Round(time.Second))
	return 0
}

func badUsage(err error) int {
	fmt.Fprintln(os.Stderr, "claimbench:", err)
	flag.Usage()
	return 2
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a list of positive numbers", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

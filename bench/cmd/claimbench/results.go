package main

import (
	"encoding/json"
	"time"

	"github.com/claimctl/claimctl/bench/internal/build"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/bench/internal/stats"
)

// Results is everything one run measured; it is written as results.json
// and rendered as results.md and the chart.
type Results struct {
	Date      string             `json:"date"`
	Machine   string             `json:"machine"`
	Etcdctl   string             `json:"etcdctl"`
	Checkout  string             `json:"checkout"`
	Quick     bool               `json:"quick"`
	Command   string             `json:"command"`
	Durations map[string]float64 `json:"scenario_seconds"`
	// LoadAvg is /proc/loadavg (1, 5, 15 minutes) as each scenario began:
	// other work on the machine shows here.
	LoadAvg map[string]string `json:"load_average"`

	Uncontended map[string]*Latency `json:"uncontended"` // by tool
	Startup     map[string]*Latency `json:"startup"`     // `version`, no etcd, by tool
	Connect     map[string]*Latency `json:"connect"`     // status / get: connect + 1 read, by tool
	Floor       *Latency            `json:"floor"`       // the floor helper: the same round trips, nothing else
	Contention  []*Contention       `json:"contention"`
	Handoff     map[string]*Handoff `json:"handoff"` // isolated, by tool
	Failover    []*Failover         `json:"failover"`
	NetCut      []*NetCut           `json:"netcut"`
	RSS         map[string]*RSS     `json:"rss"` // by tool
	Scale       *Scale              `json:"scale,omitempty"`
	Waiters     []*Waiters          `json:"waiters"`
	Requests    []RequestCost       `json:"requests"`
	Net         *NetLatency         `json:"network_latency,omitempty"`
	Cluster     []*ClusterRun       `json:"cluster,omitempty"` // by member kind
	Auth        []*AuthRun          `json:"auth,omitempty"`    // by member kind
	Cron        *Cron               `json:"cron,omitempty"`
	Checks      []Check             `json:"checks"`
}

// Latency is a sample of wall times (ms) and CPU times (ms) of one command.
type Latency struct {
	Wall    []float64     `json:"wall_ms"`
	CPU     []float64     `json:"cpu_ms"`
	MaxRSS  []float64     `json:"max_rss_kib,omitempty"`
	WallSum stats.Summary `json:"wall"`
	CPUSum  stats.Summary `json:"cpu"`
	RSSSum  stats.Summary `json:"max_rss"`
}

func (l *Latency) add(wall, cpu time.Duration, rss int64) {
	l.Wall = append(l.Wall, ms(wall))
	l.CPU = append(l.CPU, ms(cpu))
	if rss > 0 {
		l.MaxRSS = append(l.MaxRSS, float64(rss))
	}
}

func (l *Latency) summarize() {
	l.WallSum, l.CPUSum, l.RSSSum = stats.Summarize(l.Wall), stats.Summarize(l.CPU), stats.Summarize(l.MaxRSS)
}

// Contention is one tool at one process count, over all rounds.
type Contention struct {
	Tool       string    `json:"tool"`
	Procs      int       `json:"procs"`
	Runs       int       `json:"runs_per_proc"`
	Rounds     int       `json:"rounds"`
	Sections   int       `json:"sections"`
	Overlaps   int       `json:"overlaps"`
	TokensRise bool      `json:"tokens_rise"`
	Failures   int       `json:"failed_runs"`
	PerSecond  float64   `json:"sections_per_second"`
	RoundRates []float64 `json:"round_rates"`
	// RoundGapMedians is each round's median gap (ms); round i of the two
	// tools ran back to back, so their ratio is the least disturbed by
	// changing load on the machine.
	RoundGapMedians []float64 `json:"round_gap_medians_ms"`
	// ToolCPUPerSection is the CPU time of the tool processes (with the
	// children they reaped) per section; ServerCPUPerSection the
	// servers', less their idle rate, until the leases granted in the
	// round had expired (in full mode); WritesPerSection the Raft entries
	// committed over the same window.
	ToolCPUPerSection   float64 `json:"tool_cpu_ms_per_section"`
	ServerCPUPerSection float64 `json:"server_cpu_ms_per_section"`
	WritesPerSection    float64 `json:"writes_per_section"`
	toolCPU, serverCPU  time.Duration
	writes              float64
	Gaps                []float64     `json:"gaps_ms"`
	Gap                 stats.Summary `json:"gap"`
	// PhaseSamples split each gap at the etcd events in between (ms);
	// Phases summarize them.
	PhaseSamples map[string][]float64     `json:"phase_samples_ms"`
	Phases       map[string]stats.Summary `json:"phases"`
	// PerSection is the etcd traffic per critical section.
	PerSection server.Requests `json:"requests_per_section"`
	PerSecReq  float64         `json:"requests_per_section_total"`
}

// Handoff is the isolated handoff scenario for one tool.
type Handoff struct {
	// PerTrial is the etcd traffic of one trial, as the servers counted
	// it: the holder's and the waiter's whole runs (connect, acquire,
	// handoff, release), two runs of the tool.
	PerTrial     server.Requests `json:"requests_per_trial"`
	PerTrialTot  float64         `json:"requests_per_trial_total"`
	reqs         server.Requests
	Gaps         []float64                `json:"gaps_ms"`
	Gap          stats.Summary            `json:"gap"`
	Overlaps     int                      `json:"overlaps"`
	PhaseSamples map[string][]float64     `json:"phase_samples_ms"`
	Phases       map[string]stats.Summary `json:"phases"`
}

// Failover is one trial: the holder's tool SIGKILLed.
type Failover struct {
	Tool string `json:"tool"`
	// Failover is kill -> waiter's child started (ms), NaN if it never did.
	Failover float64 `json:"failover_ms"`
	// ChildGone is kill -> the old child's exit (ms), NaN if it was still
	// alive at the end of the window.
	ChildGone float64 `json:"old_child_gone_ms"`
	// OrphanAlive: the old child was still alive when the new one started.
	OrphanAlive bool   `json:"orphan_alive"`
	TTL         int    `json:"ttl_s"`
	Note        string `json:"note,omitempty"`
}

// NetCut is one trial: the holder's traffic blackholed.
type NetCut struct {
	Tool string `json:"tool"`
	// CutToStop is cut -> holder's child exited (ms); NaN = never within
	// the window.
	CutToStop float64 `json:"cut_to_stop_ms"`
	// CutToNext is cut -> next holder's child started (ms).
	CutToNext float64 `json:"cut_to_next_ms"`
	// Overlap: the old child was alive when the next one started.
	Overlap bool    `json:"overlap"`
	Window  float64 `json:"window_ms"`
	TTL     int     `json:"ttl_s"`
	Exit    string  `json:"holder_exit"`
}

// RSS is the tool's memory while its child runs (KiB).
type RSS struct {
	HWM      []float64     `json:"vmhwm_kib"`        // while the child runs
	RSS      []float64     `json:"vmrss_kib"`        // while the child runs
	Helper   []float64     `json:"helper_vmhwm_kib"` // claimctl's guardian (/bin/sh)
	Lifetime []float64     `json:"lifetime_maxrss_kib"`
	HWMSum   stats.Summary `json:"vmhwm"`
	HelpSum  stats.Summary `json:"helper_vmhwm"`
	LifeSum  stats.Summary `json:"lifetime_maxrss"`
}

// Scale is the 10,000-claims scenario.
type Scale struct {
	Claims      int                 `json:"claims"`
	CreateSecs  float64             `json:"create_seconds"`
	Commands    map[string]*Latency `json:"commands"` // by command label
	ListLines   int                 `json:"list_lines"`
	StatusLines int                 `json:"status_lines"`
}

// Waiters is one protocol with W waiters on one claim.
type Waiters struct {
	Protocol   string        `json:"protocol"`
	Waiters    int           `json:"waiters"`
	Handoffs   int           `json:"handoffs"`
	Overlaps   int           `json:"overlaps"`
	EnqueueSec float64       `json:"enqueue_seconds"`
	ChainSec   float64       `json:"chain_seconds"`
	Gaps       []float64     `json:"gaps_ms"`
	Gap        stats.Summary `json:"gap"`
	// PerHandoff is the etcd traffic per handoff during the chain.
	PerHandoff server.Requests `json:"requests_per_handoff"`
	PerHandTot float64         `json:"requests_per_handoff_total"`
	// DriverRSSMiB is the driver's RSS with every waiter queued.
	DriverRSSMiB float64 `json:"driver_rss_mib"`
}

// RequestCost is the latency of one kind of request or step (ms).
type RequestCost struct {
	Kind    string        `json:"kind"`
	Summary stats.Summary `json:"latency_ms"`
}

// Check is one correctness check; a failed claimctl check fails the run.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Finding marks a check on etcdctl whose failure is a measured property
	// of etcdctl lock, not a failure of the run.
	Finding bool `json:"finding,omitempty"`
}

func newResults(cfg config, bin build.Binaries) *Results {
	return &Results{
		Checkout:    checkout(cfg.root),
		Date:        time.Now().UTC().Format(time.RFC3339),
		Machine:     machine(),
		Etcdctl:     bin.EtcdctlVersion,
		Quick:       cfg.quick,
		Durations:   map[string]float64{},
		LoadAvg:     map[string]string{},
		Uncontended: map[string]*Latency{},
		Startup:     map[string]*Latency{},
		Connect:     map[string]*Latency{},
		RSS:         map[string]*RSS{},
		Handoff:     map[string]*Handoff{},
	}
}

// check records a correctness check. For etcdctl a failure is a finding.
func (r *Results) check(tool, name string, ok bool, detail string) {
	c := Check{Name: tool + ": " + name, OK: ok, Detail: detail, Finding: tool == "etcdctl"}
	r.Checks = append(r.Checks, c)
	status := "ok"
	if !ok {
		status = "FAIL"
		if c.Finding {
			status = "finding"
		}
	}
	logf("check %-7s %s: %s", status, c.Name, detail)
}

func (r *Results) failedChecks() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK && !c.Finding {
			out = append(out, c)
		}
	}
	return out
}

// MarshalJSON writes the times that were never reached as null.
func (f *Failover) MarshalJSON() ([]byte, error) {
	type plain Failover
	return json.Marshal(struct {
		*plain
		Failover  *float64 `json:"failover_ms"`
		ChildGone *float64 `json:"old_child_gone_ms"`
	}{(*plain)(f), stats.Nullable(f.Failover), stats.Nullable(f.ChildGone)})
}

// MarshalJSON writes the times that were never reached as null.
func (n *NetCut) MarshalJSON() ([]byte, error) {
	type plain NetCut
	return json.Marshal(struct {
		*plain
		CutToStop *float64 `json:"cut_to_stop_ms"`
		CutToNext *float64 `json:"cut_to_next_ms"`
	}{(*plain)(n), stats.Nullable(n.CutToStop), stats.Nullable(n.CutToNext)})
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package main

import (
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claimctl/claimctl/bench/internal/stats"
)

// fixture is a small but complete set of results.
func fixture() *Results {
	r := &Results{
		Date: "2026-01-01T00:00:00Z", Machine: "test", Etcdctl: "etcdctl version: 3.7.3", Checkout: "commit abc",
		Uncontended: map[string]*Latency{}, Startup: map[string]*Latency{}, Connect: map[string]*Latency{},
		RSS: map[string]*RSS{}, Handoff: map[string]*Handoff{}, LoadAvg: map[string]string{"uncontended": "0.1 0.2 0.3"},
	}
	for i, t := range []string{"claimctl", "etcdctl"} {
		l := &Latency{Wall: []float64{10, 11, 12 + float64(i)}, CPU: []float64{9, 9, 9}}
		l.summarize()
		r.Uncontended[t] = l
		for _, procs := range []int{4, 16} {
			c := &Contention{Tool: t, Procs: procs, Runs: 25, Rounds: 2, Sections: 100, PerSecond: 50 + float64(10*i),
				RoundRates: []float64{50, 52}, RoundGapMedians: []float64{6, 7}, Gaps: []float64{5, 6, 7},
				Phases: map[string]stats.Summary{phaseRelease: stats.Summarize([]float64{1.5})}}
			c.Gap = stats.Summarize(c.Gaps)
			r.Contention = append(r.Contention, c)
		}
		h := &Handoff{Gaps: []float64{4, 5}, Phases: map[string]stats.Summary{}}
		h.Gap = stats.Summarize(h.Gaps)
		r.Handoff[t] = h
		rss := &RSS{HWM: []float64{16000 + float64(1000*i)}}
		rss.HWMSum = stats.Summarize(rss.HWM)
		r.RSS[t] = rss
		r.Failover = append(r.Failover, &Failover{Tool: t, Failover: 5000, ChildGone: math.NaN(), OrphanAlive: t == "etcdctl", TTL: 5})
		r.NetCut = append(r.NetCut, &NetCut{Tool: t, CutToStop: map[bool]float64{true: 2800, false: math.NaN()}[t == "claimctl"], CutToNext: 5000, Overlap: t == "etcdctl", TTL: 5})
		w := &Waiters{Protocol: t, Waiters: 10, Handoffs: 10, Gaps: []float64{1, 2}}
		w.Gap = stats.Summarize(w.Gaps)
		r.Waiters = append(r.Waiters, w)
	}
	return r
}

func TestChartIsAPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.png")
	if err := fixture().chart(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 700 {
		t.Fatalf("chart is %v, want at least 1000x700", b)
	}
}

func TestMarkdownAndTargets(t *testing.T) {
	r := fixture()
	md := r.markdown()
	for _, want := range []string{"| uncontended `run`/`lock` + `true`", "never (1 of 1)", "| target", "| peak RSS while holding (VmHWM median) | <= 1x | 0.94x | yes |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	got := map[string]bool{}
	for _, tg := range r.targets() {
		got[tg.what] = tg.met
	}
	if !got["failover within TTL+1s, no live orphan"] || !got["cut-to-stop before the next holder starts"] || got["sections/s, 16 processes"] {
		t.Fatalf("targets = %v", got)
	}
}

func TestJSONCarriesNeverAsNull(t *testing.T) {
	f := &Failover{Tool: "etcdctl", Failover: 5000, ChildGone: math.NaN()}
	b, err := f.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"old_child_gone_ms":null`) || !strings.Contains(string(b), `"failover_ms":5000`) {
		t.Fatalf("JSON %s", b)
	}
}

func TestRacedFraction(t *testing.T) {
	for _, tc := range []struct {
		ran, raced []int
		procs      int
		want       float64
	}{
		{[]int{1, 1}, []int{0, 0}, 64, 0},
		{[]int{1, 1}, []int{63, 0}, 64, 0.5},
		{[]int{1}, []int{9}, 16, 0.6},
		{[]int{16}, []int{0}, 16, 0},
	} {
		if got := racedFraction(&CronTool{Ran: tc.ran, Raced: tc.raced}, tc.procs); got != tc.want {
			t.Errorf("racedFraction(ran %v, raced %v, %d procs) = %v, want %v", tc.ran, tc.raced, tc.procs, got, tc.want)
		}
	}
}

// sweepFixture is fixture with an RTT sweep on both kinds of cluster.
func sweepFixture() *Results {
	r := fixture()
	for i, kind := range memberKinds {
		c := &ClusterRun{Kind: kind, RTTms: 2, FarRTTms: 10}
		for _, rtt := range []float64{0, 1, 2, 5, 10} {
			c.Sweep = append(c.Sweep, SweepPoint{RTTms: rtt, Tools: map[string]*SweepTool{
				"claimctl": {Runs: 3, MedianMs: 10 + 3*rtt + float64(i), P90Ms: 12 + 3*rtt, Requests: 4},
				"etcdctl":  {Runs: 3, MedianMs: 12 + 5*rtt, P90Ms: 14 + 5*rtt, Requests: 7},
			}})
		}
		r.Cluster = append(r.Cluster, c)
	}
	return r
}

func TestMarkdownRendersTheSweep(t *testing.T) {
	md := sweepFixture().markdown()
	for _, want := range []string{
		"against RTT, claimctl-server cluster",
		"against RTT, etcd cluster",
		"| RTT | claimctl median | etcdctl median | claimctl / etcdctl | claimctl requests per run | etcdctl requests per run |",
		"| 0 ms | 10.0 ms (12.0 ms), n=3 | 12.0 ms (14.0 ms), n=3 | 0.83x | 4.00 | 7.00 |",
		"| 10 ms | 41.0 ms (42.0 ms), n=3 | 62.0 ms (64.0 ms), n=3 | 0.66x | 4.00 | 7.00 |",
		"claimctl 3.00, etcdctl 5.00",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if md := fixture().markdown(); strings.Contains(md, "against RTT") {
		t.Errorf("markdown without a sweep has a sweep table:\n%s", md)
	}
}

func TestRTTChart(t *testing.T) {
	r := sweepFixture()
	p := r.rttPlot()
	if p == nil {
		t.Fatal("rttPlot is nil with a sweep")
	}
	// The highest median (etcdctl at 10 ms) sets the room for the legend.
	if p.Y.Max != 62*1.35 || p.X.Min != 0 {
		t.Errorf("RTT plot's axes: x from %v, y to %v; want x from 0, y to %v", p.X.Min, p.Y.Max, 62*1.35)
	}
	path := filepath.Join(t.TempDir(), "rtt.png")
	if err := r.rttChart(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 500 {
		t.Fatalf("RTT chart is %v, want at least 800x500", b)
	}
	// Without a sweep there is no RTT chart, and a stale one goes.
	if fixture().rttPlot() != nil {
		t.Error("rttPlot is not nil without a sweep")
	}
	if err := fixture().rttChart(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("stale RTT chart left behind: %v", err)
	}
}

// A results.json from before the sweep replots, without an RTT chart.
func TestReplotWithoutSweep(t *testing.T) {
	dir := t.TempDir()
	old := fixture()
	old.Cluster = []*ClusterRun{{Kind: "etcd", RTTms: 2, FarRTTms: 10}}
	js, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "rtt_sweep") {
		t.Fatalf("a run without a sweep writes one: %s", js)
	}
	in := filepath.Join(dir, "results.json")
	if err := os.WriteFile(in, js, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config{out: dir, chart: filepath.Join(dir, "benchmarks.png"), rttChart: filepath.Join(dir, "rtt.png")}
	if err := replotFrom(in, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.rttChart); !os.IsNotExist(err) {
		t.Errorf("RTT chart from results without a sweep: %v", err)
	}
	// And one with the sweep round-trips through JSON into the table.
	js, err = json.Marshal(sweepFixture())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, js, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := replotFrom(in, cfg); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| 5 ms | 25.0 ms (27.0 ms), n=3") {
		t.Errorf("replotted markdown lacks the sweep:\n%s", md)
	}
	if _, err := os.Stat(cfg.rttChart); err != nil {
		t.Errorf("no RTT chart from results with a sweep: %v", err)
	}
}

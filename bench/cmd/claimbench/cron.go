package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/claimctl/claimctl/bench/internal/cluster"
	"github.com/claimctl/claimctl/bench/internal/mono"
	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/bench/internal/stats"
)

// etcdctlCronTimeout bounds each `etcdctl lock` of the cron fleet, as a
// crontab line would with timeout(1): etcdctl has no way to skip a busy
// lock, so a run either gets it in time or is killed.
const etcdctlCronTimeout = "1s"

// etcdctlCronTTL is etcdctl's lease TTL in the cron fleet (etcd's minimum
// with default timings), and leaseExpiry how long to wait for the leases
// that the killed runs leave behind to expire, so their revocation is
// counted (in full mode: quick mode's write counts mean nothing anyway).
const (
	etcdctlCronTTL = 2
	leaseExpiry    = 4 * time.Second
)

// Cron is the cron-fleet scenario: Procs copies of the same job released at
// once on one claim, Rounds times, on the upstream etcd cluster.
type Cron struct {
	Kind     string               `json:"kind"`
	RTTms    float64              `json:"rtt_ms"`
	Procs    int                  `json:"procs"`
	Rounds   int                  `json:"rounds"`
	MinHoldS float64              `json:"min_hold_s"`
	Timeout  string               `json:"etcdctl_timeout"`
	Tools    map[string]*CronTool `json:"tools"`
}

// CronTool is one tool's rounds of the cron fleet.
type CronTool struct {
	// Ran is, per round, how many runs ran the job.
	Ran []int `json:"ran"`
	// Raced is, per round, how many runs that did not end up running the
	// job still asked for a lease (the full path), from the members'
	// LeaseGrant counts less one per run that ran.
	Raced []int `json:"raced"`
	// ExitMs is release -> exit of the runs that did not run the job.
	ExitMs []float64     `json:"not_ran_exit_ms"`
	Exit   stats.Summary `json:"not_ran_exit"`
	// RanStartMs is release -> the job's start, for the runs that ran it.
	RanStartMs []float64 `json:"ran_start_ms"`
	// RanExitMs is release -> exit of the runs that ran the job and had
	// exited when the round ended (etcdctl's; claimctl's keeps the claim).
	RanExitMs []float64     `json:"ran_exit_ms"`
	RanExit   stats.Summary `json:"ran_exit"`
	// Failed counts runs that exited other than 0 (for etcdctl, 124: the
	// timeout killed it).
	Failed int `json:"failed"`
	// Writes is every Raft entry committed from before the first round of
	// a block to after its last run (and, for etcdctl, its leases) ended;
	// SoloWrites is the median of the same for one run alone on a free
	// claim, the runs that ran the job are charged that much, and
	// WritesPerNotRan is the rest divided among the others.
	Writes          float64 `json:"writes"`
	SoloWrites      float64 `json:"solo_writes"`
	WritesPerNotRan float64 `json:"writes_per_not_ran"`
	soloSamples     []float64
	// PerRun is the etcd traffic per run, every run of the rounds.
	PerRun    server.Requests `json:"requests_per_run"`
	PerRunTot float64         `json:"requests_per_run_total"`
	reqs      server.Requests
	runs      int
}

// cron releases Procs runs of the same job at once behind a barrier, on a
// new claim each round, on the 3-member etcd cluster at netRTT:
// `claimctl run -n -E 0 --min-hold H JOB -- job` against `timeout 1s
// etcdctl lock JOB -- job`. The job is the section helper with no hold (a
// `true` that logs that it ran). claimctl's rounds run in two blocks
// around etcdctl's, so that writes can be counted block by block: the
// winners' releases come min-hold later, in later rounds.
func (b *bench) cron(ctx context.Context) error {
	nprocs, rounds, minHold := 64, 20, 10*time.Second
	if b.cfg.quick {
		// min-hold stays well above the time a loaded CI machine takes
		// to start 16 runs, so that "exactly one ran" cannot flake.
		nprocs, rounds, minHold = 16, 2, 3*time.Second
	}
	cs, err := b.startCluster(ctx, "etcd", netRTT)
	if err != nil {
		return err
	}
	defer cs.close()
	res := &Cron{Kind: "etcd", RTTms: ms(netRTT), Procs: nprocs, Rounds: rounds, MinHoldS: minHold.Seconds(),
		Timeout: etcdctlCronTimeout, Tools: map[string]*CronTool{"claimctl": {}, "etcdctl": {}}}
	b.res.Cron = res
	s := cs.site(cluster.User)
	job := func(t tool, name, log, label string, hold time.Duration) []string {
		if t.name == "claimctl" {
			args := append([]string{t.exe, "run"}, s.conn.flags(t)...)
			args = append(args, "-n", "-E", "0", "--min-hold", hold.String(), name, "--")
			return append(args, b.section(log, 0, label)...)
		}
		return append([]string{"timeout", etcdctlCronTimeout}, t.lockArgsConn(s.conn, name, etcdctlCronTTL, b.section(log, 0, label)...)...)
	}
	cl, ec := b.tools()[0], b.tools()[1]
	half := max(rounds/2, 1)
	blocks := []struct {
		t      tool
		first  int
		rounds int
	}{{cl, 0, half}, {ec, 0, rounds}, {cl, half, rounds - half}}
	for _, blk := range blocks {
		if blk.rounds == 0 {
			continue
		}
		if err := b.cronBlock(ctx, s, res, blk.t, blk.first, blk.rounds, minHold, job); err != nil {
			return err
		}
	}
	for _, t := range b.tools() {
		ct := res.Tools[t.name]
		ct.Exit = stats.Summarize(ct.ExitMs)
		ct.RanExit = stats.Summarize(ct.RanExitMs)
		ct.SoloWrites = stats.Quantile(ct.soloSamples, 0.5)
		ran := 0
		for _, r := range ct.Ran {
			ran += r
		}
		if notRan := nprocs*rounds - ran; notRan > 0 {
			ct.WritesPerNotRan = (ct.Writes - float64(ran)*ct.SoloWrites) / float64(notRan)
		}
		if ct.runs > 0 {
			ct.PerRun = ct.reqs.Per(float64(ct.runs))
			ct.PerRunTot = ct.PerRun.Total()
		}
		logf("cron %s: ran per round %v, raced %v; not-ran exit median %.1f ms p90 %.1f ms; %.0f writes, solo %.0f, %.2f per run that did not run",
			t.name, ct.Ran, ct.Raced, ct.Exit.Median, ct.Exit.P90, ct.Writes, ct.SoloWrites, ct.WritesPerNotRan)
		one := true
		for _, r := range ct.Ran {
			one = one && r == 1
		}
		b.res.check(t.name, fmt.Sprintf("cron fleet: exactly one of %d ran, every round", nprocs), one && len(ct.Ran) == rounds,
			fmt.Sprintf("ran per round %v", ct.Ran))
		if t.name == "claimctl" {
			b.res.check(t.name, "cron fleet: every run exited 0", ct.Failed == 0, fmt.Sprintf("%d of %d runs failed", ct.Failed, nprocs*rounds))
		}
	}
	return nil
}

// cronBlock runs rounds [first, first+n) of tool t, with a solo run before
// them to calibrate the writes of a run that runs the job, and counts the
// writes of the whole block once every run (and etcdctl's leases) ended.
func (b *bench) cronBlock(ctx context.Context, s site, res *Cron, t tool, first, n int, minHold time.Duration,
	job func(t tool, name, log, label string, hold time.Duration) []string) error {
	ct := res.Tools[t.name]
	// Calibrate: one run alone on a free claim, the full path.
	for i := range map[bool]int{true: 1, false: 2}[b.cfg.quick] {
		name := fmt.Sprintf("cron-solo-%s-%d-%d", t.name, first, i)
		m0, err := s.scrape(ctx)
		if err != nil {
			return err
		}
		p, err := b.start(job(t, name, filepath.Join(b.work, name+".log"), "solo", 0))
		if err != nil {
			return err
		}
		if err := p.wait(60 * time.Second); err != nil {
			return fmt.Errorf("cron solo run: %w", err)
		}
		if t.name == "etcdctl" && !b.cfg.quick {
			// Its lease outlives it: count the expiry too.
			time.Sleep(leaseExpiry)
		}
		m1, err := s.scrape(ctx)
		if err != nil {
			return err
		}
		ct.soloSamples = append(ct.soloSamples, m1[committedSeries]-m0[committedSeries])
	}
	m0, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	var all []*proc
	for r := first; r < first+n; r++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		ps, err := b.cronRound(ctx, s, ct, t, r, res.Procs, minHold, job)
		all = append(all, ps...)
		if err != nil {
			for _, p := range all {
				p.kill()
			}
			return err
		}
	}
	for _, p := range all {
		_ = p.wait(minHold + time.Minute)
	}
	if t.name == "etcdctl" && !b.cfg.quick {
		time.Sleep(leaseExpiry) // the leases of the runs that were killed expire
	}
	m1, err := s.scrape(ctx)
	if err != nil {
		return err
	}
	ct.Writes += m1[committedSeries] - m0[committedSeries]
	return nil
}

// cronRound starts nprocs runs behind the barrier, releases them, and
// returns once every run that did not run the job has exited (the one that
// did may still be keeping the claim for min-hold); it returns the runs,
// for the caller to wait for.
func (b *bench) cronRound(ctx context.Context, s site, ct *CronTool, t tool, round, nprocs int, minHold time.Duration,
	job func(t tool, name, log, label string, hold time.Duration) []string) ([]*proc, error) {
	name := fmt.Sprintf("cron-%s-%d", t.name, round)
	log := filepath.Join(b.work, name+".log")
	fifo := filepath.Join(b.work, name+".barrier")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, err
	}
	// Open for reading and writing: it does not block, and the barrier's
	// readers see EOF once it is closed.
	gate, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer gate.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer readyR.Close()
	var ps []*proc
	for i := range nprocs {
		argv := append([]string{b.bin.Barrier, fifo}, job(t, name, log, fmt.Sprintf("p%02d", i), minHold)...)
		p, err := b.startWith(argv, readyW)
		if err != nil {
			readyW.Close()
			return ps, err
		}
		ps = append(ps, p)
	}
	readyW.Close()
	_ = readyR.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, nprocs)
	for got := 0; got < nprocs; {
		k, err := readyR.Read(buf[got:])
		if err != nil {
			return ps, fmt.Errorf("%s: %d of %d runs at the barrier: %w", name, got, nprocs, err)
		}
		got += k
	}
	m0, err := s.scrape(ctx)
	if err != nil {
		return ps, err
	}
	released, releasedMono := time.Now(), mono.Now()
	gate.Close()

	// Every run that does not run the job ends within moments (etcdctl's
	// within its timeout); claimctl's that runs it keeps the claim for
	// min-hold, and the caller waits for it.
	var ivs []seclog.Interval
	ran := map[string]bool{}
	ok := waitUntil(minHold+30*time.Second, func() bool {
		ivs, _ = seclog.Read(log)
		ran = map[string]bool{}
		for _, iv := range ivs {
			ran[iv.Label] = true
		}
		for i, p := range ps {
			select {
			case <-p.done:
			default:
				if t.name == "etcdctl" || !ran[fmt.Sprintf("p%02d", i)] {
					return false
				}
			}
		}
		return true
	})
	if !ok {
		return ps, fmt.Errorf("%s: runs still going after %v", name, minHold+30*time.Second)
	}
	m1, err := s.scrape(ctx)
	if err != nil {
		return ps, err
	}
	for _, iv := range ivs {
		ct.RanStartMs = append(ct.RanStartMs, ms(time.Duration(iv.Start-releasedMono)))
	}
	d := server.Diff(m0, m1)
	ct.reqs = addRequests(ct.reqs, d)
	ct.runs += nprocs
	ct.Ran = append(ct.Ran, len(ivs))
	ct.Raced = append(ct.Raced, max(int(d.Unary["LeaseGrant"])-len(ivs), 0))
	for i, p := range ps {
		if ran[fmt.Sprintf("p%02d", i)] {
			select {
			case <-p.done:
				ct.RanExitMs = append(ct.RanExitMs, ms(p.started.Add(p.elapsed).Sub(released)))
			default:
			}
			continue
		}
		<-p.done
		if p.err != nil {
			ct.Failed++
		}
		ct.ExitMs = append(ct.ExitMs, ms(p.started.Add(p.elapsed).Sub(released)))
	}
	logf("cron %s round %d: %d ran, %d raced to the full path, %d failed so far", t.name, round+1, len(ivs), ct.Raced[len(ct.Raced)-1], ct.Failed)
	return ps, nil
}

// startWith is start with extra file descriptor 3 (the barrier's ready
// pipe).
func (b *bench) startWith(argv []string, fd3 *os.File) (*proc, error) {
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = b.env
	p.cmd.Dir = b.work
	p.cmd.Stderr = &p.stderr
	p.cmd.ExtraFiles = []*os.File{fd3}
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		p.elapsed = time.Since(p.started)
		close(p.done)
	}()
	return p, nil
}

// waitUntil polls cond every 10 ms until it holds or timeout passes.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/claimctl/claimctl/bench/internal/cluster"
	"github.com/claimctl/claimctl/bench/internal/server"
	"github.com/claimctl/claimctl/pkg/etcdtest/slowlink"
)

// farRTT is the round-trip time of the cross-region case of the cluster
// scenario.
const farRTT = 10 * time.Millisecond

// committedSeries is the pseudo-series under which a cluster site's
// scrape carries the cluster's commit index (cluster.Scrape.Committed), so
// that the difference of two scrapes also counts the writes in between.
const committedSeries = "claimbench_commit_index"

// memberKinds are the two kinds of cluster member the scenarios run on.
var memberKinds = []string{"claimctl-server", "etcd"}

// ClusterRun is the realistic-cluster scenario on one kind of member: 3
// members, TLS with client certificates, auth enabled (the certificate's
// common name is the user), every tool's connection to every member
// through a link of RTTms.
type ClusterRun struct {
	Kind  string  `json:"kind"`
	RTTms float64 `json:"rtt_ms"`
	// IdleCPUms is the members' CPU per second with no client (heartbeats),
	// already taken out of the per-run server CPU figures.
	IdleCPUms   float64             `json:"idle_server_cpu_ms_per_s"`
	Uncontended map[string]*RunCost `json:"uncontended"` // by tool
	Handoff     map[string]*Handoff `json:"handoff"`     // by tool
	Contention  []*Contention       `json:"contention"`
	FarRTTms    float64             `json:"far_rtt_ms"`
	Far         map[string]*RunCost `json:"uncontended_far"` // by tool, at FarRTTms
	// Sweep is the uncontended run at each of sweepRTTs, in that order;
	// absent from the results of runs before the sweep and with -sweep-n 0.
	Sweep []SweepPoint `json:"rtt_sweep,omitempty"`
}

// AuthRun is the password scenario on one kind of member: the uncontended
// run at RTTms with the client certificate alone and with --user/--password
// as well (etcd then authenticates the password and the requests carry its
// token instead of the certificate's name).
type AuthRun struct {
	Kind      string              `json:"kind"`
	RTTms     float64             `json:"rtt_ms"`
	IdleCPUms float64             `json:"idle_server_cpu_ms_per_s"`
	Cert      map[string]*RunCost `json:"cert"`     // by tool
	Password  map[string]*RunCost `json:"password"` // by tool
}

// RunCost is a sample of single runs of a tool with what each cost the
// cluster: the requests the members received, the writes they committed,
// and their CPU time.
type RunCost struct {
	Latency
	Requests    server.Requests `json:"requests_per_run"`
	RequestsTot float64         `json:"requests_per_run_total"`
	Writes      float64         `json:"writes_per_run"`
	ServerCPUms float64         `json:"server_cpu_ms_per_run"`
	reqs        server.Requests
	writes      float64
	srvCPU      time.Duration
}

func (c *RunCost) summarize() {
	c.Latency.summarize()
	if n := float64(len(c.Wall)); n > 0 {
		c.Requests = c.reqs.Per(n)
		c.RequestsTot = c.Requests.Total()
		c.Writes = c.writes / n
		c.ServerCPUms = ms(c.srvCPU) / n
	}
}

// clusterSite is a running cluster behind one slow link per member.
type clusterSite struct {
	c       *cluster.Cluster
	links   []*slowlink.Link
	cli     *clientv3.Client // root, direct
	idleCPU float64          // ms of member CPU per second, idle
}

// startCluster starts a cluster of kind, enables auth and puts a link of
// rtt in front of every member.
func (b *bench) startCluster(ctx context.Context, kind string, rtt time.Duration) (*clusterSite, error) {
	bin := b.bin.Server
	if kind == "etcd" {
		bin = b.bin.Etcd
	}
	dir := filepath.Join(b.work, "cluster-"+kind+fmt.Sprint(time.Now().UnixNano()))
	c, err := cluster.Start(ctx, kind, bin, dir)
	if err != nil {
		return nil, err
	}
	cs := &clusterSite{c: c}
	if cs.cli, err = c.Client("root"); err != nil {
		cs.close()
		return nil, err
	}
	if err := cluster.EnableAuth(ctx, cs.cli); err != nil {
		cs.close()
		return nil, err
	}
	for _, ep := range c.Endpoints() {
		l, err := slowlink.New(ep)
		if err != nil {
			cs.close()
			return nil, err
		}
		l.SetLatency(rtt / 2)
		cs.links = append(cs.links, l)
	}
	if cs.idleCPU, err = idleRate(b.cfg.quick, c.CPUTime); err != nil {
		cs.close()
		return nil, err
	}
	logf("%s cluster: 3 members (pids %v), TLS with client certificates, auth on, %v RTT; idle CPU %.1f ms/s",
		kind, c.Pids(), rtt, cs.idleCPU)
	return cs, nil
}

func (cs *clusterSite) setRTT(rtt time.Duration) {
	for _, l := range cs.links {
		l.SetLatency(rtt / 2)
	}
}

func (cs *clusterSite) close() {
	for _, l := range cs.links {
		l.Close()
	}
	if cs.cli != nil {
		cs.cli.Close()
	}
	cs.c.Stop()
}

// site is the cluster as the tools see it (user cn's certificate, through
// the links, unixs:// so that TLS is used on the sockets) and the driver
// sees it (directly, as root).
func (cs *clusterSite) site(cn string) site {
	var eps []string
	for _, l := range cs.links {
		eps = append(eps, "unixs://"+strings.TrimPrefix(l.Endpoint(), "unix://"))
	}
	p := cs.c.PKI.Clients[cn]
	return site{
		conn: conn{endpoints: eps, cacert: cs.c.PKI.CA, cert: p.Cert, key: p.Key},
		cli:  cs.cli,
		scrape: func(ctx context.Context) (server.Metrics, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			s, err := cs.c.Scrape(ctx)
			if err != nil {
				return nil, err
			}
			m := s.Sum()
			m[committedSeries] = s.Committed()
			return m, nil
		},
		cpu:     cs.c.CPUTime,
		idleCPU: cs.idleCPU,
	}
}

// idleRate measures the CPU that cpu reports per second with no client
// (heartbeats, tickers), in ms per second: 3 s of it, 1 s in quick mode.
func idleRate(quick bool, cpu func() (time.Duration, error)) (float64, error) {
	cpu0, err := cpu()
	if err != nil {
		return 0, err
	}
	idle := map[bool]time.Duration{true: time.Second, false: 3 * time.Second}[quick]
	time.Sleep(idle)
	cpu1, err := cpu()
	if err != nil {
		return 0, err
	}
	return ms(cpu1-cpu0) / idle.Seconds(), nil
}

// runCosts runs argv(t) n times per tool, alternating, one at a time, and
// records each run's wall and CPU time, and the requests, writes and
// member CPU (less the idle rate) between a scrape before and after it.
func (b *bench) runCosts(ctx context.Context, s site, idleCPU float64, n int, argv func(tool) []string, into map[string]*RunCost) error {
	for _, t := range b.tools() {
		if into[t.name] == nil {
			into[t.name] = &RunCost{}
		}
	}
	for i := range n {
		for _, t := range b.order(i) {
			if err := ctx.Err(); err != nil {
				return err
			}
			m0, err := s.scrape(ctx)
			if err != nil {
				return err
			}
			cpu0, err := s.cpu()
			if err != nil {
				return err
			}
			p, err := b.start(argv(t))
			if err != nil {
				return err
			}
			if err := p.wait(60 * time.Second); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			cpu1, err := s.cpu()
			if err != nil {
				return err
			}
			m1, err := s.scrape(ctx)
			if err != nil {
				return err
			}
			c := into[t.name]
			c.add(p.elapsed, p.cpu(), 0)
			c.reqs = addRequests(c.reqs, server.Diff(m0, m1))
			c.writes += m1[committedSeries] - m0[committedSeries]
			c.srvCPU += cpu1 - cpu0 - time.Duration(idleCPU*float64(p.elapsed)/1000)
		}
	}
	for _, t := range b.tools() {
		into[t.name].summarize()
	}
	return nil
}

// clusterScenario is the realistic cluster, on claimctl-server members and
// on upstream etcd members: uncontended runs, isolated handoffs and 16
// processes around a 5 ms section at netRTT, then uncontended runs at
// farRTT, then the sweep of uncontended runs over sweepRTTs.
func (b *bench) clusterScenario(ctx context.Context) error {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	n, handoffs, nprocs, rounds, nFar := 50, 15, 16, 2, 30
	if b.cfg.quick {
		n, handoffs, nprocs, rounds, nFar = 2, 1, 4, 1, 2
	}
	for _, kind := range memberKinds {
		cs, err := b.startCluster(ctx, kind, netRTT)
		if err != nil {
			return err
		}
		err = b.clusterRun(ctx, cs, kind, truePath, n, handoffs, nprocs, rounds, nFar)
		cs.close()
		if err != nil {
			return fmt.Errorf("%s cluster: %w", kind, err)
		}
	}
	return nil
}

func (b *bench) clusterRun(ctx context.Context, cs *clusterSite, kind, truePath string, n, handoffs, nprocs, rounds, nFar int) error {
	res := &ClusterRun{Kind: kind, RTTms: ms(netRTT), FarRTTms: ms(farRTT), IdleCPUms: cs.idleCPU,
		Uncontended: map[string]*RunCost{}, Handoff: map[string]*Handoff{}, Far: map[string]*RunCost{}}
	b.res.Cluster = append(b.res.Cluster, res)
	s := cs.site(cluster.User)
	label := "-" + kind
	lock := func(name string) func(tool) []string {
		return func(t tool) []string { return t.lockArgsConn(s.conn, name+"-"+t.name, 10, truePath) }
	}
	// Warm up: the members' connection handling and the page cache.
	if err := b.runCosts(ctx, s, cs.idleCPU, 2, lock("cl-warm"+label), map[string]*RunCost{}); err != nil {
		return err
	}
	if err := b.runCosts(ctx, s, cs.idleCPU, n, lock("cl-unc"+label), res.Uncontended); err != nil {
		return err
	}
	for _, t := range b.tools() {
		u := res.Uncontended[t.name]
		logf("%s on %s cluster at %v: uncontended median %.1f ms, %.1f requests (%s), %.1f writes, server CPU %.1f ms per run",
			t.name, kind, netRTT, u.WallSum.Median, u.RequestsTot, u.Requests, u.Writes, u.ServerCPUms)
		b.res.check(t.name, "cluster "+kind+": uncontended runs", len(u.Wall) == n, fmt.Sprintf("%d of %d runs exited 0", len(u.Wall), n))
	}
	if err := b.handoffs(ctx, s, label, handoffs, res.Handoff); err != nil {
		return err
	}
	var err error
	if res.Contention, err = b.contend(ctx, s, label, nprocs, rounds); err != nil {
		return err
	}
	cs.setRTT(farRTT)
	if err := b.runCosts(ctx, s, cs.idleCPU, nFar, lock("cl-far"+label), res.Far); err != nil {
		return err
	}
	for _, t := range b.tools() {
		u := res.Far[t.name]
		logf("%s on %s cluster at %v: uncontended median %.1f ms", t.name, kind, farRTT, u.WallSum.Median)
		b.res.check(t.name, "cluster "+kind+": uncontended runs at 10 ms", len(u.Wall) == nFar, fmt.Sprintf("%d of %d runs exited 0", len(u.Wall), nFar))
	}
	if b.cfg.sweepN > 0 {
		res.Sweep, err = b.rttSweep(ctx, cs, s, kind, truePath, b.cfg.sweepN)
	}
	return err
}

// authScenario is the password scenario: on each kind of cluster at
// netRTT, uncontended runs with the client certificate alone and with
// --user/--password too, alternating, with the members' CPU per run.
func (b *bench) authScenario(ctx context.Context) error {
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	n, kinds := 40, memberKinds
	if b.cfg.quick {
		n, kinds = 2, []string{"etcd"}
	}
	for _, kind := range kinds {
		cs, err := b.startCluster(ctx, kind, netRTT)
		if err != nil {
			return err
		}
		res := &AuthRun{Kind: kind, RTTms: ms(netRTT), IdleCPUms: cs.idleCPU, Cert: map[string]*RunCost{}, Password: map[string]*RunCost{}}
		b.res.Auth = append(b.res.Auth, res)
		cert := cs.site(cluster.User)
		pw := cert
		pw.conn.user, pw.conn.password = cluster.User, cluster.Password
		err = b.runCosts(ctx, cert, cs.idleCPU, 2, func(t tool) []string {
			return t.lockArgsConn(pw.conn, "auth-warm-"+t.name, 10, truePath)
		}, map[string]*RunCost{})
		// Alternate the two modes in blocks of 5 runs per tool, so that
		// both see the same load.
		for i := 0; err == nil && i < n; i += 5 {
			k := min(5, n-i)
			if err = b.runCosts(ctx, cert, cs.idleCPU, k, func(t tool) []string {
				return t.lockArgsConn(cert.conn, "auth-cert-"+t.name, 10, truePath)
			}, res.Cert); err != nil {
				break
			}
			err = b.runCosts(ctx, pw, cs.idleCPU, k, func(t tool) []string {
				return t.lockArgsConn(pw.conn, "auth-pw-"+t.name, 10, truePath)
			}, res.Password)
		}
		cs.close()
		if err != nil {
			return fmt.Errorf("%s cluster: %w", kind, err)
		}
		for _, t := range b.tools() {
			c, p := res.Cert[t.name], res.Password[t.name]
			logf("%s on %s cluster: certificate %.1f ms, server CPU %.2f ms (%s); password %.1f ms, server CPU %.2f ms (%s)",
				t.name, kind, c.WallSum.Median, c.ServerCPUms, c.Requests, p.WallSum.Median, p.ServerCPUms, p.Requests)
			b.res.check(t.name, "auth "+kind+": runs with a password", len(p.Wall) == n, fmt.Sprintf("%d of %d runs exited 0", len(p.Wall), n))
		}
	}
	return nil
}

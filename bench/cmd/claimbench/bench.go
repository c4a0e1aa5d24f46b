package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/bench/internal/build"
	"github.com/claimctl/claimctl/bench/internal/procs"
	"github.com/claimctl/claimctl/bench/internal/seclog"
	"github.com/claimctl/claimctl/bench/internal/server"
)

// bench is one run of the suite: the built binaries, the server, a work
// directory, and the results so far.
type bench struct {
	cfg  config
	bin  build.Binaries
	srv  *server.Server
	work string
	env  []string
	cli  *clientv3.Client // the driver's own etcd client, for polling
	res  *Results
	// localIdleCPU is the loopback server's CPU per second with no client
	// (ms/s), measured at start-up.
	localIdleCPU float64
	started      time.Time

	mu      sync.Mutex
	helpers map[int]bool // section helper pids seen, to end if left over
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s claimbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func setup(ctx context.Context, cfg config) (*bench, error) {
	b := &bench{cfg: cfg, started: time.Now(), helpers: map[int]bool{}}
	work, err := os.MkdirTemp("", "claimbench")
	if err != nil {
		return nil, err
	}
	b.work = work
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return nil, err
	}
	benchDir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	b.bin, err = build.All(ctx, cfg.root, benchDir, filepath.Join(work, "bin"), "v3.7.3", logf)
	if err != nil {
		return nil, err
	}
	logf("built in %s: %s", time.Since(b.started).Round(100*time.Millisecond), b.bin.EtcdctlVersion)
	b.srv, err = server.Start(b.bin.Server, work)
	if err != nil {
		return nil, err
	}
	logf("claimctl-server pid %d serving %s (data in %s, fsync on)", b.srv.Pid(), b.srv.URL, work)
	b.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{b.srv.URL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.srv.Stop()
		return nil, err
	}
	if b.localIdleCPU, err = idleRate(b.cfg.quick, func() (time.Duration, error) { return procs.CPUTime(b.srv.Pid()) }); err != nil {
		b.cli.Close()
		b.srv.Stop()
		return nil, err
	}
	// The tools see no configuration but their flags: a private HOME and
	// XDG_CONFIG_HOME, and none of the CLAIMCTL_* or ETCDCTL_* variables.
	home := filepath.Join(work, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CLAIMCTL_") || strings.HasPrefix(kv, "ETCDCTL_") ||
			strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "GO") {
			continue
		}
		b.env = append(b.env, kv)
	}
	b.env = append(b.env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"))
	b.res = newResults(cfg, b.bin)
	return b, nil
}

// close stops the server and ends any section helper still running (an
// orphan left by a killed etcdctl), each by its pid.
func (b *bench) close() {
	b.mu.Lock()
	for pid := range b.helpers {
		procs.KillIfExe(pid, b.bin.Section)
	}
	b.mu.Unlock()
	if b.cli != nil {
		b.cli.Close()
	}
	if b.srv != nil {
		b.srv.Stop()
	}
	if !b.cfg.keep {
		os.RemoveAll(b.work)
	} else {
		logf("work directory kept: %s", b.work)
	}
}

func (b *bench) runAll(ctx context.Context) error {
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"uncontended", b.uncontended},
		{"contention", b.contention},
		{"handoff", b.handoff},
		{"latency", b.latency},
		{"failover", b.failover},
		{"netcut", b.netcut},
		{"rss", b.rss},
		{"scale", b.scale},
		{"waiters", b.waiters},
		{"requests", b.requests},
		{"cluster", b.clusterScenario},
		{"auth", b.authScenario},
		{"cron", b.cron},
	}
	for _, s := range steps {
		if len(b.cfg.only) > 0 && !b.cfg.only[s.name] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		load, _ := os.ReadFile("/proc/loadavg")
		b.res.LoadAvg[s.name] = strings.Join(strings.Fields(string(load))[:3], " ")
		logf("== %s (load average %s)", s.name, b.res.LoadAvg[s.name])
		if err := s.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		b.res.Durations[s.name] = time.Since(t0).Seconds()
		logf("== %s done in %s", s.name, time.Since(t0).Round(100*time.Millisecond))
	}
	return nil
}

// tool is one of the two lock tools under test.
type tool struct {
	name string // "claimctl" or "etcdctl"
	exe  string
}

func (b *bench) tools() []tool {
	return []tool{{"claimctl", b.bin.Claimctl}, {"etcdctl", b.bin.Etcdctl}}
}

// order returns the two tools, swapped on odd i, so that neither always
// runs first.
func (b *bench) order(i int) []tool {
	t := b.tools()
	if i%2 == 1 {
		t[0], t[1] = t[1], t[0]
	}
	return t
}

// lockArgs is the command line that holds claim name for the life of
// child: `claimctl run` or `etcdctl lock` on the same key layout
// (claimctl's NAME is etcdctl's claimctl/NAME), through one plaintext
// endpoint.
func (t tool) lockArgs(endpoint, name string, ttl int, child ...string) []string {
	return t.lockArgsConn(conn{endpoints: []string{endpoint}}, name, ttl, child...)
}

// lockArgsConn is lockArgs with any connection flags.
func (t tool) lockArgsConn(c conn, name string, ttl int, child ...string) []string {
	switch t.name {
	case "claimctl":
		args := append([]string{t.exe, "run"}, c.flags(t)...)
		return append(append(args, "--ttl", fmt.Sprintf("%ds", ttl), name, "--"), child...)
	default:
		args := append([]string{t.exe}, c.flags(t)...)
		return append(append(args, "lock", fmt.Sprintf("--ttl=%d", ttl), "claimctl/"+name, "--"), child...)
	}
}

// conn is how the tools reach etcd: the flags both tools share, by the
// same names (claimctl took etcdctl's).
type conn struct {
	endpoints         []string
	cacert, cert, key string
	user, password    string
}

// flags are c as tool t's flags.
func (c conn) flags(t tool) []string {
	kv := [][2]string{{"endpoints", strings.Join(c.endpoints, ",")}, {"cacert", c.cacert}, {"cert", c.cert},
		{"key", c.key}, {"user", c.user}, {"password", c.password}}
	var out []string
	for _, f := range kv {
		if f[1] == "" {
			continue
		}
		if t.name == "claimctl" {
			out = append(out, "--"+f[0], f[1])
		} else {
			out = append(out, "--"+f[0]+"="+f[1])
		}
	}
	return out
}

// site is where the tools connect in a scenario and how the driver sees
// it: the tools' connection, the driver's own client (not slowed), the
// servers' counters and their CPU time.
type site struct {
	conn   conn
	cli    *clientv3.Client
	scrape func(context.Context) (server.Metrics, error)
	cpu    func() (time.Duration, error)
	// idleCPU is the servers' CPU per second with no client (ms/s), to
	// subtract from a window that waits for leases to expire.
	idleCPU float64
	// overhead is the traffic of the driver's own event watch, which the
	// servers count with the tools'.
	overhead server.Requests
}

// local is the single loopback server, reached by the tools through
// endpoint (its URL, or a link to it).
func (b *bench) local(endpoint string) site {
	return site{
		conn: conn{endpoints: []string{endpoint}},
		cli:  b.cli,
		scrape: func(ctx context.Context) (server.Metrics, error) {
			m, err := b.srv.Scrape(ctx)
			if err != nil {
				return nil, err
			}
			m[committedSeries] = m.Sum("etcd_server_proposals_committed_total")
			return m, nil
		},
		cpu:     func() (time.Duration, error) { return procs.CPUTime(b.srv.Pid()) },
		idleCPU: b.localIdleCPU,
	}
}

// prefix is the etcd key prefix of claim name's contenders, the same for
// both tools.
func prefix(name string) string { return "claimctl/" + name + "/" }

// section returns the helper's argv: hold for d, log to log as label.
func (b *bench) section(log string, d time.Duration, label string) []string {
	return []string{b.bin.Section, log, d.String(), label}
}

// proc is a started tool process.
type proc struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	started time.Time
	done    chan struct{}
	elapsed time.Duration
	err     error
}

// start runs argv with the tools' environment; its stdout is discarded,
// its stderr kept for messages.
func (b *bench) start(argv []string) (*proc, error) { return b.startOut(argv, nil) }

// startOut is start with stdout going to w.
func (b *bench) startOut(argv []string, w io.Writer) (*proc, error) {
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = b.env
	p.cmd.Dir = b.work
	p.cmd.Stdout = w
	p.cmd.Stderr = &p.stderr
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

// wait waits at most timeout for p to exit; after that it SIGKILLs p (by
// its pid) and reports a timeout.
func (p *proc) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(p.cmd.Path), p.err, strings.TrimSpace(p.stderr.String()))
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not finish within %v", strings.Join(p.cmd.Args, " "), timeout)
	}
}

// kill SIGKILLs p by its pid and waits for it to be reaped.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// cpu returns p's CPU time (user+system) once it has exited. (Its
// ru_maxrss would include the driver's own RSS: see cmd/rusage.)
func (p *proc) cpu() time.Duration {
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return 0
}

// usage is what the rusage helper reports about the command it ran.
type usage struct {
	wall, cpu time.Duration
	maxRSS    int64 // KiB
}

// startMeasured starts argv under the rusage helper, which records its
// wall time, CPU time and true peak RSS in file out.
func (b *bench) startMeasured(argv []string, out string, stdout io.Writer) (*proc, error) {
	return b.startOut(append([]string{b.bin.Rusage, out}, argv...), stdout)
}

// readUsage reads what the rusage helper wrote.
func readUsage(path string) (usage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return usage{}, err
	}
	var wall, cpu, rss int64
	if _, err := fmt.Sscan(string(data), &wall, &cpu, &rss); err != nil {
		return usage{}, fmt.Errorf("%s: %w", path, err)
	}
	return usage{time.Duration(wall), time.Duration(cpu), rss}, nil
}

// waitStart polls log until a section labelled label has started, at most
// timeout, and remembers its pid so that close can end it if it is left
// running.
func (b *bench) waitStart(log, label string, timeout time.Duration) (seclog.Interval, bool) {
	var iv seclog.Interval
	ok := procs.WaitFor(timeout, func() bool {
		ivs, _ := seclog.Read(log)
		var found bool
		iv, found = seclog.Find(ivs, label)
		return found
	})
	if ok {
		b.mu.Lock()
		b.helpers[iv.Pid] = true
		b.mu.Unlock()
	}
	return iv, ok
}

// waitQueued polls etcd until n contenders are queued on claim name.
func (b *bench) waitQueued(ctx context.Context, name string, n int64, timeout time.Duration) bool {
	return waitQueued(ctx, b.cli, name, n, timeout)
}

// waitQueued polls etcd through cli until n contenders are queued on claim
// name.
func waitQueued(ctx context.Context, cli *clientv3.Client, name string, n int64, timeout time.Duration) bool {
	ok, _ := waitQueuedCount(ctx, cli, name, n, timeout)
	return ok
}

// waitQueuedCount is waitQueued that also returns how many reads it made,
// so that they can be taken out of the servers' request counts.
func waitQueuedCount(ctx context.Context, cli *clientv3.Client, name string, n int64, timeout time.Duration) (bool, int) {
	reads := 0
	ok := procs.WaitFor(timeout, func() bool {
		reads++
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := cli.Get(rctx, prefix(name), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count >= n
	})
	return ok, reads
}

// checkout names the commit of root that was built, and whether the work
// tree had uncommitted changes.
func checkout(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	s := "commit " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// machine describes where the run happened, for the report.
func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s", runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version())
}

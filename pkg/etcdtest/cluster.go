//go:build linux || darwin

package etcdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdserver"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Bounds used by the process cluster.
const (
	// callTimeout bounds one Status or Get against one member: a few
	// election timeouts, so a stopped member cannot stall a wait.
	callTimeout = 4 * ElectionMs * time.Millisecond
	// pollInterval is how often waits re-check.
	pollInterval = 50 * time.Millisecond
	// startAttempts is how often StartCluster picks new ports after one
	// was taken between picking and binding it.
	startAttempts = 3
	// logTail is how much of each member's stderr is kept for failures.
	logTail = 64 << 10
)

// ClusterOptions adjusts StartCluster. The zero value gives the package's
// fast timings, no fsync and quiet logs.
type ClusterOptions struct {
	// TickMs and ElectionMs override the package's TickMs and ElectionMs.
	TickMs, ElectionMs uint
	// Fsync makes members fsync their writes, for tests of what survives
	// a crash; otherwise they run with --unsafe-no-fsync.
	Fsync bool
	// LogLevel is the members' etcd log level (default "error"). Their
	// stderr is logged when the test fails.
	LogLevel string
	// Timeout bounds forming the cluster, each restart, each Kill, and
	// every wait given a context without a deadline (default StartTimeout).
	Timeout time.Duration
}

// Cluster is a set of claimctl-server (or EtcdEnv) processes forming one etcd cluster on
// loopback, for faults an in-process member cannot have: SIGKILL, SIGSTOP,
// restart from disk. Make it with StartCluster. Its methods that fail the
// test must be called from the test's goroutine.
type Cluster struct {
	t       testing.TB
	opts    ClusterOptions
	bin     serverBinary
	token   string
	members []*ProcessMember
}

// ProcessMember is one member process of a Cluster. Across restarts it keeps
// its name, ports and data directory.
type ProcessMember struct {
	c         *Cluster
	index     int
	name      string
	clientURL string
	peerURL   string
	dataDir   string
	logs      *tailBuffer

	mu      sync.Mutex
	proc    *process         // the current or last launch; nil before the first
	stopped bool             // sent SIGSTOP and no SIGCONT since
	client  *clientv3.Client // for Leader and WaitHealthy; new per launch
}

// process is one launch of a member.
type process struct {
	cmd     *exec.Cmd
	ready   chan struct{} // closed when the member prints its first URL
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // set before exited is closed
}

// StartCluster builds claimctl-server (see ServerBinEnv), or takes the
// upstream etcd named by EtcdEnv, and starts n
// members of a new cluster, each a separate process on free loopback ports
// with its own data directory under t.TempDir(). It returns when every
// member serves clients. t.Cleanup kills every process it started, by pid,
// and logs their stderr if the test failed.
func StartCluster(t testing.TB, n int, opts ClusterOptions) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: StartCluster(%d): need at least one member", n)
	}
	if opts.TickMs == 0 {
		opts.TickMs = TickMs
	}
	if opts.ElectionMs == 0 {
		opts.ElectionMs = ElectionMs
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if opts.Timeout == 0 {
		opts.Timeout = StartTimeout
	}
	bin := findServerBinary(t)

	for attempt := 1; ; attempt++ {
		c, err := tryStartCluster(t, n, opts, bin)
		if err == nil {
			return c
		}
		c.killAll()
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			c.logAll()
			t.Fatalf("etcdtest: start %d-member cluster: %v", n, err)
		}
		t.Logf("etcdtest: %v; retrying with new ports", err)
	}
}

var errPortTaken = errors.New("a picked port was taken before the member bound it")

func tryStartCluster(t testing.TB, n int, opts ClusterOptions, bin serverBinary) (*Cluster, error) {
	t.Helper()
	base := t.TempDir() // before the cleanup below, which must run first
	c := &Cluster{
		t:     t,
		opts:  opts,
		bin:   bin,
		token: fmt.Sprintf("etcdtest-%d-%d", os.Getpid(), time.Now().UnixNano()),
	}
	t.Cleanup(func() {
		c.killAll()
		if t.Failed() {
			c.logAll()
		}
		for _, m := range c.members {
			if cli := m.cli(); cli != nil {
				cli.Close()
			}
		}
	})

	ports, err := freePorts(2 * n)
	if err != nil {
		return c, err
	}
	for i := range n {
		c.members = append(c.members, &ProcessMember{
			c:         c,
			index:     i,
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			dataDir:   filepath.Join(base, fmt.Sprintf("m%d.etcd", i)),
			logs:      &tailBuffer{max: logTail},
		})
	}
	for _, m := range c.members {
		if err := m.launch(etcdserver.ClusterStateNew); err != nil {
			return c, err
		}
	}
	return c, waitReady(opts.Timeout, c.members)
}

// waitReady waits up to timeout until all members serve, and stops at the
// first that exits instead: the others would wait for it forever.
func waitReady(timeout time.Duration, members []*ProcessMember) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errc := make(chan error, len(members))
	for _, m := range members {
		go func() { errc <- m.waitReady(ctx) }()
	}
	for range members {
		if err := <-errc; err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// Another process can take one before the member binds it; StartCluster
// then retries.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer ln.Close() // hold all until all are picked, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Size returns the number of members.
func (c *Cluster) Size() int { return len(c.members) }

// Endpoints returns every member's client URL, "http://127.0.0.1:PORT", in
// member order, whether or not the member is running now.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.clientURL
	}
	return eps
}

// Member returns member i (0 <= i < Size()).
func (c *Cluster) Member(i int) *ProcessMember {
	c.t.Helper()
	if i < 0 || i >= len(c.members) {
		c.t.Fatalf("etcdtest: Member(%d) of a %d-member cluster", i, len(c.members))
	}
	return c.members[i]
}

// Client returns a client of all members, closed by t.Cleanup.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, c.Endpoints()...)
}

// Leader asks every running, unstopped member for its status and returns
// the index of the leader: the member that says it leads in the highest
// term any member reports (Raft allows one leader per term). It does not
// wait for an election; see WaitLeader.
func (c *Cluster) Leader(ctx context.Context) (int, error) {
	type result struct {
		resp *clientv3.StatusResponse
		err  error
	}
	results := make([]result, len(c.members))
	var wg sync.WaitGroup
	for i, m := range c.members {
		if !m.serving() {
			results[i].err = errors.New("not running")
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			defer cancel()
			results[i].resp, results[i].err = m.cli().Status(cctx, m.clientURL)
		})
	}
	wg.Wait()

	leader, term := -1, uint64(0)
	var problems []string
	for i, r := range results {
		if r.err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", c.members[i].name, r.err))
			continue
		}
		if r.resp.Header.MemberId == r.resp.Leader && r.resp.RaftTerm >= term {
			leader, term = i, r.resp.RaftTerm
		}
	}
	if leader < 0 {
		return -1, fmt.Errorf("no member says it is leader (%s)", strings.Join(problems, "; "))
	}
	return leader, nil
}

// WaitLeader waits until some member leads (see Leader) and returns its
// index, or fails the test when ctx ends (or after the cluster's Timeout if
// ctx has no deadline).
func (c *Cluster) WaitLeader(ctx context.Context) int {
	c.t.Helper()
	var leader int
	c.poll(ctx, "a leader", func(ctx context.Context) (err error) {
		leader, err = c.Leader(ctx)
		return err
	})
	return leader
}

// WaitHealthy waits until every running, unstopped member answers a
// linearizable read (which needs a leader and a quorum), or fails the test
// when ctx ends (or after the cluster's Timeout if ctx has no deadline).
func (c *Cluster) WaitHealthy(ctx context.Context) {
	c.t.Helper()
	c.poll(ctx, "every running member to serve linearizable reads", func(ctx context.Context) error {
		for _, m := range c.members {
			if !m.serving() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			_, err := m.cli().Get(cctx, "etcdtest-health")
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
		}
		return nil
	})
}

// Restart relaunches the given members, which must not be running, with
// their data and --initial-cluster-state existing, and waits until all of
// them serve. Members that only together make a quorum must be restarted in
// one call: each becomes ready only when a quorum is back.
func (c *Cluster) Restart(indices ...int) {
	c.t.Helper()
	for _, i := range indices {
		m := c.Member(i)
		if m.Running() {
			c.t.Fatalf("etcdtest: restart %s: still running (Kill it first)", m.name)
		}
		if err := m.launch(etcdserver.ClusterStateExisting); err != nil {
			c.t.Fatalf("etcdtest: restart %s: %v", m.name, err)
		}
	}
	members := make([]*ProcessMember, len(indices))
	for j, i := range indices {
		members[j] = c.members[i]
	}
	if err := waitReady(c.opts.Timeout, members); err != nil {
		c.t.Fatalf("etcdtest: restart: %v", err)
	}
}

// poll calls check until it succeeds, failing the test with what it waited
// for and the last error when ctx (bounded by the cluster's Timeout if it
// has no deadline) ends.
func (c *Cluster) poll(ctx context.Context, what string, check func(context.Context) error) {
	c.t.Helper()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	for {
		err := check(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("etcdtest: waited %v for %s: %v", time.Since(start).Round(time.Millisecond), what, err)
		case <-time.After(pollInterval):
		}
	}
}

// killAll kills every running member, for cleanup.
func (c *Cluster) killAll() {
	for _, m := range c.members {
		if err := m.kill(); err != nil {
			c.t.Errorf("etcdtest: cleanup: %v", err)
		}
	}
}

// logAll logs the stderr of every member that wrote any.
func (c *Cluster) logAll() {
	for _, m := range c.members {
		if s := m.Logs(); s != "" {
			c.t.Logf("etcdtest: stderr of %s (pid %d):\n%s", m.name, m.Pid(), s)
		}
	}
}

// Name returns the member's name ("m0", "m1", ...).
func (m *ProcessMember) Name() string { return m.name }

// Endpoint returns the member's client URL, "http://127.0.0.1:PORT".
func (m *ProcessMember) Endpoint() string { return m.clientURL }

// DataDir returns the member's data directory.
func (m *ProcessMember) DataDir() string { return m.dataDir }

// Pid returns the process id of the member's current or last process.
func (m *ProcessMember) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return 0
	}
	return m.proc.cmd.Process.Pid
}

// Running reports whether the member's process exists (it may be stopped).
func (m *ProcessMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running()
}

func (m *ProcessMember) running() bool {
	if m.proc == nil {
		return false
	}
	select {
	case <-m.proc.exited:
		return false
	default:
		return true
	}
}

// serving reports whether the member is running and not stopped.
func (m *ProcessMember) serving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running() && !m.stopped
}

// cli returns the member's client for the current launch.
func (m *ProcessMember) cli() *clientv3.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.client
}

// Logs returns the end of the member's stderr, across restarts.
func (m *ProcessMember) Logs() string { return m.logs.String() }

// Kill sends SIGKILL, as in a crash or power cut, and waits until the
// process is gone. It fails the test if the member is not running.
func (m *ProcessMember) Kill() {
	m.c.t.Helper()
	if !m.Running() {
		m.c.t.Fatalf("etcdtest: kill %s: not running", m.name)
	}
	if err := m.kill(); err != nil {
		m.c.t.Fatalf("etcdtest: %v", err)
	}
}

// Stop sends SIGSTOP: the process freezes with its connections open, as in
// a long GC pause or a stalled VM. Peers and clients see silence, not a
// closed connection.
func (m *ProcessMember) Stop() {
	m.c.t.Helper()
	m.signal(syscall.SIGSTOP)
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
}

// Cont sends SIGCONT to a member stopped by Stop.
func (m *ProcessMember) Cont() {
	m.c.t.Helper()
	m.signal(syscall.SIGCONT)
	m.mu.Lock()
	m.stopped = false
	m.mu.Unlock()
}

// Restart relaunches the member after Kill, from its data directory, and
// waits until it serves; see Cluster.Restart. A client that knew only this
// member may need up to gRPC's reconnect backoff to find it again; make a
// new one if that matters.
func (m *ProcessMember) Restart() {
	m.c.t.Helper()
	m.c.Restart(m.index)
}

func (m *ProcessMember) signal(sig syscall.Signal) {
	m.c.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.running() {
		m.c.t.Fatalf("etcdtest: send %v to %s: not running", sig, m.name)
	}
	if err := m.proc.cmd.Process.Signal(sig); err != nil {
		m.c.t.Fatalf("etcdtest: send %v to %s (pid %d): %v", sig, m.name, m.proc.cmd.Process.Pid, err)
	}
}

// kill SIGKILLs the current process, if any, and waits for it to be reaped.
func (m *ProcessMember) kill() error {
	m.mu.Lock()
	p := m.proc
	running := m.running()
	m.stopped = false
	m.mu.Unlock()
	if !running {
		return nil
	}
	// os.Process signals by pid and refuses once the process is reaped,
	// so this cannot hit an unrelated process that reused the pid.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", m.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(m.c.opts.Timeout):
		return fmt.Errorf("kill %s (pid %d): still not reaped after %v", m.name, p.cmd.Process.Pid, m.c.opts.Timeout)
	}
}

// launch starts a new process for the member.
func (m *ProcessMember) launch(state string) error {
	c := m.c
	var cluster []string
	for _, o := range c.members {
		cluster = append(cluster, o.name+"="+o.peerURL)
	}
	f := memberFlags{
		name:           m.name,
		dataDir:        m.dataDir,
		clientURL:      m.clientURL,
		peerURL:        m.peerURL,
		initialCluster: strings.Join(cluster, ","),
		state:          state,
		token:          c.token,
		tickMs:         c.opts.TickMs,
		electionMs:     c.opts.ElectionMs,
		logLevel:       c.opts.LogLevel,
		fsync:          c.opts.Fsync,
	}
	args := f.args(c.bin.etcd)
	p := &process{
		cmd:    exec.Command(c.bin.path, args...),
		ready:  make(chan struct{}),
		exited: make(chan struct{}),
	}
	name := filepath.Base(c.bin.path)
	if c.bin.etcd == nil {
		// claimctl-server prints its client URL once it serves.
		p.cmd.Stdout = &firstLine{done: p.ready}
	} else {
		name += " " + c.bin.etcd.version
	}
	p.cmd.Stderr = m.logs
	p.cmd.SysProcAttr = sysProcAttr()
	fmt.Fprintf(m.logs, "--- etcdtest: %s %s\n", name, strings.Join(args, " "))

	// A fresh client: one that watched the member die may be in gRPC's
	// reconnect backoff, which grows to minutes.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.clientURL},
		DialTimeout: DialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("client of %s: %w", m.name, err)
	}
	if err := c.bin.withLock(syscall.LOCK_SH, p.cmd.Start); err != nil {
		cli.Close()
		return fmt.Errorf("start %s: %w", m.name, err)
	}
	m.mu.Lock()
	m.proc = p
	m.stopped = false
	old := m.client
	m.client = cli
	m.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if c.bin.etcd != nil {
		// Upstream etcd prints nothing on stdout: ask it.
		go probeReady(cli, m.clientURL, p.exited, p.ready)
	}
	return nil
}

// waitReady waits until the current process prints its client URL.
func (m *ProcessMember) waitReady(ctx context.Context) error {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		// A member that fails to start exits 1 with one line on stderr.
		err := fmt.Errorf("%s exited before serving (%v): %s", m.name, p.waitErr, lastLine(m.logs.String()))
		if strings.Contains(m.logs.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s not serving after %v: %w", m.name, m.c.opts.Timeout, context.Cause(ctx))
	}
}

// firstLine closes done when the first newline is written, and discards
// everything.
type firstLine struct {
	once sync.Once
	done chan struct{}
}

func (f *firstLine) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\n') >= 0 {
		f.once.Do(func() { close(f.done) })
	}
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

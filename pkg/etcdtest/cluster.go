//go:build linux || darwin

package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdserver"
	clientv3 "go.etcd.io/etcd/client/v3"
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

// clusterFromEnv starts the cluster MembersEnv asks for, ready (a leader,
// every member healthy), and returns its endpoints, or nil when it is not
// set.
func clusterFromEnv(t testing.TB) []string {
	t.Helper()
	v := os.Getenv(MembersEnv)
	if v == "" || v == "1" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 3 || n%2 == 0 {
		t.Fatalf("etcdtest: %s=%q; want 3 or 5 (or unset, for one member)", MembersEnv, v)
	}
	c := StartCluster(t, n, ClusterOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c.WaitLeader(ctx)
	c.WaitHealthy(ctx)
	return c.Endpoints()
}

// Package cluster runs a 3-member etcd cluster on loopback for the
// benchmarks, the way production clusters are set up: TLS between clients
// and members and between peers, client certificates required, etcd's
// default timings, fsync on. The members are either claimctl-server or the
// upstream etcd server (the same flags serve both), so that a result can
// be checked not to depend on claimctl's own server.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/bench/internal/pki"
	"github.com/claimctl/claimctl/bench/internal/procs"
	"github.com/claimctl/claimctl/bench/internal/server"
)

// Size is the number of members.
const Size = 3

// Bounds on starting and stopping the cluster.
const (
	ReadyTimeout = 60 * time.Second
	StopTimeout  = 15 * time.Second
)

// Users of the cluster once EnableAuth has run: root (the driver's client
// certificate) and User, the tools' user, whose role can read and write
// the claimctl/ prefix only.
const (
	User     = "bench"
	Password = "bench-password-1"
	Role     = "claimctl"
	Prefix   = "claimctl/"
)

// Cluster is a running cluster.
type Cluster struct {
	// Kind is "claimctl-server" or "etcd", the members' binary.
	Kind    string
	Members []*Member
	PKI     pki.Set
	httpc   *http.Client
}

// Member is one member process.
type Member struct {
	Name, ClientURL, PeerURL string
	cmd                      *exec.Cmd
	done                     chan struct{}
	logs                     *os.File
}

// Start runs Size members of kind from bin, with data, logs and
// certificates under dir, and returns once every member answers and one is
// the leader.
func Start(ctx context.Context, kind, bin, dir string) (*Cluster, error) {
	pkiDir := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, err
	}
	set, err := pki.Generate(pkiDir, "root", User)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Kind: kind, PKI: set}
	if c.httpc, err = c.httpClient(); err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * Size)
	if err != nil {
		return nil, err
	}
	var initial []string
	for i := range Size {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i+1),
			ClientURL: fmt.Sprintf("https://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("https://127.0.0.1:%d", ports[2*i+1]),
			done:      make(chan struct{}),
		}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for _, m := range c.Members {
		if err := m.start(bin, dir, strings.Join(initial, ","), set); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (m *Member) start(bin, dir, initial string, set pki.Set) error {
	logs, err := os.Create(filepath.Join(dir, m.Name+".log"))
	if err != nil {
		return err
	}
	m.logs = logs
	m.cmd = exec.Command(bin,
		"--name", m.Name, "--data-dir", filepath.Join(dir, m.Name+".data"),
		"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", "claimbench",
		"--cert-file", set.Server.Cert, "--key-file", set.Server.Key, "--trusted-ca-file", set.CA, "--client-cert-auth",
		"--peer-cert-file", set.Server.Cert, "--peer-key-file", set.Server.Key, "--peer-trusted-ca-file", set.CA,
		"--peer-client-cert-auth", "--log-level", "warn")
	m.cmd.Stderr = logs
	if err := m.cmd.Start(); err != nil {
		logs.Close()
		return err
	}
	go func() {
		m.cmd.Wait()
		close(m.done)
	}()
	return nil
}

// waitReady polls each member's status until all answer and agree on a
// leader.
func (c *Cluster) waitReady(ctx context.Context) error {
	cli, err := c.Client("root")
	if err != nil {
		return err
	}
	defer cli.Close()
	var last error
	ok := procs.WaitFor(ReadyTimeout, func() bool {
		for _, m := range c.Members {
			select {
			case <-m.done:
				last = fmt.Errorf("member %s exited; see %s", m.Name, m.logs.Name())
				return true
			default:
			}
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := cli.Status(sctx, m.ClientURL)
			cancel()
			if err != nil || st.Leader == 0 {
				last = fmt.Errorf("member %s not ready: %v", m.Name, err)
				return false
			}
		}
		last = nil
		return true
	})
	if !ok || last != nil {
		if last == nil {
			last = errors.New("not ready")
		}
		return fmt.Errorf("%s cluster: %w (after %v)", c.Kind, last, ReadyTimeout)
	}
	return nil
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Pids are the members' process IDs.
func (c *Cluster) Pids() []int {
	var pids []int
	for _, m := range c.Members {
		pids = append(pids, m.cmd.Process.Pid)
	}
	return pids
}

// CPUTime is the CPU time (user+system) the members have used so far.
func (c *Cluster) CPUTime() (time.Duration, error) {
	var total time.Duration
	for _, pid := range c.Pids() {
		t, err := procs.CPUTime(pid)
		if err != nil {
			return 0, err
		}
		total += t
	}
	return total, nil
}

// Client returns a client of every member with the client certificate of
// user cn ("root" for the driver).
func (c *Cluster) Client(cn string) (*clientv3.Client, error) {
	tc, err := c.tlsConfig(cn)
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), TLS: tc, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (c *Cluster) tlsConfig(cn string) (*tls.Config, error) {
	pem, err := os.ReadFile(c.PKI.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", c.PKI.CA)
	}
	p, ok := c.PKI.Clients[cn]
	if !ok {
		return nil, fmt.Errorf("no client certificate for %q", cn)
	}
	cert, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"}, nil
}

func (c *Cluster) httpClient() (*http.Client, error) {
	tc, err := c.tlsConfig("root")
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}, nil
}

// EnableAuth turns on etcd's authentication through cli (a root client):
// the root user, and User with Password and a role that can read and write
// Prefix. With --client-cert-auth, a client certificate's common name is
// then its user, and --user/--password is the other way in.
func EnableAuth(ctx context.Context, cli *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-password-1"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, Role); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, Role, Prefix, clientv3.GetPrefixRangeEnd(Prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, User, Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, User, Role); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("enable auth, step %d: %w", i+1, err)
		}
	}
	return nil
}

// Scrape is one reading of every member's /metrics.
type Scrape []map[string]*dto.MetricFamily

// Scrape reads every member's /metrics (served on its client URL, so with
// the root client certificate) with Prometheus's own text parser.
func (c *Cluster) Scrape(ctx context.Context) (Scrape, error) {
	var out Scrape
	for _, m := range c.Members {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.httpc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", m.Name, err)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("scrape %s: %w", m.Name, err)
		}
		out = append(out, fams)
	}
	return out, nil
}

// Committed is etcd_server_proposals_committed_total, the cluster's commit
// index: the highest any member reports (the leader's, or a follower's
// that has caught up). Its difference between two scrapes is the number of
// Raft entries, that is writes, committed in between.
func (s Scrape) Committed() float64 {
	var hi float64
	for _, fams := range s {
		if f, ok := fams["etcd_server_proposals_committed_total"]; ok {
			for _, m := range f.GetMetric() {
				hi = max(hi, value(m))
			}
		}
	}
	return hi
}

// Sum adds up every member's counters and gauges into one server.Metrics
// ("name{k="v",...}" series, labels sorted), so that server.Diff reads the
// cluster's traffic as it reads one server's.
func (s Scrape) Sum() server.Metrics {
	out := server.Metrics{}
	for _, fams := range s {
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				sort.Strings(labels)
				out[name+"{"+strings.Join(labels, ",")+"}"] += value(m)
			}
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// Stop sends SIGTERM to every member (by its pid), waits for each to stop
// and SIGKILLs it after StopTimeout.
func (c *Cluster) Stop() {
	for _, m := range c.Members {
		if m.cmd != nil && m.cmd.Process != nil {
			_ = m.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, m := range c.Members {
		if m.cmd == nil || m.cmd.Process == nil {
			continue
		}
		select {
		case <-m.done:
		case <-time.After(StopTimeout):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
		m.logs.Close()
	}
}

// freePorts asks the kernel for n free loopback ports. They are released
// before the members bind them; on a machine that is not busy binding
// ports, nothing takes them in between.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

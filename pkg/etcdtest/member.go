package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdserver"
	"go.etcd.io/etcd/api/v3/version"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Timings of every member this package starts. They make elections and
// leader changes take well under a second, so fault tests stay short.
const (
	// TickMs is the heartbeat interval in milliseconds.
	TickMs = 50
	// ElectionMs is the election timeout in milliseconds.
	ElectionMs = 500
	// MinLeaseTTL is the shortest lease a member with these timings grants:
	// etcd silently raises a shorter requested TTL to 1.5 x ElectionMs
	// rounded up to whole seconds, i.e. 750 ms -> 1 s. (With etcd's default
	// timings it is 2 s.) Tests must read the granted TTL, not assume theirs.
	MinLeaseTTL = time.Second
)

// Bounds on the waits in this package. A wait that runs out fails the test
// with what it was waiting for.
const (
	// StartTimeout bounds starting a member or forming a cluster.
	StartTimeout = 30 * time.Second
	// DialTimeout is the clientv3 dial timeout of the clients made here.
	DialTimeout = 5 * time.Second
)

// MembersEnv names an environment variable that, set to 3 or 5, makes Start
// run a cluster of that many member processes (StartCluster) instead of a
// single member, so that tests written against one member, pkg/claim's
// protocol tests, also run against a real cluster: scripts/compat.sh's
// "claim-3" suite, on every etcd version.
const MembersEnv = "CLAIMCTL_TEST_MEMBERS"

// Member is the etcd started by Start: a single member, or the cluster
// MembersEnv asks for.
type Member struct {
	t      testing.TB
	server *Server
	// cluster is the cluster's endpoints when MembersEnv is set.
	cluster []string
}

// Server is a running single-member etcd from StartEmbedded: embedded in
// the test binary, or an upstream etcd process when EtcdEnv is set.
type Server struct {
	embedded *etcdserver.Server
	upstream *upstreamServer
	version  string
}

// Start runs a single-member etcd on 127.0.0.1 for the duration of the
// test: data in t.TempDir(), fsync off, the fast timings above, and free
// ports. It is closed by t.Cleanup. By default the member is embedded, with
// port 0 for clients and peers (a lone member never dials its peer port, so
// there is no window in which another process can take it); because the
// ports are picked at bind time, the URLs it advertises (in MemberList) say
// port 0: use Endpoints. With EtcdEnv set it is that etcd, as a process;
// its stderr is logged if the test fails.
func Start(t testing.TB) *Member {
	t.Helper()
	if eps := clusterFromEnv(t); eps != nil {
		return &Member{t: t, cluster: eps}
	}
	s, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if logs := s.Logs(); t.Failed() && logs != "" {
			t.Logf("etcdtest: stderr of etcd %s:\n%s", s.Version(), logs)
		}
	})
	return &Member{t: t, server: s}
}

// StartEmbedded is Start without testing.TB, for testscript setups and
// custom commands that run one member per script and close it themselves
// (Close it when the script ends). dir is the data directory: empty for a
// new member, or one a previous member used, to restart with its data.
// An embedded member's errors go to stderr (a healthy member logs nothing);
// an upstream one's are kept for Logs. Despite the name, with EtcdEnv set
// the member is that etcd, run as a process.
func StartEmbedded(dir string) (*Server, error) {
	e, err := upstreamEtcd()
	if err != nil {
		return nil, err
	}
	if e != nil {
		u, err := startUpstream(e, dir)
		if err != nil {
			return nil, err
		}
		return &Server{upstream: u, version: e.version}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	s, err := etcdserver.Start(ctx, etcdserver.Config{
		Name:             "etcdtest",
		DataDir:          dir,
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		ListenPeerURLs:   []string{"http://127.0.0.1:0"},
		TickMs:           TickMs,
		ElectionMs:       ElectionMs,
		UnsafeNoFsync:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dir, err)
	}
	return &Server{embedded: s, version: version.Version}, nil
}

// ClientURLs returns the URLs the member serves clients on,
// "http://127.0.0.1:PORT".
func (s *Server) ClientURLs() []string {
	if s.upstream != nil {
		return []string{s.upstream.url}
	}
	return s.embedded.ClientURLs()
}

// Version returns the etcd release the member runs, "3.7.3".
func (s *Server) Version() string { return s.version }

// Logs returns the end of an upstream member's stderr ("" when embedded:
// its errors go to stderr as they happen).
func (s *Server) Logs() string {
	if s.upstream != nil {
		return s.upstream.Logs()
	}
	return ""
}

// Close stops the member gracefully and waits until it has. Calling it
// again does nothing.
func (s *Server) Close() {
	if s.upstream != nil {
		s.upstream.Close()
		return
	}
	s.embedded.Close()
}

// Endpoints returns the member's client URLs, "http://127.0.0.1:PORT",
// ready for clientv3.Config.Endpoints or claimctl's --endpoints. (clientv3
// accepts the bare "127.0.0.1:PORT" too.)
func (m *Member) Endpoints() []string {
	if m.cluster != nil {
		return m.cluster
	}
	return m.server.ClientURLs()
}

// Server returns the running member, to close it early (to test what a
// client sees when its server goes away) or ask its version. A test that
// needs it is about one member: with MembersEnv set it is skipped.
func (m *Member) Server() *Server {
	if m.cluster != nil {
		m.t.Skipf("etcdtest: this test needs a single member (%s is set)", MembersEnv)
	}
	return m.server
}

// Client returns a client of the member, closed by t.Cleanup.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, m.Endpoints()...)
}

// NewClient returns a clientv3 client of endpoints, with a silent logger and
// DialTimeout, closed by t.Cleanup. Cleanups run last-registered first, so a
// client made after a Member or Proxy is closed before it.
func NewClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: DialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

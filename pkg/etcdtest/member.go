package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/claimctl/claimctl/pkg/etcdserver"
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

// Member is one embedded etcd member started by Start.
type Member struct {
	server *etcdserver.Server
}

// Start runs an embedded single-member etcd on 127.0.0.1 for the duration
// of the test: data in t.TempDir(), fsync off, the fast timings above, and
// free ports (port 0 for clients; port 0 for peers too, which a lone member
// never dials, so there is no window in which another process can take the
// port). It is closed by t.Cleanup. Because the ports are picked at bind
// time, the URLs the member advertises (in MemberList) say port 0; use
// Endpoints.
func Start(t testing.TB) *Member {
	t.Helper()
	s, err := StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(s.Close)
	return &Member{server: s}
}

// StartEmbedded is Start without testing.TB, for testscript setups and
// custom commands that run one member per script and close it themselves
// (Close it when the script ends). dir is the data directory: empty for a
// new member, or one a previous member used, to restart with its data.
// etcd's errors go to stderr; a healthy member logs nothing.
func StartEmbedded(dir string) (*etcdserver.Server, error) {
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
	return s, nil
}

// Endpoints returns the member's client URLs, "http://127.0.0.1:PORT",
// ready for clientv3.Config.Endpoints or claimctl's --endpoints. (clientv3
// accepts the bare "127.0.0.1:PORT" too.)
func (m *Member) Endpoints() []string { return m.server.ClientURLs() }

// Server returns the running member, to close it early (to test what a
// client sees when its server goes away) or read its state.
func (m *Member) Server() *etcdserver.Server { return m.server }

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

package etcdserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testConfig is a fast single member on loopback with free ports.
func testConfig(t *testing.T, name string) Config {
	t.Helper()
	return Config{
		Name:             name,
		DataDir:          t.TempDir(),
		ListenClientURLs: []string{"http://127.0.0.1:0"},
		ListenPeerURLs:   []string{"http://127.0.0.1:0"},
		TickMs:           50,
		ElectionMs:       500,
		UnsafeNoFsync:    true,
	}
}

func newClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestSingleMemberPutGet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var logs bytes.Buffer
	cfg := testConfig(t, "solo")
	cfg.LogOutput = &syncWriter{w: &logs}
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	urls := s.ClientURLs()
	if len(urls) != 1 || !strings.HasPrefix(urls[0], "http://127.0.0.1:") || strings.HasSuffix(urls[0], ":0") {
		t.Fatalf("ClientURLs() = %q, want one http://127.0.0.1:PORT with a real port", urls)
	}
	if s.Name() != "solo" {
		t.Errorf("Name() = %q, want solo", s.Name())
	}

	// clientv3 accepts both the URL and the bare host:port.
	for _, ep := range []string{urls[0], strings.TrimPrefix(urls[0], "http://")} {
		cli := newClient(t, []string{ep})
		key := "k-" + ep
		if _, err := cli.Put(ctx, key, "v"); err != nil {
			t.Fatalf("put via %s: %v", ep, err)
		}
		resp, err := cli.Get(ctx, key)
		if err != nil {
			t.Fatalf("get via %s: %v", ep, err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("get via %s = %v, want v", ep, resp.Kvs)
		}
	}

	// The minimum lease TTL follows from the timings: 1.5 * 500 ms, rounded
	// up to whole seconds.
	cli := newClient(t, urls)
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if lease.TTL != 1 {
		t.Errorf("granted TTL = %d, want 1", lease.TTL)
	}

	s.Close()
	s.Close() // idempotent
	select {
	case err := <-s.Err():
		t.Errorf("Err() after Close = %v, want nothing", err)
	default:
	}
	if logs.Len() != 0 {
		t.Errorf("a healthy member at level error logged:\n%s", logs.String())
	}
}

func TestRestartKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t, "again")
	for i, want := range []string{"", "1"} {
		s, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		cli := newClient(t, s.ClientURLs())
		resp, err := cli.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if len(resp.Kvs) == 1 {
			got = string(resp.Kvs[0].Value)
		}
		if got != want {
			t.Errorf("start %d: k = %q, want %q", i, got, want)
		}
		if _, err := cli.Put(ctx, "k", "1"); err != nil {
			t.Fatal(err)
		}
		cli.Close()
		s.Close()
	}
}

func TestStartAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := "http://" + ln.Addr().String()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t, "busy")
	cfg.ListenClientURLs = []string{taken}
	cfg.LogLevel = "fatal"
	_, err = Start(ctx, cfg)
	if err == nil {
		t.Fatal("Start on a port in use succeeded")
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), taken) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %v, want EADDRINUSE naming %s", err, taken)
	}
	if errors.Is(err, ErrInvalidConfig) {
		t.Errorf("error = %v, must not be ErrInvalidConfig", err)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{DataDir: "/tmp/x"}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{"bad scheme", func(c *Config) { c.ListenClientURLs = []string{"tcp://127.0.0.1:1"} }, "--listen-client-urls"},
		{"no port", func(c *Config) { c.ListenPeerURLs = []string{"http://127.0.0.1"} }, "--listen-peer-urls"},
		{"host name listen", func(c *Config) { c.ListenClientURLs = []string{"http://example.com:2379"} }, "IP address"},
		{"wildcard advertise", func(c *Config) { c.ListenClientURLs = []string{"http://0.0.0.0:2379"} }, "wildcard"},
		{"wildcard with advertise", func(c *Config) {
			c.ListenClientURLs = []string{"http://0.0.0.0:2379"}
			c.AdvertiseClientURLs = []string{"http://10.0.0.1:2379"}
			c.ListenPeerURLs = []string{"http://0.0.0.0:2380"}
			c.InitialAdvertisePeerURLs = []string{"http://10.0.0.1:2380"}
		}, ""},
		{"state", func(c *Config) { c.InitialClusterState = "old" }, "--initial-cluster-state"},
		{"cluster without self", func(c *Config) { c.InitialCluster = "other=http://127.0.0.1:2380" }, "no member named"},
		{"cluster garbage", func(c *Config) { c.InitialCluster = "nonsense" }, "--initial-cluster"},
		{"timings", func(c *Config) { c.TickMs = 100; c.ElectionMs = 400 }, "at least 5 times"},
		{"default election vs tick", func(c *Config) { c.TickMs = 300 }, "at least 5 times"},
		{"https without cert", func(c *Config) { c.ListenClientURLs = []string{"https://127.0.0.1:2379"} }, "--cert-file"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "--log-level"},
		{"name", func(c *Config) { c.Name = "a=b" }, "--name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tc.want)
			case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Fatalf("Validate() = %v, want ErrInvalidConfig containing %q", err, tc.want)
			}
		})
	}
}

func TestStartContextEnds(t *testing.T) {
	// A member of a 2-member cluster whose peer never comes cannot become
	// ready; Start must give up when ctx ends, and release its ports.
	peers := freePorts(t, 2)
	cfg := testConfig(t, "a")
	cfg.ListenPeerURLs = []string{peers[0]}
	cfg.InitialCluster = fmt.Sprintf("a=%s,b=%s", peers[0], peers[1])
	cfg.LogLevel = "fatal"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Start(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(peers[0], "http://"))
	if err != nil {
		t.Fatalf("peer port still bound after failed Start: %v", err)
	}
	ln.Close()
}

func TestThreeMemberCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	servers := startCluster(ctx, t, 3)
	var endpoints []string
	for _, s := range servers {
		endpoints = append(endpoints, s.ClientURLs()...)
	}

	cli := newClient(t, endpoints)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}

	leaders := 0
	for _, ep := range endpoints {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatalf("status %s: %v", ep, err)
		}
		if st.Header.MemberId == st.Leader {
			leaders++
		}
		if st.Leader == 0 {
			t.Errorf("%s knows no leader", ep)
		}
	}
	if leaders != 1 {
		t.Errorf("%d members say they lead, want 1", leaders)
	}

	// Every member serves the write (linearizable reads go through the leader).
	for _, ep := range endpoints {
		c := newClient(t, []string{ep})
		resp, err := c.Get(ctx, "k")
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get via %s: %v %v", ep, resp, err)
		}
	}
	members, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 3 {
		t.Errorf("%d members, want 3", len(members.Members))
	}
}

// startCluster starts n members concurrently (each waits for a quorum) on
// free peer ports, retrying with new ports if one was taken in between.
func startCluster(ctx context.Context, t *testing.T, n int) []*Server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		peers := freePorts(t, n)
		var parts []string
		for i, p := range peers {
			parts = append(parts, fmt.Sprintf("m%d=%s", i, p))
		}
		servers := make([]*Server, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			cfg := testConfig(t, fmt.Sprintf("m%d", i))
			cfg.ListenPeerURLs = []string{peers[i]}
			cfg.InitialCluster = strings.Join(parts, ",")
			wg.Go(func() { servers[i], errs[i] = Start(ctx, cfg) })
		}
		wg.Wait()
		err := errors.Join(errs...)
		if err == nil {
			// One at a time: a closing leader hands leadership to a live
			// peer, and waits up to 5 s if that peer is closing too.
			t.Cleanup(func() {
				for _, s := range servers {
					s.Close()
				}
			})
			return servers
		}
		for _, s := range servers {
			if s != nil {
				s.Close()
			}
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			t.Fatalf("start %d-member cluster: %v", n, err)
		}
	}
}

// freePorts returns n loopback peer URLs on ports that were free a moment ago.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, "http://"+ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestClientURLs(t *testing.T) {
	lns := []net.Listener{
		fakeListener{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 4000}},
		fakeListener{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2379}},
		fakeListener{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}},
	}
	got := clientURLs([]string{
		"http://127.0.0.1:0", "https://127.0.0.1:2379", "http://127.0.0.2:0", "unix://sock", "https://127.0.0.1:0",
	}, lns)
	want := []string{
		"http://127.0.0.1:5000", "https://127.0.0.1:2379", "http://127.0.0.2:4000", "unix://sock", "https://127.0.0.1:5000",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("clientURLs = %q, want %q", got, want)
	}
}

type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, errors.New("fake") }
func (fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr          { return l.addr }

func TestNoiseFilter(t *testing.T) {
	var buf bytes.Buffer
	closing := new(atomic.Bool)
	lg := newLogger(&syncWriter{w: &buf}, zapcore.ErrorLevel, closing)

	lg.Info("below the level")
	lg.Error("creating peer listener failed", zap.Error(errors.New("bind")))
	lg.Error("failed to update storage version", zap.Error(errors.New("cannot detect storage schema version: missing term information")))
	lg.Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("accept: closed"))) // kept: not closing
	lg.Error("failed to update storage version", zap.Error(errors.New("disk on fire")))
	closing.Store(true)
	lg.With(zap.String("k", "v")).Error("setting up serving from embedded etcd failed.", zap.Error(errors.New("mux: server closed")))
	lg.Error("real problem")

	got := buf.String()
	for _, want := range []string{"accept: closed", "disk on fire", "real problem"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	for _, noise := range []string{"below the level", "bind", "missing term", "mux: server closed"} {
		if strings.Contains(got, noise) {
			t.Errorf("log has %q:\n%s", noise, got)
		}
	}
	if n := strings.Count(got, "\n"); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, got)
	}
}

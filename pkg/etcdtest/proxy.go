package etcdtest

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
)

// proxyCloseTimeout bounds Proxy's cleanup, which waits for the connections
// through it to end.
const proxyCloseTimeout = 10 * time.Second

// Proxy forwards a client's traffic to one member and can cut or stall it,
// for partition tests (tc netem is not available here; for latency see
// package slowlink). It wraps go.etcd.io/etcd/pkg/v3/proxy.
//
// The proxy listens on a Unix socket in a fresh temporary directory: etcd's
// proxy binds a TCP port on every interface, not only loopback, and cannot
// report a port it picked itself. clientv3 (and so claimctl --endpoints)
// takes the socket as "unix:///path".
type Proxy struct {
	srv      proxy.Server
	endpoint string
}

// NewProxy starts a proxy to target, a member's client address as
// "127.0.0.1:PORT" or "http://127.0.0.1:PORT", and closes it at cleanup.
// Make clients of Endpoint after the proxy, so that cleanups close them
// first: the proxy's Close waits for its connections to end.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	host := target
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatalf("etcdtest: proxy target %q: %v", target, err)
		}
		host = u.Host
	}
	// t.TempDir() paths can pass the 108-byte limit on socket paths.
	dir, err := os.MkdirTemp("", "etcdproxy")
	if err != nil {
		t.Fatalf("etcdtest: proxy socket directory: %v", err)
	}
	sock := filepath.Join(dir, "proxy.sock")
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   url.URL{Scheme: "unix", Host: sock},
		To:     url.URL{Scheme: "tcp", Host: host},
	})
	p := &Proxy{srv: srv, endpoint: "unix://" + sock}

	select {
	case <-srv.Ready():
	case err := <-srv.Error():
		srv.Close()
		os.RemoveAll(dir)
		t.Fatalf("etcdtest: proxy to %s: %v", target, err)
	case <-time.After(StartTimeout):
		t.Fatalf("etcdtest: proxy to %s not listening after %v", target, StartTimeout)
	}
	// The proxy reports every failed dial or copy on a 16-slot channel and
	// stalls when it is full: a killed target would freeze it. Drain it.
	go func() {
		for {
			select {
			case <-srv.Error():
			case <-srv.Done():
				return
			}
		}
	}()

	t.Cleanup(func() {
		done := make(chan struct{})
		go func() {
			srv.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(proxyCloseTimeout):
			t.Errorf("etcdtest: proxy to %s: connections still open %v after close; close clients before the proxy", target, proxyCloseTimeout)
		}
		os.RemoveAll(dir)
	})
	return p
}

// Endpoint returns the proxy's address for clients, "unix:///path".
func (p *Proxy) Endpoint() string { return p.endpoint }

// Blackhole silently drops all traffic in both directions while connections
// stay open, like a partition: requests hang until their deadline, and
// nothing tells the client the peer is gone except its own timeouts and
// keepalives. Data dropped mid-stream usually breaks the gRPC connection,
// so after Unblackhole the client recovers by reconnecting.
func (p *Proxy) Blackhole() {
	p.srv.BlackholeTx()
	p.srv.BlackholeRx()
}

// Unblackhole stops dropping traffic.
func (p *Proxy) Unblackhole() {
	p.srv.UnblackholeTx()
	p.srv.UnblackholeRx()
}

// Pause holds all traffic in both directions until Unpause, then delivers
// it: a stall rather than a loss.
func (p *Proxy) Pause() {
	p.srv.PauseTx()
	p.srv.PauseRx()
}

// Unpause releases held traffic.
func (p *Proxy) Unpause() {
	p.srv.UnpauseTx()
	p.srv.UnpauseRx()
}

// Server returns the underlying proxy, for one-directional faults and the
// rest of its controls.
func (p *Proxy) Server() proxy.Server { return p.srv }

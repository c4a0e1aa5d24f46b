// Package cutproxy puts etcd's fault-injecting proxy
// (go.etcd.io/etcd/pkg/v3/proxy) between a client and one member, so that a
// test or a benchmark can cut or stall that client's traffic (tc netem is
// not available here; for latency see package slowlink). It is a package of
// its own, without testing or etcd's server, so that bench/ can use it too;
// tests take it through etcdtest.NewProxy, which closes it at cleanup.
//
// The proxy listens on a Unix socket in a fresh temporary directory: etcd's
// proxy binds a TCP port on every interface, not only loopback, and cannot
// report a port it picked itself. clientv3 (and so claimctl --endpoints)
// takes the socket as "unix:///path".
package cutproxy

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.uber.org/zap"
)

// Timeout bounds starting a proxy and closing one, which waits for the
// connections through it to end.
const Timeout = 10 * time.Second

// Proxy forwards a client's traffic to one member.
type Proxy struct {
	srv      proxy.Server
	dir      string
	endpoint string
	target   string
}

// New starts a proxy to target, a member's client address as
// "127.0.0.1:PORT" or "http://127.0.0.1:PORT". Make clients of Endpoint
// after the proxy and close them before it: Close waits for its connections
// to end.
func New(target string) (*Proxy, error) {
	host := target
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return nil, fmt.Errorf("proxy target %q: %w", target, err)
		}
		host = u.Host
	}
	// Test temporary directories can pass the 108-byte limit on socket paths.
	dir, err := os.MkdirTemp("", "etcdproxy")
	if err != nil {
		return nil, fmt.Errorf("proxy socket directory: %w", err)
	}
	sock := filepath.Join(dir, "proxy.sock")
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   url.URL{Scheme: "unix", Host: sock},
		To:     url.URL{Scheme: "tcp", Host: host},
	})
	select {
	case <-srv.Ready():
	case err := <-srv.Error():
		srv.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	case <-time.After(Timeout):
		os.RemoveAll(dir)
		return nil, fmt.Errorf("proxy to %s: not listening after %v", target, Timeout)
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
	return &Proxy{srv: srv, dir: dir, endpoint: "unix://" + sock, target: target}, nil
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

// Close stops the proxy and removes its socket. It waits at most Timeout
// for the connections through it to end, and says so if they did not.
func (p *Proxy) Close() error {
	done := make(chan struct{})
	go func() {
		p.srv.Close()
		close(done)
	}()
	defer os.RemoveAll(p.dir)
	select {
	case <-done:
		return nil
	case <-time.After(Timeout):
		return fmt.Errorf("proxy to %s: connections still open %v after close; close clients before the proxy", p.target, Timeout)
	}
}

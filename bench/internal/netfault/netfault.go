// Package netfault puts etcd's fault-injecting proxy
// (go.etcd.io/etcd/pkg/v3/proxy) between one client and the server, on a
// Unix socket, so the benchmark can cut that client's traffic.
package netfault

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

// Proxy forwards a Unix socket to the server's TCP client port.
type Proxy struct {
	srv proxy.Server
	dir string
	// Endpoint is the address clients dial: "unix:///path".
	Endpoint string
}

// New starts a proxy to target ("http://127.0.0.1:PORT"). It listens on a
// Unix socket because etcd's proxy, given a TCP address, binds it on every
// interface rather than loopback alone.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "claimbench-proxy")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "p.sock")
	srv := proxy.NewServer(proxy.ServerConfig{
		Logger: zap.NewNop(),
		From:   url.URL{Scheme: "unix", Host: sock},
		To:     url.URL{Scheme: "tcp", Host: u.Host},
	})
	select {
	case <-srv.Ready():
	case err := <-srv.Error():
		srv.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	case <-time.After(10 * time.Second):
		os.RemoveAll(dir)
		return nil, fmt.Errorf("proxy to %s: not ready after 10s", target)
	}
	// The proxy reports every failed copy on a small channel and blocks
	// when it is full; drain it.
	go func() {
		for {
			select {
			case <-srv.Error():
			case <-srv.Done():
				return
			}
		}
	}()
	return &Proxy{srv: srv, dir: dir, Endpoint: "unix://" + sock}, nil
}

// Blackhole drops all traffic both ways while connections stay open.
func (p *Proxy) Blackhole() {
	p.srv.BlackholeTx()
	p.srv.BlackholeRx()
}

// Unblackhole lets traffic through again.
func (p *Proxy) Unblackhole() {
	p.srv.UnblackholeTx()
	p.srv.UnblackholeRx()
}

// Close stops the proxy; it waits at most 10s for connections through it.
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
	case <-time.After(10 * time.Second):
		return fmt.Errorf("proxy %s: connections still open 10s after close", strings.TrimPrefix(p.Endpoint, "unix://"))
	}
}

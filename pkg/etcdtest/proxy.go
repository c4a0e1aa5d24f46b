package etcdtest

import (
	"testing"

	"github.com/claimctl/claimctl/pkg/etcdtest/cutproxy"
)

// Proxy forwards a client's traffic to one member and can cut or stall it,
// for partition tests: see package cutproxy.
type Proxy = cutproxy.Proxy

// NewProxy starts a proxy to target, a member's client address as
// "127.0.0.1:PORT" or "http://127.0.0.1:PORT", and closes it at cleanup.
// Make clients of Endpoint after the proxy, so that cleanups close them
// first: the proxy's Close waits for its connections to end.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := cutproxy.New(target)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("etcdtest: %v", err)
		}
	})
	return p
}

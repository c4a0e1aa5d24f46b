package etcdtest

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/version"
)

func TestStart(t *testing.T) {
	m := Start(t)
	eps := m.Endpoints()
	if len(eps) != 1 || !strings.HasPrefix(eps[0], "http://127.0.0.1:") || strings.HasSuffix(eps[0], ":0") {
		t.Fatalf("Endpoints() = %q, want [http://127.0.0.1:PORT]", eps)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cli := m.Client(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
	// The bare host:port form works too.
	bare := NewClient(t, strings.TrimPrefix(eps[0], "http://"))
	resp, err := bare.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get = %v, %v; want v", resp, err)
	}

	// MinLeaseTTL is what the member grants for anything shorter.
	for _, ttl := range []int64{1, 2} {
		lease, err := cli.Grant(ctx, ttl)
		if err != nil {
			t.Fatal(err)
		}
		want := max(ttl, int64(MinLeaseTTL/time.Second))
		if lease.TTL != want {
			t.Errorf("Grant(%d).TTL = %d, want %d", ttl, lease.TTL, want)
		}
	}
}

func TestStartEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, want := range []string{"", "v"} {
		s, err := StartEmbedded(dir)
		if err != nil {
			t.Fatal(err)
		}
		cli := NewClient(t, s.ClientURLs()...)
		resp, err := cli.Get(ctx, "k")
		if err != nil {
			s.Close()
			t.Fatal(err)
		}
		got := ""
		if len(resp.Kvs) > 0 {
			got = string(resp.Kvs[0].Value)
		}
		if got != want {
			t.Errorf("start %d: k = %q, want %q", i, got, want)
		}
		_, err = cli.Put(ctx, "k", "v")
		cli.Close()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestProxyBlackhole(t *testing.T) {
	m := Start(t)
	p := NewProxy(t, m.Endpoints()[0])
	if !strings.HasPrefix(p.Endpoint(), "unix:///") {
		t.Fatalf("Endpoint() = %q, want unix:///path", p.Endpoint())
	}
	cli := NewClient(t, p.Endpoint())

	get := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := cli.Get(ctx, "k")
		return err
	}
	if err := get(5 * time.Second); err != nil {
		t.Fatalf("get through proxy: %v", err)
	}

	p.Blackhole()
	start := time.Now()
	err := get(time.Second)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get through blackholed proxy = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("blackholed get failed after %v, before its deadline", d)
	}

	// Data dropped mid-stream breaks the connection; the client reconnects.
	p.Unblackhole()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := get(time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("get through proxy still failing 10s after unblackhole: %v", err)
		}
	}
}

func TestProxyPause(t *testing.T) {
	m := Start(t)
	p := NewProxy(t, m.Endpoints()[0])
	cli := NewClient(t, p.Endpoint())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	p.Pause()
	pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := cli.Get(pctx, "k")
	pcancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("get through paused proxy = %v, want context.DeadlineExceeded", err)
	}
	p.Unpause()
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Errorf("get after unpause: %v", err)
	}
}

// TestServerVersion checks that the member is the etcd asked for: the
// embedded one, or the EtcdEnv binary's release.
func TestServerVersion(t *testing.T) {
	want := version.Version
	if e, err := upstreamEtcd(); err != nil {
		t.Fatal(err)
	} else if e != nil {
		want = e.version
	}
	m := Start(t)
	if got := m.Server().Version(); got != want {
		t.Errorf("Server().Version() = %q, want %q", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := m.Client(t).Status(ctx, m.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != want {
		t.Errorf("Status().Version = %q, want %q", st.Version, want)
	}
}

// TestStartHonoursMembersEnv: with MembersEnv set, Start's etcd is a cluster
// of that many members, every one of them serving, so the tests that run on
// it really meet a cluster; without it, one member.
func TestStartHonoursMembersEnv(t *testing.T) {
	want := 1
	if v := os.Getenv(MembersEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		want = n
	}
	m := Start(t)
	if got := len(m.Endpoints()); got != want {
		t.Fatalf("Start gave %d endpoints %v; want %d", got, m.Endpoints(), want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.Client(t).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Members) != want {
		t.Fatalf("the cluster has %d members; want %d", len(resp.Members), want)
	}
}

package etcdauth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// authMember is a single member with authentication enabled (users of
// etcdtest.EnableAuth).
func authMember(t *testing.T) []string {
	t.Helper()
	m := etcdtest.Start(t)
	if err := etcdtest.EnableAuth(m.Endpoints()); err != nil {
		t.Fatal(err)
	}
	return m.Endpoints()
}

// countAuthenticate counts the Authenticate requests a connection sends.
func countAuthenticate(n *atomic.Int64) grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == authenticateMethod {
			n.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// connect dials eps with creds and authenticates, as claimctl does.
func connect(t *testing.T, eps []string, creds *Credentials, extra ...grpc.DialOption) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop(),
		DialOptions: append(creds.DialOptions(), extra...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	if err := creds.Authenticate(ctx(t), cli.ActiveConnection()); err != nil {
		t.Fatal(err)
	}
	return cli
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// work is what a claim holder does over a run: a grant and a create, a
// watch of its own key, renewals (each KeepAliveOnce opens a stream) and a
// revoke.
func work(t *testing.T, cli *clientv3.Client, renewals int) {
	t.Helper()
	c := ctx(t)
	lease, err := cli.Grant(c, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(c, "claimctl/job", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(c)
	defer cancel()
	wch := cli.Watch(wctx, "claimctl/job")
	for range renewals {
		if _, err := cli.KeepAliveOnce(c, lease.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Revoke(c, lease.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case wr := <-wch:
		if err := wr.Err(); err != nil || len(wr.Events) != 1 {
			t.Fatalf("watch: %v, %d events; want the key's deletion", err, len(wr.Events))
		}
	case <-c.Done():
		t.Fatal("the watch saw nothing")
	}
}

// TestOneAuthenticatePerProcess: a holder's whole run, twenty renewals
// included, costs one Authenticate; etcd's own password handling costs one
// per stream, so at least one per renewal (which is why this package
// exists; if clientv3 stops doing that, this package can go).
func TestOneAuthenticatePerProcess(t *testing.T) {
	eps := authMember(t)
	var ours, stock atomic.Int64
	creds := New("claimer", etcdtest.AuthPassword)
	work(t, connect(t, eps, creds, countAuthenticate(&ours)), 20)
	if n := ours.Load(); n != 1 || creds.Authentications() != 1 {
		t.Errorf("a run with 20 renewals sent %d Authenticate requests (counted %d); want 1", n, creds.Authentications())
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop(),
		Username: "claimer", Password: etcdtest.AuthPassword, DialOptions: []grpc.DialOption{countAuthenticate(&stock)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	work(t, cli, 20)
	t.Logf("Authenticate requests for a run with 20 renewals: %d with Credentials, %d with clientv3's Username/Password", ours.Load(), stock.Load())
	if stock.Load() < 21 {
		t.Logf("clientv3 no longer authenticates per stream (%d); Credentials may no longer be needed", stock.Load())
	}
}

// TestRefusedTokenAuthenticatesAgain: a request refused for its token (a
// member restarted and forgot it, or it expired) authenticates once and
// is sent again; requests refused together share one Authenticate.
func TestRefusedTokenAuthenticatesAgain(t *testing.T) {
	eps := authMember(t)
	creds := New("claimer", etcdtest.AuthPassword)
	cli := connect(t, eps, creds)
	creds.mu.Lock()
	creds.token = "forgotten.1"
	creds.mu.Unlock()
	done := make(chan error, 4)
	for range 4 {
		go func() { _, err := cli.Put(ctx(t), "claimctl/a", "x"); done <- err }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatalf("put with a forgotten token: %v; want it authenticated again and sent", err)
		}
	}
	if n := creds.Authentications(); n != 2 {
		t.Errorf("Authenticate sent %d times; want 2 (at connect, then once for the four refused puts)", n)
	}
}

// TestWatchOpensWithAFreshToken: a watch, authorized once when it is
// created and then kept for long, is opened with a token at most ReuseFor
// old, so one opened with an older token authenticates first; keep-alive
// streams, checked at every renewal, authenticate only once etcd refuses
// one (TestHolderRenewsPastItsTokensLife).
func TestWatchOpensWithAFreshToken(t *testing.T) {
	eps := authMember(t)
	creds := New("claimer", etcdtest.AuthPassword)
	cli := connect(t, eps, creds)
	age := func() {
		creds.mu.Lock()
		creds.issued = time.Now().Add(-2 * ReuseFor)
		creds.mu.Unlock()
	}
	age()
	lease, err := cli.Grant(ctx(t), 30)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := cli.KeepAliveOnce(ctx(t), lease.ID); err != nil {
			t.Fatal(err)
		}
	}
	if n := creds.Authentications(); n != 1 {
		t.Fatalf("renewals with an old token sent %d Authenticate; want none after the first", n)
	}
	watchSees(t, cli, "claimctl/b", "watch")
	if n := creds.Authentications(); n != 2 {
		t.Errorf("a watch opened with an old token sent %d Authenticate in all; want 2", n)
	}
}

// TestWatchCancelledForItsTokenAuthenticatesOnRetry: a watch that etcd
// cancels for its token marks the token stale, so the next watch (claimctl
// retries) authenticates before it opens.
func TestWatchCancelledForItsTokenAuthenticatesOnRetry(t *testing.T) {
	eps := authMember(t)
	creds := New("claimer", etcdtest.AuthPassword)
	cli := connect(t, eps, creds)
	creds.mu.Lock()
	creds.token = "forgotten.1"
	creds.mu.Unlock()
	wr := <-cli.Watch(ctx(t), "claimctl/c")
	if wr.Err() == nil || wr.Err().Error() != rpctypes.ErrGRPCInvalidAuthToken.Error() {
		t.Fatalf("watch with a forgotten token: %v; want %v", wr.Err(), rpctypes.ErrInvalidAuthToken)
	}
	watchSees(t, cli, "claimctl/c", "the watch after the refusal")
}

// TestWrongPasswordAndAuthDisabled: a wrong password is etcd's
// ErrAuthFailed at connect time; a cluster without authentication takes
// requests without a token.
func TestWrongPasswordAndAuthDisabled(t *testing.T) {
	eps := authMember(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop(),
		DialOptions: New("claimer", "wrong").DialOptions()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := New("claimer", "wrong").Authenticate(ctx(t), cli.ActiveConnection()); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("wrong password: %v; want %v", err, rpctypes.ErrAuthFailed)
	}

	open := etcdtest.Start(t)
	creds := New("claimer", etcdtest.AuthPassword)
	cli = connect(t, open.Endpoints(), creds)
	if _, err := cli.Put(ctx(t), "claimctl/d", "x"); err != nil {
		t.Errorf("put without auth enabled: %v", err)
	}
	work(t, cli, 3)
	if n := creds.Authentications(); n != 1 {
		t.Errorf("without auth enabled: %d Authenticate; want 1 (the one that learns it is off)", n)
	}
}

// watchSees opens a watch of key, puts key and fails the test with what,
// unless the watch reports the put.
func watchSees(t *testing.T, cli *clientv3.Client, key, what string) {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	wch := cli.Watch(wctx, key)
	if _, err := cli.Put(ctx(t), key, "x"); err != nil {
		t.Fatal(err)
	}
	if wr := <-wch; wr.Err() != nil || len(wr.Events) != 1 {
		t.Fatalf("%s: %v, %d events; want the put", what, wr.Err(), len(wr.Events))
	}
}

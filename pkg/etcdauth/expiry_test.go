package etcdauth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/etcdtest"
)

// These tests need token settings that etcdtest's members do not expose
// (--auth-token, --auth-token-ttl), so they run an embedded member of their
// own.

// tokenMember starts a member whose tokens are configured by authToken
// (etcd's --auth-token; "" for simple tokens) and ttl (--auth-token-ttl, for
// simple tokens), with etcdtest.EnableAuth's users when auth is true.
func tokenMember(t *testing.T, authToken string, ttl uint, auth bool) []string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	loop := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{loop}, []url.URL{loop}
	cfg.ListenPeerUrls = []url.URL{loop}
	cfg.UnsafeNoFsync = true
	if authToken != "" {
		cfg.AuthToken = authToken
	}
	if ttl > 0 {
		cfg.AuthTokenTTL = ttl
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(etcdtest.StartTimeout):
		t.Fatal("etcd did not start")
	}
	eps := []string{e.Clients[0].Addr().String()}
	if auth {
		if err := etcdtest.EnableAuth(eps); err != nil {
			t.Fatal(err)
		}
	}
	return eps
}

// jwtOption is an --auth-token value for RS256 JWTs that expire after ttl.
func jwtOption(t *testing.T, ttl time.Duration) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privPath, pubPath := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	for path, block := range map[string]*pem.Block{
		privPath: {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		pubPath:  {Type: "PUBLIC KEY", Bytes: pub},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return "jwt,pub-key=" + pubPath + ",priv-key=" + privPath + ",sign-method=RS256,ttl=" + ttl.String()
}

// holdAndRenew grants a lease with a key on it, as a claim holder does,
// lets change happen, and then renews as the keeper does: a renewal refused
// for its token may fail once, and the next must succeed.
func holdAndRenew(t *testing.T, cli *clientv3.Client, change func()) {
	t.Helper()
	lease, err := cli.Grant(ctx(t), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx(t), "claimctl/held", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	change()
	var errs []error
	for range 2 {
		_, err := cli.KeepAliveOnce(ctx(t), lease.ID)
		if err == nil {
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("renewals after the token stopped working: %v; want the second to authenticate again and succeed", errs)
}

// TestHolderRenewsPastItsTokensLife: etcd checks the token on every lease
// renewal, so a holder whose token expired (a simple token unused for
// --auth-token-ttl, a JWT past its ttl) or predates an auth change (a JWT
// carries the auth revision) must authenticate again instead of letting its
// claim run out.
func TestHolderRenewsPastItsTokensLife(t *testing.T) {
	for _, tc := range []struct {
		name      string
		authToken func(t *testing.T) string
		ttl       uint
		change    func(t *testing.T, eps []string)
	}{
		{"simple token expired", func(*testing.T) string { return "" }, 2, func(*testing.T, []string) { time.Sleep(3 * time.Second) }},
		{"JWT expired", func(t *testing.T) string { return jwtOption(t, 2*time.Second) }, 0, func(*testing.T, []string) { time.Sleep(3 * time.Second) }},
		{"JWT from before an auth change", func(t *testing.T) string { return jwtOption(t, 5*time.Minute) }, 0, func(t *testing.T, eps []string) {
			root := rootClient(t, eps)
			if _, err := root.UserAdd(ctx(t), "newcomer", "pw"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := tokenMember(t, tc.authToken(t), tc.ttl, true)
			creds := New("claimer", etcdtest.AuthPassword)
			cli := connect(t, eps, creds)
			holdAndRenew(t, cli, func() { tc.change(t, eps) })
			if n := creds.Authentications(); n != 2 {
				t.Errorf("%d Authenticate requests; want 2 (at connect, and once after the refusal)", n)
			}
		})
	}
}

func rootClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	root, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: etcdtest.DialTimeout, Logger: zap.NewNop(),
		Username: "root", Password: etcdtest.AuthPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root
}

// TestChangedPasswordFailsOnce: a token refused after the user's password
// changed fails the call with etcd's authentication error, after one more
// Authenticate, not a hundred (clientv3's retry loop would resend a call
// refused for its token until its retries ran out).
func TestChangedPasswordFailsOnce(t *testing.T) {
	eps := authMember(t)
	creds := New("claimer", etcdtest.AuthPassword)
	cli := connect(t, eps, creds)
	if _, err := rootClient(t, eps).UserChangePassword(ctx(t), "claimer", "changed"); err != nil {
		t.Fatal(err)
	}
	creds.mu.Lock()
	creds.token = "forgotten.1"
	creds.mu.Unlock()
	_, err := cli.Put(ctx(t), "claimctl/a", "x")
	if !errors.Is(rpctypes.Error(err), rpctypes.ErrAuthFailed) {
		t.Errorf("put after the password changed: %v; want %v", err, rpctypes.ErrAuthFailed)
	}
	if n := creds.Authentications(); n > 3 {
		t.Errorf("%d Authenticate requests for one put; want at most 3", n)
	}
}

// TestAuthEnabledAfterConnecting: a client that connected while auth was
// off authenticates once streams are refused for want of a token (etcd's
// "user name is empty"), for watches and renewals alike.
func TestAuthEnabledAfterConnecting(t *testing.T) {
	eps := tokenMember(t, "", 0, false)
	creds := New("claimer", etcdtest.AuthPassword)
	cli := connect(t, eps, creds)
	lease, err := cli.Grant(ctx(t), 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := etcdtest.EnableAuth(eps); err != nil {
		t.Fatal(err)
	}
	var renewErrs []error
	for range 2 {
		if _, err = cli.KeepAliveOnce(ctx(t), lease.ID); err == nil {
			break
		}
		renewErrs = append(renewErrs, err)
	}
	if err != nil {
		t.Fatalf("renewals once auth was enabled: %v; want the second to authenticate and succeed", renewErrs)
	}
	watchSees(t, cli, "claimctl/late", "watch once auth was enabled")
}

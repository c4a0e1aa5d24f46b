package cmd

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/etcdauth"
)

// connect builds the etcd client from a clientv3.ConfigSpec, as etcdctl
// does. The client dials lazily; every request is bounded by the command
// timeout, so an unreachable cluster fails within dial + command timeout.
func connect(cfg *Config) (*clientv3.Client, error) {
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, configError(errors.New("TLS configuration: a client certificate needs both --cert and --key; set both or neither"))
	}
	lg := zap.NewNop()
	spec := clientSpec(cfg)
	all := spec.Endpoints
	spec.Endpoints = []string{firstEndpoint(all)}
	ccfg, err := clientv3.NewClientConfig(spec, lg)
	if err == nil && cfg.CACert != "" {
		err = checkCACert(cfg.CACert)
	}
	if err != nil {
		return nil, configError(fmt.Errorf("TLS configuration: %v; check --cacert, --cert and --key", err))
	}
	ccfg.Logger = lg
	ccfg.RejectOldCluster = false
	var creds *etcdauth.Credentials
	// As clientv3 does: a user without a password authenticates by its
	// client certificate's common name, or not at all.
	if cfg.User != "" && cfg.Password != "" {
		creds = etcdauth.New(cfg.User, cfg.Password)
		ccfg.DialOptions = append(ccfg.DialOptions, creds.DialOptions()...)
	}
	etcd, err := clientv3.New(*ccfg)
	if err != nil {
		return nil, classifyDialError(cfg, err)
	}
	if len(all) > 1 {
		go widen(etcd, all)
	}
	if creds != nil {
		// As clientv3 would with Username set: a wrong password fails here.
		ctx, cancel := context.WithCancel(context.Background())
		if cfg.DialTimeout > 0 {
			ctx, cancel = context.WithTimeout(ctx, cfg.DialTimeout)
		}
		err := creds.Authenticate(ctx, etcd.ActiveConnection())
		cancel()
		if err != nil {
			etcd.Close()
			return nil, classifyDialError(cfg, err)
		}
	}
	// The connection is otherwise made by the first request; starting it
	// now lets the handshake overlap with whatever the command does before
	// that request (holder metadata, the guardian's start).
	if conn := etcd.ActiveConnection(); conn != nil {
		conn.Connect()
	}
	return etcd, nil
}

// The client connects to one endpoint first and to all of them only later
// (widen). etcd's client balances requests round robin over a connection to
// every endpoint, made at once: against a 3-member cluster with TLS, each
// invocation paid three handshakes, on two cores and on the members, for
// the one connection its first few requests use, and its grant and create,
// sent together, went to different members and arrived out of order (the
// create refused, sent again) a fifth of the time. Measured in one run
// (docs/benchmarks.md): uncontended `run` at 2 ms RTT 0.83x of etcdctl
// with one connection against 0.96x with three, members' CPU per run 10.3
// against 16.0 ms. A run that lasts, or waits, is balanced over every
// member as before, so that a frozen or cut-off member is failed over.
const (
	// widenAfter is how long a client stays on its first endpoint: longer
	// than most runs of a short command, far shorter than any TTL, so the
	// first renewal already has every member to go to.
	widenAfter = 500 * time.Millisecond
	// firstReadyWait is how long the first endpoint may take to connect
	// before the others are tried too: a member that is down, frozen or
	// unreachable costs this much once, not a request timeout.
	firstReadyWait = 250 * time.Millisecond
)

// firstEndpoint picks the endpoint a client connects to first: one at
// random, so that a fleet's invocations spread over the members, among
// those that need the same transport security as the first endpoint
// (etcd's client chooses its credentials by the first endpoint it is
// given, and keeps them when its endpoints change).
func firstEndpoint(endpoints []string) string {
	var same []string
	for _, ep := range endpoints {
		if credsClass(ep) == credsClass(endpoints[0]) {
			same = append(same, ep)
		}
	}
	return same[rand.IntN(len(same))]
}

// credsClass is how etcd's client treats an endpoint's transport security:
// plaintext by its scheme (http, unix), TLS by its scheme (https, unixs), or
// as configured (no scheme).
func credsClass(ep string) string {
	switch {
	case strings.HasPrefix(ep, "http://"), strings.HasPrefix(ep, "unix:") && !strings.HasPrefix(ep, "unixs:"):
		return "plain"
	case strings.HasPrefix(ep, "https://"), strings.HasPrefix(ep, "unixs:"):
		return "tls"
	}
	return "configured"
}

// widen gives the client all its endpoints once it has been on its first
// for widenAfter, or at once if the first has not connected within
// firstReadyWait. etcd's client then connects to the others and balances
// over all (clientv3.Client.SetEndpoints, which its endpoint sync uses the
// same way). It returns when the client is closed.
func widen(etcd *clientv3.Client, all []string) {
	ctx := etcd.Ctx()
	wait := widenAfter
	if conn := etcd.ActiveConnection(); conn != nil && !readyWithin(ctx, conn, firstReadyWait) {
		wait = 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	etcd.SetEndpoints(all...)
}

// readyWithin reports whether conn is ready within d (or ctx's end).
func readyWithin(ctx context.Context, conn *grpc.ClientConn, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			return true
		}
		if !conn.WaitForStateChange(ctx, st) {
			return false
		}
	}
}

// clientSpec is the etcd client configuration in etcdctl's terms, without
// the password: connect authenticates with pkg/etcdauth, once per process
// rather than once per stream as clientv3 would.
func clientSpec(cfg *Config) *clientv3.ConfigSpec {
	tlsFiles := cfg.CACert != "" || cfg.Cert != "" || cfg.Key != ""
	spec := &clientv3.ConfigSpec{
		Endpoints:        cfg.Endpoints,
		DialTimeout:      cfg.DialTimeout,
		KeepAliveTime:    2 * time.Second,
		KeepAliveTimeout: 2 * time.Second,
		Secure: &clientv3.SecureConfig{
			Cacert: cfg.CACert, Cert: cfg.Cert, Key: cfg.Key,
			InsecureSkipVerify: cfg.InsecureSkip,
			InsecureTransport:  !tlsFiles && !cfg.InsecureSkip,
		},
	}
	return spec
}

// checkCACert refuses a CA bundle without a single PEM block. etcd's client
// accepts such a file and then trusts no server at all, so every handshake
// would fail and claimctl would blame an unavailable etcd instead of naming
// the file. (Blocks that are not certificates are refused by the client.)
func checkCACert(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if block, _ := pem.Decode(b); block == nil {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// classifyDialError maps errors from clientv3.New, which authenticates when
// a user is set.
func classifyDialError(cfg *Config, err error) error {
	return claim.ClassifyError("connect", cfg.Prefix, cfg.Endpoints, err)
}

package cmd

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

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
	ccfg, err := clientv3.NewClientConfig(clientSpec(cfg), lg)
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

package cmd

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/iostreams"
)

// Factory gives commands what they share: streams, build info, and lazily
// the configuration and an etcd connection, so that commands that do not
// need etcd (help, version, completion) never dial it.
type Factory struct {
	IO     *iostreams.IOStreams
	Build  BuildInfo
	Getenv func(string) string

	// ConfigPath and Quiet are bound to global flags.
	ConfigPath string
	Quiet      bool

	cfg *Config
}

// Config loads the configuration for cmd once.
func (f *Factory) Config(cmd *cobra.Command) (*Config, error) {
	if f.cfg != nil {
		return f.cfg, nil
	}
	cfg, err := loadConfig(cmd.Flags(), f.ConfigPath, f.Getenv)
	if err != nil {
		return nil, err
	}
	f.IO.SetColorMode(cfg.Color)
	f.cfg = cfg
	return cfg, nil
}

// Claims connects to etcd and returns a claim client and a function that
// closes the connection.
func (f *Factory) Claims(cmd *cobra.Command) (*claim.Client, func(), error) {
	cfg, err := f.Config(cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := claim.ValidatePrefix(cfg.Prefix); err != nil {
		return nil, nil, withCode(ExitUsage, err)
	}
	etcd, err := connect(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := claim.New(etcd, claim.Options{Prefix: cfg.Prefix, RequestTimeout: cfg.CommandTimeout})
	if err != nil {
		etcd.Close()
		return nil, nil, withCode(ExitUsage, err)
	}
	return c, func() { etcd.Close() }, nil
}

// connect builds the etcd client from a clientv3.ConfigSpec, as etcdctl
// does. The client dials lazily; every request is bounded by the command
// timeout, so an unreachable cluster fails within dial + command timeout.
func connect(cfg *Config) (*clientv3.Client, error) {
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
	if cfg.User != "" {
		spec.Auth = &clientv3.AuthConfig{Username: cfg.User, Password: cfg.Password}
	}
	lg := zap.NewNop()
	ccfg, err := clientv3.NewClientConfig(spec, lg)
	if err != nil {
		return nil, configError(fmt.Errorf("TLS configuration: %v; check --cacert, --cert and --key", err))
	}
	ccfg.Logger = lg
	ccfg.RejectOldCluster = false
	etcd, err := clientv3.New(*ccfg)
	if err != nil {
		return nil, classifyDialError(cfg, err)
	}
	return etcd, nil
}

// classifyDialError maps errors from clientv3.New, which authenticates when
// a user is set.
func classifyDialError(cfg *Config, err error) error {
	return claim.ClassifyError("connect", cfg.Prefix, cfg.Endpoints, err)
}

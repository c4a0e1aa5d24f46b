package cmd

import (
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/connectivity"

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

	// ConfigPath, Quiet and LogFormatFlag are bound to global flags.
	ConfigPath    string
	Quiet         bool
	LogFormatFlag string

	cfg *Config

	// The event log (see Log) and what every record says.
	log           *slog.Logger
	logFormatUsed string
	logColor      bool
	logFields     []any
	// waitStarted and heldSince time the claim, for the log's waited_ms and
	// held_ms: when the acquire began and when the hold was verified.
	waitStarted, heldSince time.Time
	// metrics writes the outcome to --metrics-file, if one is set.
	metrics *runMetrics
	// connFailed is set when an etcd connection is closed while every
	// attempt to connect had failed (gRPC's TRANSIENT_FAILURE), as opposed
	// to still connecting or connected but unanswered. Run reads it once
	// the command has returned, to explain the failure (explainTLS, in
	// tlsdiag.go); the connection itself is closed by then.
	connFailed bool
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
	f.IO.SetColorMode(cfg.Color, f.Getenv("NO_COLOR") != "")
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
	return c, func() {
		if conn := etcd.ActiveConnection(); conn != nil && conn.GetState() == connectivity.TransientFailure {
			f.connFailed = true
		}
		etcd.Close()
	}, nil
}

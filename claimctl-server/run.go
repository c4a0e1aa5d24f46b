package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/claimctl/claimctl/pkg/etcdserver"
	"github.com/spf13/cobra"
	etcdversion "go.etcd.io/etcd/api/v3/version"
)

// Exit codes. 64 is EX_USAGE from sysexits.h, which the claimctl CLI uses
// for the same purpose, so scripts can tell a typo from an outage.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 64
)

// usageError marks an error as the caller's mistake (exit 64).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// options are the flag values, before defaults that depend on other flags.
type options struct {
	cfg     etcdserver.Config
	dataDir string
}

// run parses args, runs the member until SIGINT or SIGTERM (or until parent
// is cancelled) and returns the exit code. Only main calls os.Exit.
func run(parent context.Context, args []string, stdout, stderr io.Writer, version string) int {
	var opts options
	cmd := newCommand(&opts, stdout, stderr, version, func(cmd *cobra.Command) error {
		return serve(parent, opts, stdout, stderr)
	})
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "claimctl-server: %s\n", oneLine(err))
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, etcdserver.ErrInvalidConfig) {
		return exitUsage
	}
	return exitFailure
}

// newCommand defines the flags. runE does the work, so tests can check
// parsing alone.
func newCommand(opts *options, stdout, stderr io.Writer, version string, runE func(*cobra.Command) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "claimctl-server [flags]",
		Short: "Run an etcd member for claimctl",
		Long: `Run an etcd member for claimctl: a single-node server by default, or one
member of a cluster with --initial-cluster.

When the member is ready to serve, its client URLs are printed on stdout, one
per line, and a summary on stderr. SIGINT or SIGTERM stops it cleanly.

Exit status: 0 after a clean stop, 1 if the member failed to start or
stopped on its own, 64 for bad flags.`,
		Example: `  # A local server, data under ~/.local/share/claimctl:
  claimctl-server

  # Pick a free client port and read it from stdout:
  claimctl-server --listen-client-urls http://127.0.0.1:0 --data-dir /tmp/c`,
		Version:       versionString(version),
		Args:          noArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runE(cmd)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see --help)", err)}
	})

	c := &opts.cfg
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&c.Name, "name", etcdserver.DefaultName, "human-readable name of this member, unique in the cluster")
	f.StringVar(&opts.dataDir, "data-dir", "", "directory for the member's data (default $XDG_DATA_HOME/claimctl/<name>.etcd, or ~/.local/share/claimctl/<name>.etcd)")
	f.StringSliceVar(&c.ListenClientURLs, "listen-client-urls", []string{etcdserver.DefaultClientURL}, "URLs to serve clients on; port 0 picks a free port")
	f.StringSliceVar(&c.AdvertiseClientURLs, "advertise-client-urls", nil, "client URLs published to the cluster (default: --listen-client-urls)")
	f.StringSliceVar(&c.ListenPeerURLs, "listen-peer-urls", []string{etcdserver.DefaultPeerURL}, "URLs to serve other members on")
	f.StringSliceVar(&c.InitialAdvertisePeerURLs, "initial-advertise-peer-urls", nil, "peer URLs published to the cluster (default: --listen-peer-urls)")
	f.StringVar(&c.InitialCluster, "initial-cluster", "", `members to bootstrap from, "name=peerURL,..." (default: this member alone)`)
	f.StringVar(&c.InitialClusterState, "initial-cluster-state", etcdserver.DefaultInitialClusterState, `"new" to bootstrap a cluster, "existing" to join one`)
	f.StringVar(&c.InitialClusterToken, "initial-cluster-token", etcdserver.DefaultInitialClusterToken, "token that keeps clusters bootstrapped from the same URLs apart")
	f.UintVar(&c.TickMs, "heartbeat-interval", 100, "time (ms) between leader heartbeats")
	f.UintVar(&c.ElectionMs, "election-timeout", 1000, "time (ms) without a heartbeat before an election; the minimum lease TTL is 1.5 times this, rounded up to whole seconds")
	f.StringVar(&c.ClientTLS.CertFile, "cert-file", "", "client server TLS certificate file")
	f.StringVar(&c.ClientTLS.KeyFile, "key-file", "", "client server TLS key file")
	f.StringVar(&c.ClientTLS.TrustedCAFile, "trusted-ca-file", "", "CA file to verify client certificates")
	f.BoolVar(&c.ClientTLS.ClientCertAuth, "client-cert-auth", false, "require client certificates signed by --trusted-ca-file")
	f.StringVar(&c.PeerTLS.CertFile, "peer-cert-file", "", "peer server TLS certificate file")
	f.StringVar(&c.PeerTLS.KeyFile, "peer-key-file", "", "peer server TLS key file")
	f.StringVar(&c.PeerTLS.TrustedCAFile, "peer-trusted-ca-file", "", "CA file to verify peer certificates")
	f.BoolVar(&c.PeerTLS.ClientCertAuth, "peer-client-cert-auth", false, "require peer certificates signed by --peer-trusted-ca-file")
	f.StringVar(&c.LogLevel, "log-level", etcdserver.DefaultLogLevel, "etcd log level on stderr: debug, info, warn, error, panic or fatal")
	f.BoolVar(&c.UnsafeNoFsync, "unsafe-no-fsync", false, "skip fsync: fast, but a crash or power cut can lose or corrupt data (tests only)")
	// Defined here so that cobra does not add its -v shorthand, which
	// elsewhere means verbose.
	f.Bool("version", false, "print the claimctl and etcd versions and exit")
	return cmd
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q: claimctl-server takes only flags (see --help)", args[0])}
	}
	return nil
}

// serve starts the member, reports its URLs and runs it until a signal.
func serve(parent context.Context, opts options, stdout, stderr io.Writer) error {
	cfg := opts.cfg
	cfg.DataDir = opts.dataDir
	if cfg.DataDir == "" {
		dir, err := defaultDataDir(cfg.Name)
		if err != nil {
			return usageError{err}
		}
		cfg.DataDir = dir
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.dataDir == "" {
		// etcd creates the data directory itself, but its parents with
		// the umask; keep ours private like etcd keeps the data.
		if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o700); err != nil {
			return fmt.Errorf("create directory for --data-dir: %w", err)
		}
	}

	// Waiting to join a cluster has no deadline, as with etcd: the other
	// members may come minutes later. A signal ends the wait.
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := etcdserver.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	urls := srv.ClientURLs()
	for _, u := range urls {
		fmt.Fprintln(stdout, u)
	}
	fmt.Fprintf(stderr, "claimctl-server: member %s ready, serving clients on %s\n", cfg.Name, strings.Join(urls, ", "))

	select {
	case <-ctx.Done():
		// Restore default signal handling: a second Ctrl-C kills at once
		// if the graceful stop hangs.
		stop()
		srv.Close()
		return nil
	case err := <-srv.Err():
		return err
	}
}

// defaultDataDir follows the XDG base directory spec, which says to ignore
// a relative XDG_DATA_HOME.
func defaultDataDir(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("--name %q cannot be part of the default --data-dir: set --data-dir", name)
	}
	base := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no default for --data-dir (%w): set --data-dir", err)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "claimctl", name+".etcd"), nil
}

// versionString says which claimctl and which etcd this is, since a cluster
// must agree on the etcd version.
func versionString(v string) string {
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return fmt.Sprintf("%s (etcd %s, %s)", v, etcdversion.Version, runtime.Version())
}

// oneLine keeps a multi-line error (errors.Join, etcd's wrapped output) on
// the single line that scripts and logs expect.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

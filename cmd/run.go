package cmd

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/runner"
	"github.com/claimctl/claimctl/pkg/supervise"
)

// RunOptions are the inputs of `claimctl run`.
type RunOptions struct {
	f          *Factory
	cmd        *cobra.Command
	Name       string
	Command    []string
	Shell      bool
	Margin     time.Duration
	Grace      time.Duration
	MaxRuntime time.Duration
	MinHold    time.Duration
	Acquire    acquireFlags
}

// NewCmdRun builds `claimctl run`.
func NewCmdRun(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{f: f}
	cmd := &cobra.Command{
		Use:   "run NAME [flags] -- CMD [ARGS...]",
		Short: "Hold a claim for exactly the lifetime of a command",
		Long: `Take claim NAME (waiting in line like acquire), run CMD while keeping the claim
alive, and release the claim once CMD and everything in its process group
have ended. run exits with CMD's own exit code (128+n if a signal killed it).

If the claim can no longer be proven held (etcd unreachable for too long, or
the claim removed with release --force), CMD's whole process group is sent
SIGTERM and then SIGKILL before etcd could hand the claim to anyone else, and
run exits 76. If claimctl itself is killed, CMD dies with it.

CMD gets CLAIMCTL_NAME, CLAIMCTL_TOKEN, CLAIMCTL_FENCING_TOKEN,
CLAIMCTL_LEASE_ID and CLAIMCTL_KEY in its environment; signals sent to
claimctl (INT TERM HUP QUIT USR1 USR2 WINCH) are forwarded to its group.`,
		Example: `  claimctl run deploy -- ./deploy.sh production
  claimctl run -n -E 0 --min-hold 1m nightly -- /usr/local/bin/report
  claimctl run --shell backup -- 'pg_dump db | gzip > /backup/db.gz'`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: completeClaimNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd = cmd
			if len(args) == 0 {
				return &flagError{fmt.Errorf("run takes NAME and a command: claimctl run NAME -- CMD [ARGS...]")}
			}
			opts.Name, opts.Command = args[0], args[1:]
			if len(opts.Command) > 0 && opts.Command[0] == "--" {
				opts.Command = opts.Command[1:]
			}
			if len(opts.Command) == 0 {
				return &flagError{fmt.Errorf("run needs a command after NAME: claimctl run %s -- CMD [ARGS...]", opts.Name)}
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(opts)
		},
	}
	// Everything after NAME belongs to the command, flags included.
	cmd.Flags().SetInterspersed(false)
	opts.Acquire.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&opts.Shell, "shell", false, "run the command with sh -c (the arguments are joined with spaces)")
	fl.DurationVar(&opts.Margin, "margin", 0, "kill the command this long before etcd could expire the lease (default TTL/10, 0.5s to 5s)")
	fl.DurationVar(&opts.Grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL when stopping the command (capped so the deadline holds)")
	fl.DurationVar(&opts.MaxRuntime, "max-runtime", 0, "stop the command if it runs longer (exit 124)")
	fl.DurationVar(&opts.MinHold, "min-hold", 0, "keep the claim at least this long after the command started")
	return cmd
}

func runRun(opts *RunOptions) error {
	f := opts.f
	cfg, err := f.Config(opts.cmd)
	if err != nil {
		return err
	}
	if err := opts.Acquire.validate(opts.cmd, opts.Name, cfg.TTL); err != nil {
		return err
	}
	if err := opts.validate(cfg.TTL); err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()

	ctx, stop := signalContext(opts.cmd.Context())
	wctx, cancel := opts.Acquire.waitContext(ctx)
	reporter := newWaitReporter(f, opts.Name)
	hold, err := c.Acquire(wctx, claim.AcquireOptions{
		Name:        opts.Name,
		TTL:         cfg.TTL,
		Limit:       opts.Acquire.Limit,
		NonBlocking: opts.Acquire.NonBlock,
		Holder:      opts.Acquire.holder(),
		Progress:    reporter.report,
	})
	reporter.finish()
	cancel()
	stop()
	if err != nil {
		return opts.Acquire.conflict(err)
	}

	// From here on, signals go to the command, not to claimctl.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, forwarded...)
	defer signal.Stop(signals)

	margin := opts.Margin
	if margin == 0 {
		margin = runner.DefaultMargin(hold.TTL)
	}
	res, err := runner.Run(opts.cmd.Context(), runner.Config{
		Hold:       hold,
		Child:      opts.childSpec(f, hold),
		Margin:     margin,
		Grace:      opts.Grace,
		MaxRuntime: opts.MaxRuntime,
		MinHold:    opts.MinHold,
		Signals:    signals,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(f.IO.ErrOut, "claimctl: "+format+"\n", args...)
		},
	})
	if err != nil {
		return err
	}
	if res.ReleaseErr != nil {
		fmt.Fprintf(f.IO.ErrOut, "claimctl: the command finished, but releasing %s failed (it frees itself within %v): %v\n", opts.Name, hold.TTL, res.ReleaseErr)
	}
	switch {
	case res.Lost != nil && !res.Started:
		return withCode(ExitNotHeld, fmt.Errorf("run %s: %w; the command was not started", opts.Name, res.Lost))
	case res.Lost != nil:
		return withCode(ExitNotHeld, fmt.Errorf("run %s: %w; the command was stopped (%s)", opts.Name, res.Lost, res.Status))
	case res.TimedOut:
		return withCode(ExitTimeout, fmt.Errorf("run %s: the command ran longer than --max-runtime %v and was stopped (%s)", opts.Name, opts.MaxRuntime, res.Status))
	}
	if code := res.Status.ExitCode(); code != 0 {
		return &exitError{code: code, quiet: true}
	}
	return nil
}

// validate checks run's own flags before anything connects to etcd. The
// TTL granted may be larger than the one asked for; the margin is checked
// against the one asked for, which is the smaller.
func (opts *RunOptions) validate(ttl time.Duration) error {
	if opts.Margin != 0 || opts.cmd.Flags().Changed("margin") {
		if err := runner.ValidateMargin(ttl, opts.Margin); err != nil {
			return usageError("%v", err)
		}
	}
	for name, d := range map[string]time.Duration{"--grace": opts.Grace, "--max-runtime": opts.MaxRuntime, "--min-hold": opts.MinHold} {
		if d < 0 {
			return usageError("invalid %s %v: it must not be negative", name, d)
		}
	}
	if opts.cmd.Flags().Changed("max-runtime") && opts.MaxRuntime == 0 {
		return usageError("invalid --max-runtime 0s: it must be positive; omit it for no limit")
	}
	return nil
}

// childSpec describes the command: argv as given (or sh -c with --shell),
// claimctl's own streams, and the environment with the hold's variables set
// after the inherited ones, replacing any inherited values, so that a nested
// run sees its own.
func (opts *RunOptions) childSpec(f *Factory, h *claim.Hold) supervise.Spec {
	spec := supervise.Spec{Path: opts.Command[0], Args: opts.Command[1:],
		Stdin: f.IO.InFile, Stdout: f.IO.OutFile, Stderr: f.IO.ErrFile}
	if opts.Shell {
		spec.Path, spec.Args = "/bin/sh", []string{"-c", strings.Join(opts.Command, " ")}
	}
	vars := holdEnv(h)
	set := map[string]bool{}
	for _, kv := range vars {
		set[kv[0]] = true
	}
	for _, e := range os.Environ() {
		if name, _, _ := strings.Cut(e, "="); !set[name] {
			spec.Env = append(spec.Env, e)
		}
	}
	for _, kv := range vars {
		spec.Env = append(spec.Env, kv[0]+"="+kv[1])
	}
	return spec
}

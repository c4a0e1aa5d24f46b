package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/claimctl/claimctl/pkg/claim"
	"github.com/claimctl/claimctl/pkg/eventlog"
	"github.com/claimctl/claimctl/pkg/runmetrics"
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
	NewHold    bool
	Acquire    acquireFlags
}

// runLong is run's help: what it promises, and how its arguments parse.
const runLong = `Take claim NAME (waiting in line like acquire), run CMD while keeping the claim
alive, and release the claim once CMD and everything in its process group
have ended. run exits with CMD's own exit code (128+n if a signal killed it).

If the claim can no longer be proven held (etcd unreachable for too long, or
the claim removed with release --force), CMD's whole process group is sent
SIGTERM and then SIGKILL before etcd could hand the claim to anyone else, and
run exits 76. If claimctl itself is killed, CMD dies with it.

CMD gets CLAIMCTL_NAME, CLAIMCTL_TOKEN, CLAIMCTL_FENCING_TOKEN,
CLAIMCTL_LEASE_ID and CLAIMCTL_KEY in its environment; signals sent to
claimctl (INT TERM HUP QUIT USR1 USR2 WINCH) are forwarded to its group.
While run is still waiting for the claim, any of them but WINCH ends the
wait instead (exit 128+n) and CMD is not started.

When stdin is a terminal and run is in its foreground (not started with &),
CMD gets the terminal: it can read it (psql, an editor, a shell), Ctrl-C
and Ctrl-Z reach it directly, and the terminal comes back when it ends.
Ctrl-Z stops CMD's whole group and then run; the claim is not renewed while
suspended, so after fg (or bg) run proves it still holds the claim before
CMD runs again, and kills CMD instead (exit 76) if the claim ran out.
Otherwise run cannot be suspended (Ctrl-Z, SIGTSTP): a stopped claimctl
could not stop a running CMD in time if the claim were lost, so it says so
and goes on.

claimctl's flags may come before NAME and after it. CMD starts at '--' or,
without it, at the first argument after NAME that is neither a flag of
claimctl's nor a flag's value: "run NAME -n -E 0 CMD" takes -n and -E 0,
"run NAME echo -n hi" passes -n to echo. An unknown flag before CMD is a
usage error (put '--' before CMD).

Inside a run of NAME (CMD's environment lists every enclosing hold in
CLAIMCTL_HOLDS), a nested "run NAME" joins that hold: one read proves it
still held, then CMD runs in place of the nested claimctl, under the
enclosing run's deadline, with no new lease and no release; if the hold has
ended, CMD is not started (exit 76). --new-hold takes a hold of its own
instead (a second semaphore slot; on a mutex it fails at once, exit 75, as
acquire of NAME there does: it would wait on its own ancestor).`

// NewCmdRun builds `claimctl run`.
func NewCmdRun(f *Factory, runF func(*RunOptions) error) *cobra.Command {
	opts := &RunOptions{f: f}
	cmd := &cobra.Command{
		Use:   runUsage,
		Short: "Hold a claim for exactly the lifetime of a command",
		Long:  runLong,
		Example: `  claimctl run deploy -- ./deploy.sh production
  claimctl run nightly -n -E 0 -- /usr/local/bin/report
  claimctl run -n -E 0 --min-hold 1m nightly -- /usr/local/bin/report
  claimctl run --shell backup -- 'pg_dump db | gzip > /backup/db.gz'`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: completeRunArgs(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.cmd = cmd
			name, command, err := splitRunArgs(cmd, args)
			if errors.Is(err, pflag.ErrHelp) {
				return cmd.Help()
			}
			if err != nil {
				return err
			}
			opts.Name, opts.Command = name, command
			if runF != nil {
				return runF(opts)
			}
			return runRun(opts)
		},
	}
	// Cobra parses the flags before NAME only; splitRunArgs parses those
	// after it, up to the command.
	cmd.Flags().SetInterspersed(false)
	opts.Acquire.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&opts.Shell, "shell", false, "run the command with sh -c (the arguments are joined with spaces)")
	fl.DurationVar(&opts.Margin, "margin", 0, "kill the command this long before etcd could expire the lease (default TTL/10, 0.5s to 5s)")
	fl.DurationVar(&opts.Grace, "grace", 5*time.Second, "time between SIGTERM and SIGKILL when stopping the command (capped so the deadline holds)")
	fl.DurationVar(&opts.MaxRuntime, "max-runtime", 0, "stop the command if it runs longer (exit 124)")
	fl.DurationVar(&opts.MinHold, "min-hold", 0, "keep the claim at least this long after the command started")
	fl.BoolVar(&opts.NewHold, "new-hold", false, "take a hold of its own even inside a run that holds NAME (a second semaphore slot; on a mutex: busy at once)")
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
	holds, err := f.inheritedHolds()
	if err != nil {
		return err
	}
	if enclosesName(holds, cfg.Prefix, opts.Name) {
		// Rare, so off the hot path: connect first, then prepare.
		return runInside(opts, cfg)
	}
	return runFresh(opts, cfg, nil)
}

// enclosesName reports whether holds has an entry for claim name under
// prefix.
func enclosesName(holds []enclosingHold, prefix, name string) bool {
	for _, h := range holds {
		if h.Token.Prefix == prefix && h.Token.Name == name {
			return true
		}
	}
	return false
}

// runInside runs the command under an inherited hold of the same claim, if
// this process is inside the run that keeps it and one read proves the hold
// live: the command then replaces this process, in the enclosing command's
// process group, which the enclosing run stops when its claim can no longer
// be proven held. No lease, no slot, no release: the hold is the enclosing
// run's. With --new-hold, or when this process has left the enclosing run
// (setsid), it takes a hold of its own instead.
func runInside(opts *RunOptions, cfg *Config) error {
	f := opts.f
	spec := opts.childSpec(f)
	path, err := supervise.Resolve(spec)
	if err != nil {
		return err
	}
	c, closeEtcd, err := f.Claims(opts.cmd)
	if err != nil {
		return err
	}
	defer closeEtcd()
	a, gone, err := f.findAncestorHold(opts.cmd.Context(), c, opts.Name)
	switch {
	case err != nil:
		return opts.Acquire.conflict(err)
	case gone:
		return withCode(ExitNotHeld, fmt.Errorf("run %s: %w: the enclosing run's hold has ended (its claim was lost, and that run is stopping its command); the command was not started", opts.Name, claim.ErrNotHeld))
	case a == nil:
		return runFresh(opts, cfg, c)
	}
	limit := a.proof.Limit()
	if opts.cmd.Flags().Changed("limit") && opts.Acquire.Limit != limit {
		return fmt.Errorf("%w: claim %s is held by the enclosing run with --limit %d, but this run uses --limit %d; all clients of a claim must use the same limit",
			claim.ErrLimitMismatch, opts.Name, limit, opts.Acquire.Limit)
	}
	if opts.NewHold {
		if limit == 1 {
			return opts.Acquire.conflict(ancestorBusyError(opts.Name, a, "drop --new-hold to run under the enclosing hold"))
		}
		opts.Acquire.Limit = limit
		return runFresh(opts, cfg, c)
	}
	if opts.MaxRuntime > 0 {
		return usageError("run %s: --max-runtime cannot apply here: the enclosing run (pid %d) holds %s, and this run joins its hold by starting the command in its place, with nothing left to time it; put --max-runtime on the enclosing run, or use timeout(1)", opts.Name, a.Supervisor.PID, opts.Name)
	}
	closeEtcd()
	spec.Env = replaceEnv(inheritedEnv(), tokenEnv(a.Token, slotString(a.proof.Slot, a.proof.SlotName)))
	return supervise.ExecInPlace(spec, path)
}

// runFresh takes a hold of its own and runs the command under it. c is an
// etcd connection made already, or nil.
func runFresh(opts *RunOptions, cfg *Config, c *claim.Client) error {
	f := opts.f
	if err := f.startMetrics(cfg, opts.Name, runmetrics.OK); err != nil {
		return err
	}
	// Find the command and start its guardian before connecting: a command
	// that cannot run fails here (126/127, or run unsupported on this
	// system) without touching etcd, and the fork and exec of the guardian
	// overlap with connecting and waiting instead of delaying the command.
	child, err := supervise.Prepare(opts.childSpec(f))
	if err != nil {
		return err
	}
	defer child.Close()
	if c == nil {
		var closeEtcd func()
		c, closeEtcd, err = f.Claims(opts.cmd)
		if err != nil {
			return err
		}
		defer closeEtcd()
	}
	// Read while connecting, not once the claim is held, where reading
	// /proc/self/stat would delay the command by 50-100 us (measured).
	var supervisor *supervise.Identity
	if self, err := supervise.Self(); err == nil {
		supervisor = &self
	}

	// The forwarded signals are caught from the start, once: while waiting
	// they end the wait (exit 128+n), and from the hold on they go to the
	// command. Switching handlers between the two would put several
	// round trips through Go's signal-mask thread on the handoff's path.
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, forwarded...)
	defer signal.Stop(signals)
	defer refuseSuspend(f)()
	hold, err := opts.waitForHold(cfg, c, signals)
	if err != nil {
		return err
	}
	return opts.superviseHold(hold, child, supervisor, signals)
}

// waitForHold takes the claim for run, waiting as the flags say; a
// forwarded signal on signals ends the wait (exit 128+n), and one that
// comes as the wait ends releases the hold before the command starts.
func (opts *RunOptions) waitForHold(cfg *Config, c *claim.Client, signals <-chan os.Signal) (*claim.Hold, error) {
	f := opts.f
	ictx, cancel := context.WithCancelCause(opts.cmd.Context())
	defer cancel(context.Canceled)
	wctx, stopTimer := opts.Acquire.waitContext(ictx)
	defer stopTimer()
	interrupted := cancelOnSignal(signals, cancel)
	holder := opts.Acquire.holder(f.Getenv)
	f.describeContender(opts.Name, holder)
	f.waitStarted = time.Now()
	reporter := newWaitReporter(f, opts.Name)
	hold, err := c.Acquire(wctx, opts.Acquire.claimOptions(opts.Name, cfg.TTL, holder, reporter.report))
	reporter.finish()
	sig := interrupted()
	if err != nil {
		return nil, opts.Acquire.conflict(err)
	}
	f.heldSince = time.Now()
	f.describeHold(hold)
	f.metricsHolding(hold)
	f.logAcquired(hold, false)
	if sig != nil {
		// The signal came as the wait ended: honour it, before the command
		// starts.
		if rerr := hold.Release(); rerr != nil {
			return nil, fmt.Errorf("run %s: %w; the command was not started, and releasing the claim failed (it frees itself within %v): %v", opts.Name, sig, hold.TTL, rerr)
		}
		return nil, fmt.Errorf("run %s: %w; the command was not started", opts.Name, sig)
	}
	return hold, nil
}

// superviseHold runs the prepared command under hold (pkg/runner) and turns
// its end into run's exit: the command's own code, or 76 if the claim was
// lost, 124 past --max-runtime. supervisor is this process's identity, nil
// where it cannot be known (see childEnv).
func (opts *RunOptions) superviseHold(hold *claim.Hold, child *supervise.Prepared, supervisor *supervise.Identity, signals chan os.Signal) error {
	f := opts.f
	margin := opts.Margin
	if margin == 0 {
		margin = runner.DefaultMargin(hold.TTL)
	}
	res, err := runner.Run(opts.cmd.Context(), runner.Config{
		Hold:       hold,
		Name:       hold.Name,
		TTL:        hold.TTL,
		Revision:   hold.Revision,
		NotHeld:    claim.ErrNotHeld,
		Child:      child,
		Env:        childEnv(f, hold, supervisor),
		Margin:     margin,
		Grace:      opts.Grace,
		MaxRuntime: opts.MaxRuntime,
		MinHold:    opts.MinHold,
		Terminal:   f.IO.InFile,
		Signals:    signals,
		Log:        f.Log(),
		HeldSince:  f.heldSince,
	})
	if err != nil {
		return err
	}
	if res.ReleaseErr != nil {
		f.event(true, slog.LevelWarn, eventlog.Notice, fmt.Sprintf("the command finished, but releasing %s failed (it frees itself within %v): %v", opts.Name, hold.TTL, res.ReleaseErr))
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

// childSpec describes the command: argv as given (or sh -c with --shell)
// and claimctl's own streams. Its environment is set once the claim is held
// (childEnv). Stdin is also offered as the command's terminal: supervise
// hands it over only if it is a terminal of which claimctl is in the
// foreground when the command starts.
func (opts *RunOptions) childSpec(f *Factory) supervise.Spec {
	spec := supervise.Spec{Path: opts.Command[0], Args: opts.Command[1:],
		Stdin: f.IO.InFile, Stdout: f.IO.OutFile, Stderr: f.IO.ErrFile, Terminal: f.IO.InFile}
	if opts.Shell {
		spec.Path, spec.Args = "/bin/sh", []string{"-c", strings.Join(opts.Command, " ")}
	}
	return spec
}

// childEnv is the command's environment: ours, with the hold's variables
// set after the inherited ones, replacing any inherited values, so that a
// nested run sees its own, and the hold added to the enclosing holds
// (holdsVar) with supervisor, this process, as the run that keeps it.
// supervisor is nil only where supervise.Self fails, off Linux, where run
// starts no command.
func childEnv(f *Factory, h *claim.Hold, supervisor *supervise.Identity) []string {
	vars := holdEnv(h)
	holds, _ := f.inheritedHolds() // parsed once already: it is well-formed
	if supervisor != nil {
		holds = append(holds, enclosingHold{Token: h.Token(), Supervisor: *supervisor})
	}
	vars = append(vars, [2]string{holdsVar, formatHolds(holds)})
	return replaceEnv(inheritedEnv(), vars)
}

// inheritedEnv is the environment the command inherits: claimctl's own,
// whole. It is the one read of the environment that bypasses the factory's
// Getenv, which answers for one name at a time: the command needs every
// variable, not the few claimctl looks up, and it gets them from the process
// itself, as with os/exec. Tests of what the command sees are testscripts
// (run_env.txtar), which set the process's real environment.
func inheritedEnv() []string { return os.Environ() }

// replaceEnv returns env with vars set after the inherited values,
// replacing any of the same name.
func replaceEnv(env []string, vars [][2]string) []string {
	set := map[string]bool{}
	for _, kv := range vars {
		set[kv[0]] = true
	}
	var out []string
	for _, e := range env {
		if name, _, _ := strings.Cut(e, "="); !set[name] {
			out = append(out, e)
		}
	}
	for _, kv := range vars {
		out = append(out, kv[0]+"="+kv[1])
	}
	return out
}

// refuseSuspend catches the terminal's stop signals (Ctrl-Z) for as long as
// run lasts and answers each with a note on stderr. A command that was
// given the terminal is suspended through its own group instead (see
// runner.Run): the terminal's Ctrl-Z then never reaches claimctl, and a
// SIGTSTP sent to claimctl itself is still refused. Stopped, claimctl would
// neither renew the claim nor stop the command when the claim runs out: the
// command would run on, unsupervised, past its lease. (SIGSTOP cannot be
// caught; README "Safety" says what a frozen claimctl means.) The returned
// function stops catching them.
func refuseSuspend(f *Factory) func() {
	if len(suspendSignals) == 0 {
		return func() {}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, suspendSignals...)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				f.event(true, slog.LevelWarn, eventlog.Notice, "run cannot be suspended: a stopped claimctl could not stop the command in time if the claim were lost; the command goes on (Ctrl-C stops it)")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
